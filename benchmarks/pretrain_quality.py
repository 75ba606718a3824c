"""Does stage 1 learn what the paper says? The pretraining job's encoder, judged on held-out patients.

    python -m benchmarks.pretrain_quality [--quick] [--workdir DIR] [--max-test N]

For each cohort (a synthetic long-tail cohort of >= 10,000 ECGs, and the 250 real PTB-XL records of
../shared/data): the lake and the encoder registered by the pretraining job (`rare-ecg pretrain`,
Ray Train) in ``--workdir``, by default the ones `benchmarks.method_comparison` built and trained
(the same budget: one pretraining serves both experiments); where the folder has none, this script
generates, ingests and pretrains them itself with the same defaults. Then on the test split (patients
never seen by pretraining), with patient-bootstrap 95% CIs:

- every label-free (ECG-only) record-score candidate and the one chosen on validation
  (`rare_ecg.train.scoring_choice`): AUROC for normal vs abnormal records, for rare-label records vs
  normal ones (rare: training prevalence under ``--rare-threshold``), and per label (label vs normal);
- the localization AUROC of the anomaly map against the ground-truth masks of `ecg_annotations`
  (synthetic only; the paper reports 76.5);
- the attribute heads: age MAE against always predicting the training median, sex AUROC;
- age alone as a detector of abnormal records, the baseline a label-free score has to beat.

Results land in ``<workdir>/pretrain_quality.json``; the last stdout line is the headline JSON.
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
import torch

from benchmarks._common import WORK, machine

COHORTS = ("synthetic", "ptbxl")


def log(msg: str) -> None:
    print(f"pretrain_quality: {msg}", file=sys.stderr, flush=True)


def _ci(y: np.ndarray, s: np.ndarray, patients: np.ndarray, n_boot: int) -> list[float]:
    from rare_ecg.metrics.bootstrap import bootstrap_ci
    from rare_ecg.metrics.ranking import auroc

    point = auroc(y, s)
    if not np.isfinite(point):
        return [float("nan")] * 3
    low, high = bootstrap_ci(lambda idx: np.array([auroc(y[idx], s[idx])]), patients, n_boot=n_boot)
    return [round(float(point), 3), round(float(low[0]), 3), round(float(high[0]), 3)]


def _encoder(root: Path) -> str | None:
    import mlflow

    from rare_ecg.registry import ENCODER_NAME

    db = root / "mlflow.db"
    if not db.exists():
        return None
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name='{ENCODER_NAME}'")
    except Exception:
        return None
    if not versions:
        return None
    return f"models:/{ENCODER_NAME}/{max(int(v.version) for v in versions)}"


def evaluate(lake: Path, encoder_uri: str, args: argparse.Namespace) -> dict[str, Any]:
    from rare_ecg.evaluation.localization import annotation_truth
    from rare_ecg.lake.paths import storage_options, table_uri
    from rare_ecg.lake.schema import ECG_ANNOTATIONS, ECG_LABELS, ECG_RECORDS
    from rare_ecg.metrics.localization import localization_auroc
    from rare_ecg.metrics.ranking import auroc
    from rare_ecg.model.anomaly import all_scores, anomaly_map
    from rare_ecg.model.config import ModelConfig
    from rare_ecg.model.network import EcgModel
    from rare_ecg.model.scores import ECG_ONLY
    from rare_ecg.registry import load_model
    from rare_ecg.train.data import open_snapshot, split_plan
    from rare_ecg.train.scoring_choice import NORMAL_LABEL, attach_score, read_split

    encoder, meta = load_model(encoder_uri)
    versions = {k: int(v) for k, v in meta["table_versions"].items()}
    snapshot = open_snapshot(str(lake), versions)
    plan = split_plan(snapshot)
    # a fresh reference set and score choice with this code (whatever the registered version holds)
    bare = EcgModel(ModelConfig.from_dict({**encoder.cfg.to_dict(), "n_reference": 0}))
    bare.load_state_dict({k: v for k, v in encoder.state_dict().items() if k != "reference"}, strict=False)
    model, tags = attach_score(bare, snapshot, plan, choose=True)
    model.eval()

    labels = pl.read_delta(str(lake / ECG_LABELS)).select("record_id", "label")
    train_ids = plan.filter(pl.col("split") == "train")["record_id"].to_list()
    prevalence = (
        labels.filter(pl.col("record_id").is_in(train_ids))
        .group_by("label")
        .agg(pl.col("record_id").n_unique().alias("n"))
        .with_columns(pl.col("n") / len(train_ids))
    )
    rare_labels = set(prevalence.filter(pl.col("n") < args.rare_threshold)["label"].to_list())
    test_ids = sorted(plan.filter(pl.col("split") == "test")["record_id"].to_list())
    per_record = labels.filter(pl.col("record_id").is_in(test_ids)).group_by("record_id").agg("label")
    label_sets = {r: set(ls) for r, ls in per_record.rows()}
    test_ids = [r for r in test_ids if r in label_sets]  # unlabelled records are unknown, left out
    if args.max_test and len(test_ids) > args.max_test:
        rng = np.random.default_rng(0)
        test_ids = sorted(rng.choice(test_ids, size=args.max_test, replace=False).tolist())
    data = read_split(snapshot, plan, test_ids, model.cfg)
    if len(set(data.record_ids)) != len(data.record_ids):
        raise SystemExit("records longer than one window: this script assumes 10 s records")
    ids = data.record_ids
    records = (
        pl.read_delta(str(lake / ECG_RECORDS), version=versions[ECG_RECORDS])
        .select("record_id", "patient_key", "age", "sex", "fs_hz")
        .filter(pl.col("record_id").is_in(ids))
    )
    info = {r[0]: r[1:] for r in records.rows()}
    patients = np.asarray([info[r][0] or r for r in ids])

    cands: dict[str, list[np.ndarray]] = {}
    maps, ages, sex_logits = [], [], []
    batch = data.batch
    with torch.no_grad():
        for start in range(0, len(batch), 32):
            rows = batch.subset(np.arange(start, min(len(batch), start + 32)))
            x, lead_mask, beat_start, phase, neighbours = rows.inputs(model.cfg).torch()
            out = model(x, lead_mask, beat_start, phase, beat_neighbours=neighbours)
            amap = anomaly_map(model, x, lead_mask, beat_start, phase, neighbours, out=out)
            for name, value in all_scores(amap, model, None).items():
                cands.setdefault(name, []).append(value.numpy())
            maps.append(amap.coarse_map.numpy())
            ages.append(out.age.numpy())
            sex_logits.append(out.sex_logit.numpy())
    scores = {n: np.concatenate(v) for n, v in cands.items() if n in ECG_ONLY}
    scores["chosen"] = scores[model.cfg.record_score]
    normal = np.asarray([NORMAL_LABEL in label_sets[r] for r in ids])
    abnormal = ~normal
    rare_rec = np.asarray([bool(label_sets[r] & rare_labels) for r in ids])
    age_true = np.asarray([info[r][1] if info[r][1] is not None else np.nan for r in ids], dtype=float)
    age_pred = np.concatenate(ages)
    n_boot = args.n_boot

    result: dict[str, Any] = {
        "encoder": encoder_uri,
        "table_versions": versions,
        "score_choice": tags,
        "test_records": len(ids),
        "test_patients": len(set(patients.tolist())),
        "abnormal_share": round(float(abnormal.mean()), 3),
        "rare_labels": sorted(rare_labels),
        "rare_label_records": int(rare_rec.sum()),
    }
    result["normal_vs_abnormal"] = {n: _ci(abnormal, s, patients, n_boot) for n, s in scores.items()}
    keep = normal | rare_rec
    result["rare_vs_normal"] = {
        n: _ci(rare_rec[keep], s[keep], patients[keep], n_boot) for n, s in scores.items()
    }
    age_filled = np.nan_to_num(age_true, nan=float(np.nanmedian(age_true)))
    result["age_alone_normal_vs_abnormal"] = _ci(abnormal, age_filled, patients, n_boot)
    per_label = {}
    for label in sorted({x for ls in label_sets.values() for x in ls} - {NORMAL_LABEL}):
        pos = np.asarray([label in label_sets[r] for r in ids])
        if pos.sum() >= args.min_label_positives:
            m = pos | normal
            per_label[label] = {
                "n_positive": int(pos.sum()),
                "rare": label in rare_labels,
                "auroc_chosen": round(float(auroc(pos[m], scores["chosen"][m])), 3),
            }
    result["per_label_chosen"] = per_label

    # localization: the coarse anomaly map against the ground-truth masks where annotations exist
    try:
        spans = pl.read_delta(table_uri(str(lake), ECG_ANNOTATIONS), storage_options=storage_options())
    except Exception:
        spans = None
    if spans is not None and not spans.is_empty():
        spans = spans.filter(pl.col("record_id").is_in(ids))
        amaps = np.concatenate(maps)
        lead_masks = np.asarray(batch.lead_mask, dtype=bool)
        m_all, t_all, v_all = [], [], []
        for i, rid in enumerate(ids):
            group = spans.filter(pl.col("record_id") == rid)
            if group.is_empty():
                continue
            truth = annotation_truth(group, float(info[rid][3]), amaps.shape[-1], model.cfg)
            m_all.append(amaps[i].ravel())
            t_all.append(truth.ravel())
            v_all.append(np.repeat(lead_masks[i], amaps.shape[-1]))
        if m_all:
            m, t, v = np.concatenate(m_all), np.concatenate(t_all), np.concatenate(v_all)
            result["localization_auroc"] = round(float(localization_auroc(m, t, v)), 3)
            result["localization_records"] = len(m_all)
            result["localization_cells"] = int(t[v].sum())

    train_age = plan.filter(pl.col("split") == "train")["age"].drop_nulls().to_numpy()
    ok = np.isfinite(age_true)
    result["age_mae_head"] = round(float(np.abs(age_pred[ok] - age_true[ok]).mean()), 2)
    result["age_mae_training_median"] = round(float(np.abs(np.median(train_age) - age_true[ok]).mean()), 2)
    sex = np.asarray([info[r][2] for r in ids], dtype=object)
    known = np.isin(sex, ["female", "male"])
    result["sex_auroc"] = _ci(
        (sex[known] == "female"), np.concatenate(sex_logits)[known], patients[known], n_boot
    )
    return result


def pretrain_here(cohort: str, workdir: Path, args: argparse.Namespace) -> tuple[Path, str]:
    """The lake and encoder of method_comparison's layout, built here when missing (same defaults)."""
    from benchmarks._common import SHARED_DATA
    from benchmarks.method_comparison import ingest
    from rare_ecg.config import PretrainConfig, Settings
    from rare_ecg.synth.archive import generate_archive
    from rare_ecg.synth.config import SynthConfig
    from rare_ecg.train.job import run_pretrain_job
    from rare_ecg.train.progress import print_epoch

    lake = workdir / ("synthetic-lake" if cohort == "synthetic" else "ptbxl-lake")
    root = workdir / cohort
    if not lake.exists():
        if cohort == "synthetic":
            archive = workdir / "synthetic-archive"
            generate_archive(
                SynthConfig(
                    out=archive, patients=args.patients, seed=0, fs_hz=100, layout="ptbxl", workers=2
                ),
                overwrite=True,
            )
            ingest(archive, lake, "synthetic", 100)
        else:
            ingest(SHARED_DATA / "ptbxl-sample", lake, "ptbxl", 100)
    uri = _encoder(root)
    if uri is None:
        settings = Settings.model_validate({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
        root.mkdir(parents=True, exist_ok=True)
        summary = run_pretrain_job(
            PretrainConfig(
                lake=str(lake),
                storage_path=str(root / "runs"),
                epochs=args.epochs,
                d_model=args.d_model,
                n_layers=args.layers,
                threads_per_worker=2,
            ),
            settings,
            on_epoch=print_epoch,
        )
        uri = summary["model_uri"]
    return lake, uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_quality", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="at most 300 test records per cohort")
    parser.add_argument("--workdir", type=Path, default=None, help="default: method_comparison's folder")
    parser.add_argument("--cohorts", default=",".join(COHORTS))
    parser.add_argument("--max-test", type=int, default=None)
    parser.add_argument("--rare-threshold", type=float, default=0.01)
    parser.add_argument("--min-label-positives", type=int, default=5)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--patients", type=int, default=10_000, help="when generating the cohort here")
    parser.add_argument("--epochs", type=int, default=4, help="when pretraining here")
    parser.add_argument("--d-model", type=int, default=64, help="when pretraining here")
    parser.add_argument("--layers", type=int, default=2, help="when pretraining here")
    args = parser.parse_args(argv)
    args.max_test = args.max_test or (300 if args.quick else None)
    workdir = (args.workdir or WORK / "method_comparison").resolve()
    workdir.mkdir(parents=True, exist_ok=True)

    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(2)
    started = time.perf_counter()
    report: dict[str, Any] = {"machine": machine(), "workdir": str(workdir), "cohorts": {}}
    for cohort in args.cohorts.split(","):
        t0 = time.perf_counter()
        lake, uri = pretrain_here(cohort, workdir, args)
        log(f"{cohort}: evaluating {uri} on the test split of {lake}")
        result = evaluate(lake, uri, args)
        result["seconds"] = round(time.perf_counter() - t0, 1)
        report["cohorts"][cohort] = result
        log(f"{cohort}: {json.dumps(result, default=str)}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    (workdir / "pretrain_quality.json").write_text(json.dumps(report, indent=2, default=str))
    headline = {
        c: {
            "chosen_score": r["score_choice"].get("record_score"),
            "normal_vs_abnormal": r["normal_vs_abnormal"]["chosen"],
            "rare_vs_normal": r["rare_vs_normal"]["chosen"],
            "age_alone": r["age_alone_normal_vs_abnormal"],
            "localization_auroc": r.get("localization_auroc"),
            "age_mae_head": r["age_mae_head"],
            "age_mae_training_median": r["age_mae_training_median"],
            "sex_auroc": r["sex_auroc"],
        }
        for c, r in report["cohorts"].items()
    }
    print(json.dumps(headline, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
