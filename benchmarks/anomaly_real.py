"""Does the label-free anomaly score find abnormal real ECGs? 5-fold patient-level cross-validation on
the 250 real PTB-XL records of ../shared/data (NORM vs any other finding).

Folds are PTB-XL strat_fold pairs (1-2, 3-4, 5-6, 7-8, 9-10: PTB-XL keeps a patient in one fold).
For each held-out pair, the next pair (cyclically) is the validation part and the other three train.
Each fold pretrains the default ModelConfig (library loop: warm-up, decay, checkpoint kept by the
best validation AUROC among the ECG-only candidates) in up to four variants: all training records or
normal ones only, from scratch or from a network pretrained once on synthetic normal records
(rare_ecg.synth; no real record involved, so one run serves every fold). The record score is chosen
on the validation part (rare_ecg.model.selection) and applied to the held-out pair.

Reported: out-of-fold AUROC with patient-bootstrap 95% CIs for every candidate (pooled, and within
each age band), for the chosen label-free score (its fold-wise ranks pooled), beside age alone and a
random forest on simple ECG features (rate, RR variability, the R-aligned median beat) on the same
folds; the inpainting ratio on each held-out pair; held-out age MAE against the training median;
wall time. Jobs run two at a time, one torch thread each.

    python -m benchmarks.anomaly_real [--quick] [--steps N] [--variants all,normal_only,...]

The last line is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from typing import Any

import numpy as np
import torch
from sklearn.ensemble import RandomForestClassifier

from benchmarks._common import emit, machine
from benchmarks.ecg_sets import ptbxl_records, synthetic_records
from rare_ecg.metrics.bootstrap import bootstrap_ci
from rare_ecg.metrics.ranking import auroc
from rare_ecg.metrics.subgroups import AGE_BANDS, age_bands
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.loop import LoopSettings, pretrain_loop, with_reference_set
from rare_ecg.model.network import EcgModel
from rare_ecg.model.scores import ECG_ONLY
from rare_ecg.model.selection import choose_record_score, record_candidates
from rare_ecg.model.skill import inpainting_skill
from rare_ecg.model.training import Batch

FOLD_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10))
VARIANTS = ("all", "normal_only", "synth+all", "synth+normal_only")


def fold_parts(strat_fold: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Record indices of the train / validation / test parts when pair k is held out."""
    pair = np.asarray([FOLD_PAIRS.index(p) for f in strat_fold for p in FOLD_PAIRS if f in p])
    val_pair = (k + 1) % len(FOLD_PAIRS)
    return {
        "test": np.flatnonzero(pair == k),
        "validation": np.flatnonzero(pair == val_pair),
        "train": np.flatnonzero((pair != k) & (pair != val_pair)),
    }


def validation_criterion(validation: Batch, train: Batch) -> Any:
    """Checkpoint criterion where labels exist: the best validation AUROC among ECG-only candidates."""
    abnormal = ~np.asarray(validation.normal, dtype=bool)

    def criterion(model: EcgModel) -> float:
        scored = with_reference_set(model, train)
        cands = record_candidates(scored, validation)
        return max(auroc(abnormal, cands[n]) for n in ECG_ONLY if n in cands)

    return criterion


