"""The comparison the paper's claim rests on: (a) scratch + BCE, (b) scratch + ASL, (c) pretrained + BCE,
(d) pretrained + ASL (the method), the same compute budget each, plus what a user would do instead
(a random forest on the ECG's interval and amplitude features from rare_ecg.signals) on the same split.

    python -m benchmarks.method_comparison [--quick] [--patients N] [--skip-real]

Runs the project's own jobs (ingest, pretrain, finetune, evaluate: real Ray Train, Delta, MLflow) on a
synthetic long-tail cohort and on the real PTB-XL sample of ../shared/data. Rare labels: training
prevalence below --rare-threshold. CIs: patient bootstrap on the test split; the gap reduction of (d)
against (a) is paired (the same resamples for both). Last stdout line: a JSON object of the headline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks._common import SHARED_DATA, WORK, machine

VARIANTS: dict[str, dict[str, Any]] = {
    "a_scratch_bce": {"from_scratch": True, "loss": "bce"},
    "b_scratch_asl": {"from_scratch": True, "loss": "asl"},
    "c_pretrained_bce": {"from_scratch": False, "loss": "bce"},
    "d_pretrained_asl": {"from_scratch": False, "loss": "asl"},
}


def log(msg: str) -> None:
    print(f"method_comparison: {msg}", file=sys.stderr, flush=True)


def ingest(archive: Path, lake: Path, source: str, fs_hz: int) -> None:
    from rare_ecg.config import IngestConfig, Settings
    from rare_ecg.ingest.job import run_ingest_job

    run_ingest_job(
        IngestConfig(archive=archive, layout="ptbxl", fs_hz=fs_hz, lake=str(lake), source=source),
        Settings.model_validate({"RARE_ECG_LAKE": str(lake)}),
    )


def macro_stats(y: np.ndarray, p: np.ndarray, rare: np.ndarray, common: np.ndarray) -> np.ndarray:
    """(macro all, macro rare, macro common, gap) from (n, L) targets and probabilities."""
    from rare_ecg.metrics.ranking import auroc_columns

    a = auroc_columns(y, p)

    def mean(cols: np.ndarray) -> float:
        v = a[cols]
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else float("nan")

    everything = np.ones(len(a), bool)
    r, c = mean(rare), mean(common)
    return np.array([mean(everything), r, c, c - r])


def with_ci(
    y: np.ndarray,
    probs: dict[str, np.ndarray],
    rare: np.ndarray,
    common: np.ndarray,
    patients: np.ndarray,
    n_boot: int,
) -> dict[str, Any]:
    """Point values and patient-bootstrap 95% CIs of every variant, and the paired gap reduction d vs a."""
    from rare_ecg.metrics import bootstrap_ci

    names = list(probs)

    def stat(idx: np.ndarray) -> np.ndarray:
        rows = [macro_stats(y[idx], probs[n][idx], rare, common) for n in names]
        out = np.concatenate(rows)
        if "a_scratch_bce" in probs and "d_pretrained_asl" in probs:
            gap_a = rows[names.index("a_scratch_bce")][3]
            gap_d = rows[names.index("d_pretrained_asl")][3]
            out = np.append(out, 1 - gap_d / gap_a if gap_a > 0 else np.nan)
        return out

    point = stat(np.arange(len(y)))
    low, high = bootstrap_ci(stat, patients, n_boot=n_boot, seed=0)
    keys = ("macro_auroc", "rare_auroc", "common_auroc", "gap")
    result: dict[str, Any] = {}
    for i, name in enumerate(names):
        result[name] = {
            k: [
                round(float(v), 4) if np.isfinite(v) else None
                for v in (point[4 * i + j], low[4 * i + j], high[4 * i + j])
            ]
            for j, k in enumerate(keys)
        }
    if len(point) > 4 * len(names):
        v = (point[-1], low[-1], high[-1])
        result["gap_reduction_d_vs_a"] = [round(float(x), 4) if np.isfinite(x) else None for x in v]
    return result


def record_features(lake: Path, versions: dict[str, int], record_ids: list[str]) -> np.ndarray:
    """Interval and amplitude features of each record (rare_ecg.signals on the native signal in mV):
    HR, PR, QRS, QT, QTc, RR std, and per lead Q/R/S/ST/T amplitudes and Q duration; NaN -> column median."""
    from rare_ecg.lake.schema import ECG_RECORDS
    from rare_ecg.signals.intervals import delineate, lead_measurements
    from rare_ecg.signals.preprocess import canonical_leads

    rows = (
        pl.read_delta(
            str(lake / ECG_RECORDS),
            version=versions[ECG_RECORDS],
            columns=[
                "record_id",
                "fs_hz",
                "n_samples",
                "lead_names",
                "signal_dtype",
                "signal",
                "adc_gain",
                "baseline",
            ],
        )
        .filter(pl.col("record_id").is_in(record_ids))
        .to_dicts()
    )
    by_id = {r["record_id"]: r for r in rows}
    feats = []
    for rid in record_ids:
        r = by_id[rid]
        raw = np.frombuffer(r["signal"], dtype=np.dtype(r["signal_dtype"]).newbyteorder("<"))
        raw = raw.reshape(len(r["lead_names"]), int(r["n_samples"])).astype(np.float64)
        mv = (raw - np.asarray(r["baseline"])[:, None]) / np.asarray(r["adc_gain"])[:, None]
        x, _ = canonical_leads(mv, r["lead_names"])
        try:
            d = delineate(x, float(r["fs_hz"]))
            m = lead_measurements(d)
            rr = float(np.std(d.rr_ms)) if len(d.rr_ms) else np.nan
            glob = [d.hr_bpm, d.pr_ms, d.qrs_ms, d.qt_ms, d.qtc_ms, rr]
            per_lead = np.concatenate([m.q_mv, m.q_ms, m.r_mv, m.s_mv, m.qrs_pp_mv, m.st_mv, m.t_mv])
            feats.append(np.concatenate([glob, per_lead]))
        except Exception:  # a record the delineator cannot read: all features unknown
            feats.append(np.full(6 + 7 * 12, np.nan))
    f = np.asarray(feats, dtype=np.float64)
    med = np.nanmedian(np.where(np.isfinite(f), f, np.nan), axis=0)
    med = np.where(np.isfinite(med), med, 0.0)
    return np.where(np.isfinite(f), f, med)


def forest_probs(
    lake: Path,
    versions: dict[str, int],
    train_ids: list[str],
    y_train: np.ndarray,
    test_ids: list[str],
    seed: int,
) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier

    x_train = record_features(lake, versions, train_ids)
    x_test = record_features(lake, versions, test_ids)
    forest = RandomForestClassifier(n_estimators=300, min_samples_leaf=2, n_jobs=2, random_state=seed)
    forest.fit(x_train, y_train)
    out = np.zeros((len(test_ids), y_train.shape[1]))
    for j, est in enumerate(forest.predict_proba(x_test)):
        classes = list(forest.classes_[j])
        out[:, j] = est[:, classes.index(1)] if 1 in classes else 0.0
    return out


def run_cohort(
    name: str, lake: Path, root: Path, args: argparse.Namespace, sizes: dict[str, Any]
) -> dict[str, Any]:
    from rare_ecg.config import EvaluateConfig, FinetuneConfig, PretrainConfig, Settings
    from rare_ecg.evaluation.job import run_evaluate_job
    from rare_ecg.evaluation.labels import label_matrix
    from rare_ecg.evaluation.predict import split_predictions
    from rare_ecg.lake.schema import ECG_LABELS
    from rare_ecg.registry import load_model
    from rare_ecg.train.finetune import epoch_line, run_finetune_job
    from rare_ecg.train.job import run_pretrain_job
    from rare_ecg.train.progress import print_epoch

    settings = Settings.model_validate({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    common: dict[str, Any] = {"lake": str(lake), "storage_path": str(root / "runs"), "cpus_per_worker": 1.0}
    common.update(batch_size=args.batch_size, threads_per_worker=args.threads)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    log(f"{name}: pretraining the encoder ({args.pretrain_epochs} epochs)")
    pre = run_pretrain_job(
        PretrainConfig(**common, epochs=args.pretrain_epochs, **sizes), settings, on_epoch=print_epoch
    )
    timings["pretrain_s"] = round(time.perf_counter() - t0, 1)
    probs: dict[str, np.ndarray] = {}
    summaries: dict[str, Any] = {}
    y = patients = None
    ids: list[str] = []
    meta: dict[str, Any] = {}
    for variant, opts in VARIANTS.items():
        t1 = time.perf_counter()
        log(f"{name}: fine-tuning {variant} ({args.finetune_epochs} epochs)")
        extra = {**sizes} if opts["from_scratch"] else {"encoder": pre["model_uri"]}
        ft = run_finetune_job(
            FinetuneConfig(
                **common,
                **extra,
                from_scratch=opts["from_scratch"],
                loss=opts["loss"],
                epochs=args.finetune_epochs,
                rare_threshold=args.rare_threshold,
                min_common_positives=args.min_common_positives,
                run_name=f"{name}-{variant}",
                alias=variant.replace("_", "-"),
            ),
            settings,
            on_epoch=lambda m: print(epoch_line(m), file=sys.stderr, flush=True),
        )
        timings[f"{variant}_finetune_s"] = round(time.perf_counter() - t1, 1)
        ev = run_evaluate_job(
            EvaluateConfig(lake=str(lake), model=ft["model_uri"], n_boot=args.n_boot), settings
        )
        model, meta = load_model(ft["model_uri"])
        sp = split_predictions(str(lake), "test", model, meta["table_versions"])
        probs[variant] = sp.predictions.y_prob
        y, patients, ids = sp.predictions.y_true, sp.predictions.patient_ids, sp.record_ids
        summaries[variant] = {
            "model_uri": ft["model_uri"],
            "best_epoch": ft["best_epoch"],
            "largest_subgroup_gap": ev["largest_subgroup_gap"],
            "macro_auroc": ev["macro_auroc"],
        }
    assert y is not None and patients is not None
    labels = tuple(meta["labels"])
    rare = np.isin(labels, meta["rare_labels"])
    common_set = np.isin(labels, meta["common_labels"])
    # the user's alternative, same split: a random forest on interval and amplitude features
    t2 = time.perf_counter()
    versions = meta["table_versions"]
    from rare_ecg.train.data import LakeSnapshot, split_plan

    plan = split_plan(LakeSnapshot(str(lake), {k: v for k, v in versions.items() if k != ECG_LABELS}))
    ecg_labels = pl.read_delta(str(lake / ECG_LABELS), version=versions[ECG_LABELS])
    train_ids = plan.filter(pl.col("split") == "train")["record_id"].to_list()
    labelled, y_train = label_matrix(ecg_labels, train_ids, labels)
    train_ids = [r for r, keep in zip(train_ids, labelled, strict=True) if keep]
    log(f"{name}: random forest on signal features ({len(train_ids)} training records)")
    probs["forest_features"] = forest_probs(lake, versions, train_ids, y_train[labelled], ids, args.seed)
    timings["forest_s"] = round(time.perf_counter() - t2, 1)
    table = with_ci(y, probs, rare, common_set, patients, args.n_boot)
    return {
        "test_records": len(ids),
        "test_patients": len(set(patients.tolist())),
        "labels": len(labels),
        "rare_labels": int(rare.sum()),
        "common_labels": int(common_set.sum()),
        "rare_test_positives": int(y[:, rare].sum()) if rare.any() else 0,
        "records_per_split": ft["records"],
        "comparison": table,
        "subgroups": summaries,
        "timings": timings,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.method_comparison", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small cohort and a few epochs")
    parser.add_argument("--patients", type=int, default=None, help="synthetic patients (default 10,000)")
    parser.add_argument("--pretrain-epochs", type=int, default=None)
    parser.add_argument("--finetune-epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rare-threshold", type=float, default=None)
    parser.add_argument("--min-common-positives", type=int, default=None)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-real", action="store_true", help="leave out the real PTB-XL sample")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--d-model", type=int, default=None, help="network width (default 128, quick 32)")
    parser.add_argument("--layers", type=int, default=None, help="encoder layers (default 3, quick 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the one training worker")
    args = parser.parse_args(argv)
    quick = args.quick
    args.patients = args.patients or (150 if quick else 10_000)
    args.pretrain_epochs = args.pretrain_epochs or (2 if quick else 10)
    args.finetune_epochs = args.finetune_epochs or (2 if quick else 10)
    args.rare_threshold = args.rare_threshold or (0.05 if quick else 0.01)
    args.min_common_positives = args.min_common_positives or (5 if quick else 10)
    sizes = {
        "d_model": args.d_model or (32 if quick else 128),
        "n_layers": args.layers or (2 if quick else 3),
        "n_heads": 4,
    }
    workdir = (args.workdir or WORK / ("method_comparison_quick" if quick else "method_comparison")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    import ray

    from rare_ecg.synth.archive import generate_archive
    from rare_ecg.synth.config import SynthConfig

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "budget": {
            "patients": args.patients,
            "pretrain_epochs": args.pretrain_epochs,
            "finetune_epochs": args.finetune_epochs,
            "network": sizes,
            "batch_size": args.batch_size,
            "rare_threshold": args.rare_threshold,
            "n_boot": args.n_boot,
        },
    }
    if not args.skip_synthetic:
        archive, lake = workdir / "synthetic-archive", workdir / "synthetic-lake"
        if not lake.exists():
            log(f"generating {args.patients} synthetic patients")
            generate_archive(
                SynthConfig(
                    out=archive, patients=args.patients, seed=args.seed, fs_hz=100, layout="ptbxl", workers=2
                ),
                overwrite=True,
            )
            ingest(archive, lake, "synthetic", 100)
        results["synthetic"] = run_cohort("synthetic", lake, workdir / "synthetic", args, sizes)
        (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
        log(f"synthetic: {json.dumps(results['synthetic']['comparison'])}")
    if not args.skip_real:
        real = SHARED_DATA / "ptbxl-sample"
        lake = workdir / "ptbxl-lake"
        if not lake.exists():
            ingest(real, lake, "ptbxl", 100)
        results["ptbxl_sample"] = run_cohort("ptbxl", lake, workdir / "ptbxl", args, sizes)
    results["seconds"] = round(time.perf_counter() - started, 1)
    (workdir / "results.json").write_text(json.dumps(results, indent=2, default=str))
    headline: dict[str, Any] = {"seconds": results["seconds"], "budget": results["budget"]}
    for cohort in ("synthetic", "ptbxl_sample"):
        if cohort in results:
            comp = results[cohort]["comparison"]
            headline[cohort] = {
                k: {m: comp[k][m][0] for m in ("rare_auroc", "common_auroc", "gap")}
                for k in (*VARIANTS, "forest_features")
            }
            headline[cohort]["gap_reduction_d_vs_a"] = comp.get("gap_reduction_d_vs_a")
    print(json.dumps(headline, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