def synth_pretrain(n_records: int, steps: int, batch: int, changes: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start = time.perf_counter()
    synth = synthetic_records(n_records, seed=5)
    held = synthetic_records(max(16, n_records // 10), seed=6)
    settings = LoopSettings(max_steps=steps, batch_size=batch, eval_every=max(1, steps // 4), warmup_steps=20)
    result = pretrain_loop(EcgModel(ModelConfig(**changes)), synth, held, settings)
    skill = inpainting_skill(result.model, [held])
    return {
        "state": result.model.state_dict(),
        "skill_synthetic_held_out": skill,
        "curve": [(r["step"], r["skill_vs_copy"], r["skill_vs_zero"]) for r in result.history],
        "seconds": time.perf_counter() - start,
    }


def run_fold(
    k: int, variant: str, steps: int, batch: int, init: dict[str, Any] | None, changes: dict[str, Any]
) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(k)
    start = time.perf_counter()
    data, meta = ptbxl_records()
    parts = fold_parts(meta["strat_fold"], k)
    train, validation, test = (data.subset(parts[p]) for p in ("train", "validation", "test"))
    model = EcgModel(ModelConfig(**changes))
    if variant.startswith("synth+"):
        if init is None:
            raise ValueError("a synth+ variant needs the synthetic pretraining state")
        model.load_state_dict(init["state"])
    skill_init = inpainting_skill(model, [test])
    settings = LoopSettings(
        max_steps=steps,
        batch_size=batch,
        eval_every=max(1, steps // 4),
        warmup_steps=min(20, steps // 5),
        normal_only=variant.endswith("normal_only"),
        seed=k,
    )
    result = pretrain_loop(model, train, validation, settings, validation_criterion(validation, train))
    model = with_reference_set(result.model, train)
    val_cands = record_candidates(model, validation)
    split = np.array(["validation"] * len(validation))
    chosen, val_auroc, _ = choose_record_score(val_cands, ~validation.normal, split)
    test_cands = record_candidates(model, test)
    skill = inpainting_skill(model, [test])
    attrs = result.history[-1]
    test_age_mae = float(np.nanmean(np.abs(_ages(model, test) - test.age)))
    median_mae = float(np.nanmean(np.abs(np.nanmedian(train.age) - test.age)))
    print(
        f"fold {k} {variant:>18}: chosen {chosen} (validation AUROC {val_auroc:.3f}), held-out skill vs "
        f"copy {skill['skill_vs_copy']:.3f}, {time.perf_counter() - start:.0f} s",
        flush=True,
    )
    return {
        "fold": k,
        "variant": variant,
        "test_idx": parts["test"],
        "candidates": test_cands,
        "chosen": chosen,
        "chosen_validation_auroc": val_auroc,
        "skill": skill,
        "skill_init": skill_init,
        "best_step": result.best_step,
        "steps": result.steps,
        "curve": [
            (int(r["step"]), round(r["skill_vs_copy"], 4), round(r["skill_vs_zero"], 4))
            for r in result.history
        ],
        "age_mae_test": test_age_mae,
        "age_mae_median_test": median_mae,
        "age_refit": {
            k2: attrs[k2] for k2 in ("age_mae_head", "age_mae_ridge", "age_mae_median") if k2 in attrs
        },
        "seconds": time.perf_counter() - start,
    }


def _ages(model: EcgModel, data: Batch) -> np.ndarray:
    from rare_ecg.model.loop import embed

    return embed(model, data)[1]


def ecg_features(data: Batch) -> np.ndarray:
    """Rate, RR variability and the R-aligned median beat of every lead (every 4th sample)."""
    feats = []
    for x, peaks in zip(data.signal, data.beat_positions, strict=True):
        p = np.asarray(peaks, dtype=np.int64)
        rr = np.diff(p) / 100.0
        hr = 60.0 / rr.mean() if rr.size else 0.0
        rr_sd = rr.std() if rr.size > 1 else 0.0
        ok = p[(p >= 28) & (p + 68 <= x.shape[-1])]
        beat = np.median(np.stack([x[:, r - 28 : r + 68] for r in ok]), 0) if ok.size else np.zeros((12, 96))
        feats.append(np.r_[hr, rr_sd, beat[:, ::4].ravel()])
    return np.asarray(feats)


def _auroc_ci(y: np.ndarray, s: np.ndarray, patients: np.ndarray, n_boot: int) -> list[float]:
    point = auroc(y, s)
    low, high = bootstrap_ci(lambda idx: np.array([auroc(y[idx], s[idx])]), patients, n_boot=n_boot)
    return [round(point, 3), round(float(low[0]), 3), round(float(high[0]), 3)]


def _fold_ranks(scores: np.ndarray, folds: np.ndarray) -> np.ndarray:
    out = np.empty_like(scores, dtype=np.float64)
    for f in np.unique(folds):
        m = folds == f
        out[m] = scores[m].argsort().argsort() / max(1, m.sum() - 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and variants (a smoke run)")
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps per fold and variant")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--synth-records", type=int, default=None)
    parser.add_argument("--variants", default=None, help=f"comma-separated, of {VARIANTS}")
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--model", default="{}", help='ModelConfig changes as JSON, e.g. {"beat_copy": true}')
    parser.add_argument("--plot", default=None, help="write the inpainting-ratio curves to this PNG")
    args = parser.parse_args()
    changes = json.loads(args.model)
    steps = args.steps or (30 if args.quick else 150)
    variants = (
        tuple(args.variants.split(",")) if args.variants else (VARIANTS[:2] if args.quick else VARIANTS)
    )
    n_synth = args.synth_records or (100 if args.quick else 600)
    start = time.perf_counter()

    data, meta = ptbxl_records()
    abnormal = ~np.asarray(data.normal, dtype=bool)
    patients = meta["patient_id"]
    pair_of = np.asarray([next(i for i, p in enumerate(FOLD_PAIRS) if f in p) for f in meta["strat_fold"]])

    ctx = mp.get_context("spawn")
    init = None
    synth_report: dict[str, Any] = {}
    with ctx.Pool(2) as pool:
        if any(v.startswith("synth+") for v in variants):
            init = pool.apply(synth_pretrain, (n_synth, steps, args.batch, changes))
            synth_report = {k: v for k, v in init.items() if k != "state"}
            print(f"synthetic pretraining: {synth_report['skill_synthetic_held_out']}", flush=True)
        jobs = [(k, v, steps, args.batch, init, changes) for v in variants for k in range(len(FOLD_PAIRS))]
        results = pool.starmap(run_fold, jobs)

    report: dict[str, Any] = {"steps": steps, "batch": args.batch, "model_changes": changes, "variants": {}}
    bands = age_bands(data.age)
    for variant in variants:
        rows = [r for r in results if r["variant"] == variant]
        idx = np.concatenate([r["test_idx"] for r in rows])
        y, pts, folds = abnormal[idx], patients[idx], pair_of[idx]
        names = sorted(set.intersection(*(set(r["candidates"]) for r in rows)))
        oof = {n: np.concatenate([r["candidates"][n] for r in rows]) for n in names}
        chosen = np.concatenate([r["candidates"][r["chosen"]] for r in rows])
        oof["chosen_label_free"] = _fold_ranks(chosen, folds)
        table = {n: _auroc_ci(y, s, pts, args.n_boot) for n, s in oof.items()}
        by_band = {
            n: {b: round(auroc(y[bands[idx] == b], s[bands[idx] == b]), 3) for b in AGE_BANDS}
            for n, s in oof.items()
        }
        report["variants"][variant] = {
            "oof_auroc_ci": table,
            "oof_auroc_by_age_band": by_band,
            "chosen_per_fold": [
                (r["fold"], r["chosen"], round(r["chosen_validation_auroc"], 3)) for r in rows
            ],
            "skill_vs_copy_per_fold": [round(r["skill"]["skill_vs_copy"], 3) for r in rows],
            "skill_vs_copy_at_init_per_fold": [round(r["skill_init"]["skill_vs_copy"], 3) for r in rows],
            "skill_vs_zero_per_fold": [round(r["skill"]["skill_vs_zero"], 3) for r in rows],
            "age_mae_test": [round(r["age_mae_test"], 1) for r in rows],
            "age_mae_median_test": [round(r["age_mae_median_test"], 1) for r in rows],
            "best_step": [r["best_step"] for r in rows],
            "skill_curve_per_fold": {r["fold"]: r["curve"] for r in rows},
            "seconds_per_fold": [round(r["seconds"], 0) for r in rows],
        }

    # Baselines on the same folds: age alone (no training), a random forest on ECG features.
    report["age_alone"] = _auroc_ci(
        abnormal, np.nan_to_num(data.age, nan=np.nanmedian(data.age)), patients, args.n_boot
    )
    report["age_alone_by_age_band"] = {
        b: round(auroc(abnormal[bands == b], data.age[bands == b]), 3) for b in AGE_BANDS
    }
    feats = ecg_features(data)
    rf = np.zeros(len(data))
    for k in range(len(FOLD_PAIRS)):
        parts = fold_parts(meta["strat_fold"], k)
        fit_idx = np.r_[parts["train"], parts["validation"]]
        clf = RandomForestClassifier(n_estimators=300, min_samples_leaf=3, random_state=0, n_jobs=1)
        clf.fit(feats[fit_idx], abnormal[fit_idx])
        rf[parts["test"]] = clf.predict_proba(feats[parts["test"]])[:, 1]
    report["random_forest_features"] = _auroc_ci(abnormal, _fold_ranks(rf, pair_of), patients, args.n_boot)
    report["random_forest_by_age_band"] = {
        b: round(auroc(abnormal[bands == b], rf[bands == b]), 3) for b in AGE_BANDS
    }
    report["synthetic_pretraining"] = synth_report
    report["synthetic_records"] = n_synth
    report["n_records"] = len(data)
    report["abnormal_share"] = round(float(abnormal.mean()), 3)
    report["wall_s"] = round(time.perf_counter() - start, 0)
    report["machine"] = machine()

    print(f"\nout-of-fold AUROC (NORM vs abnormal), {len(data)} records, {steps} steps per fold")
    print(
        f"age alone: {report['age_alone']}   random forest on ECG features: {report['random_forest_features']}"
    )
    for variant, v in report["variants"].items():
        print(f"-- {variant}: skill vs copy per fold {v['skill_vs_copy_per_fold']}")
        for name, ci in sorted(v["oof_auroc_ci"].items(), key=lambda kv: -np.nan_to_num(kv[1][0])):
            print(f"   {name:>18}: {ci[0]:.3f} [{ci[1]:.3f}, {ci[2]:.3f}]")
    if args.plot:
        plot_curves(report, args.plot)
    emit(report)


def plot_curves(report: dict[str, Any], path: str) -> None:
    """Held-out inpainting ratio against the aligned beat copy over training steps: one line per fold
    (validation part of each fold), one panel per variant, the synthetic pretraining beside them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(report["variants"].items())
    synth = report.get("synthetic_pretraining", {}).get("curve")
    n = len(panels) + (1 if synth else 0)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 3.2), sharey=True, squeeze=False)
    for ax, (variant, v) in zip(axes[0], panels, strict=False):
        for fold, curve in v["skill_curve_per_fold"].items():
            steps, ratio = [c[0] for c in curve], [c[1] for c in curve]
            ax.plot(steps, ratio, marker="o", ms=3, label=f"fold {fold}")
        ax.set_title(f"real PTB-XL, {variant}")
        ax.set_xlabel("training step")
    if synth:
        ax = axes[0][-1]
        ax.plot([c[0] for c in synth], [c[1] for c in synth], marker="o", ms=3, color="k")
        ax.set_title(f"synthetic ({report['synthetic_records']} records)")
        ax.set_xlabel("training step")
    for ax in axes[0]:
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[0][0].set_ylabel("hidden MSE / aligned beat copy")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
