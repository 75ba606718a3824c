"""The evaluation job: a registered classifier on one split of the lake -> subgroup_metrics (one atomic,
idempotent commit), the same numbers on the model's MLflow run with a JSON artifact, and a summary.

The run id is a function of the model version, the split and the lake content at the pinned table versions
(rare_ecg.lake.paths.content_id), so running the same model on the same split of the same data again finds
its commit and adds nothing, even after an idempotent re-ingest moved the version numbers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from rare_ecg.archive.labels import canonical_vocabulary
from rare_ecg.config import EvaluateConfig, Settings
from rare_ecg.evaluation.localization import split_localization
from rare_ecg.evaluation.metrics_rows import metric_rows, metrics_table
from rare_ecg.evaluation.predict import SplitPredictions, split_predictions
from rare_ecg.lake import commit
from rare_ecg.lake.paths import content_id, normalize_lake
from rare_ecg.lake.schema import ECG_ANNOTATIONS, SUBGROUP_METRICS
from rare_ecg.metrics import LabelSets, age_mae, common_rare_gap, macro_metric, per_label_metrics, sex_auroc
from rare_ecg.registry import load_model
from rare_ecg.scoring.cohort import pin_versions, table_version

JOB = "evaluate"


class EvaluationInputError(ValueError):
    """The model or the split cannot be evaluated (one-line reason)."""


def model_label_sets(metadata: dict[str, Any], labels: tuple[str, ...]) -> LabelSets:
    """Rare / common / excluded labels as the classifier recorded them from its training prevalence."""
    rare = set(metadata.get("rare_labels") or ())
    common = set(metadata.get("common_labels") or (set(labels) - rare))
    return LabelSets(
        rare=tuple(x for x in labels if x in rare),
        common=tuple(x for x in labels if x in common),
        excluded=tuple(x for x in labels if x not in rare and x not in common),
        prevalence={k: float(v) for k, v in (metadata.get("train_prevalence") or {}).items()},
    )


def check_vocabulary(labels: tuple[str, ...], uri: str) -> None:
    if not labels:
        raise EvaluationInputError(f"{uri} has no label vocabulary: it is not a classifier")
    unknown = sorted(set(labels) - set(canonical_vocabulary()))
    if unknown:
        raise EvaluationInputError(
            f"{uri}'s label vocabulary does not match the lake's canonical SCP-ECG codes: {unknown} are not among them"
        )


def evaluation_run_id(name: str, version: str, split: str, lake: str, versions: dict[str, int]) -> str:
    return f"{name}-v{version}-{split}-{content_id(lake, versions)[:10]}"


def summarize(sp: SplitPredictions, sets: LabelSets, rows: list[dict]) -> dict[str, Any]:
    """The headline numbers: macro AUROC all / rare / common, the gap, per-label status, largest gaps."""
    pred = sp.predictions
    per_label = per_label_metrics(pred.y_true, pred.y_prob, pred.labels)
    macro = {
        name: macro_metric(per_label, subset)
        for name, subset in (("all", None), ("rare", sets.rare), ("common", sets.common))
    }
    gaps = [
        {k: r[k] for k in ("group_kind", "label_set", "metric", "value", "ci_low", "ci_high", "n", "n_pos")}
        for r in rows
        if r["group"] == "largest_gap" and r["value"] is not None
    ]
    largest = max(gaps, key=lambda r: r["value"], default=None)

    def clean(x: float) -> float | None:
        return round(float(x), 4) if np.isfinite(x) else None

    sex_known = [s if s in ("male", "female") else None for s in pred.sex]
    return {
        "records": len(sp.record_ids),
        "patients": len(set(pred.patient_ids.tolist())),
        "unlabelled_left_out": sp.n_unlabelled,
        "skipped_by_reason": sp.skipped_by_reason,
        "macro_auroc": {k: clean(v) for k, v in macro.items()},
        "common_rare_gap": clean(common_rare_gap(per_label, sets)),
        "labels_without_positives": [m.label for m in per_label if m.n_pos == 0],
        "per_label": {
            m.label: {"auroc": clean(m.auroc), "auprc": clean(m.auprc), "n_pos": m.n_pos, "status": m.status}
            for m in per_label
        },
        "largest_subgroup_gap": largest,
        "age_mae_years": clean(age_mae(pred.age_years, sp.age_pred)),
        "sex_auroc": clean(sex_auroc(sex_known, sp.sex_female_prob)),
    }


def run_evaluate_job(cfg: EvaluateConfig, settings: Settings) -> dict[str, Any]:
    """Evaluate ``cfg.model`` on ``cfg.split``; returns the summary (the CLI's JSON line)."""
    import mlflow

    started = time.perf_counter()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model, metadata = load_model(cfg.model)  # ModelNotFound (a ValueError) for an unknown reference
    labels = tuple(model.cfg.labels)
    check_vocabulary(labels, cfg.model)
    lake = normalize_lake(cfg.lake or settings.lake)
    versions = pin_versions(lake)
    annotations = table_version(lake, ECG_ANNOTATIONS)
    if annotations is not None:
        versions[ECG_ANNOTATIONS] = annotations
    saved = metadata.get("thresholds") or {}
    thresholds = np.asarray([float(saved.get(x, 0.5)) for x in labels], dtype=np.float32)
    sp = split_predictions(lake, cfg.split, model, versions, thresholds, cfg.batch_size)
    sets = model_label_sets(metadata, labels)
    rows = metric_rows(sp.predictions, sets, n_boot=cfg.n_boot, seed=cfg.seed)
    rows += attribute_rows(sp)
    loc_auroc, loc_records, loc_cells = split_localization(lake, sp, model.cfg, versions)
    if loc_records:
        rows.append(
            {
                "group_kind": "overall",
                "group": "all",
                "label_set": "all",
                "metric": "localization_auroc",
                "value": float(loc_auroc) if np.isfinite(loc_auroc) else None,
                "ci_low": None,
                "ci_high": None,
                "n": loc_records,
                "n_pos": loc_cells,
            }
        )
    name, version = str(metadata["registered_name"]), str(metadata["registered_version"])
    run_id = evaluation_run_id(name, version, cfg.split, lake, versions)
    table = metrics_table(rows, run_id=run_id, model_version=version, cohort=f"split={cfg.split}")
    summary = {
        "run_id": run_id,
        "model_name": name,
        "model_version": version,
        "model_uri": cfg.model,
        "split": cfg.split,
        "lake": lake,
        "table_versions": versions,
        **summarize(sp, sets, rows),
        "localization_auroc": round(float(loc_auroc), 4) if np.isfinite(loc_auroc) else None,
        "localization_records": loc_records,
        "rare_labels": list(sets.rare),
        "common_labels": list(sets.common),
        "subgroup_metric_rows": table.num_rows,
    }
    committed = False
    if not commit.is_committed(lake, SUBGROUP_METRICS, JOB, run_id):
        files = commit.write_part_files(table, lake, SUBGROUP_METRICS, run_id)
        committed = commit.commit_files(
            lake,
            SUBGROUP_METRICS,
            files,
            job=JOB,
            run_id=run_id,
            metadata={"rare_ecg.model": f"{name}/{version}", "rare_ecg.cohort": f"split={cfg.split}"},
        )
        if committed:
            _log_to_mlflow(metadata["run_id"], cfg.split, version, summary, rows)
    summary["committed"] = committed
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def attribute_rows(sp: SplitPredictions) -> list[dict]:
    """Attribute-head errors as extra overall rows (metric age_mae in years, sex_auroc)."""
    pred = sp.predictions
    sex_known = [s if s in ("male", "female") else None for s in pred.sex]
    n_age = int(np.isfinite(pred.age_years).sum())
    n_sex = sum(s is not None for s in sex_known)
    out = []
    for metric, value, n in (
        ("age_mae", age_mae(pred.age_years, sp.age_pred), n_age),
        ("sex_auroc", sex_auroc(sex_known, sp.sex_female_prob), n_sex),
    ):
        out.append(
            {
                "group_kind": "overall",
                "group": "all",
                "label_set": "all",
                "metric": metric,
                "value": float(value) if np.isfinite(value) else None,
                "ci_low": None,
                "ci_high": None,
                "n": n,
                "n_pos": sum(s == "female" for s in sex_known) if metric == "sex_auroc" else n,
            }
        )
    return out


def _log_to_mlflow(run_id: str, split: str, version: str, summary: dict[str, Any], rows: list[dict]) -> None:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    metrics = {f"{split}_macro_auroc_{k}": v for k, v in summary["macro_auroc"].items() if v is not None}
    for key in ("common_rare_gap", "age_mae_years", "sex_auroc", "localization_auroc"):
        if summary[key] is not None:
            metrics[f"{split}_{key}"] = summary[key]
    if summary["largest_subgroup_gap"] is not None:
        metrics[f"{split}_largest_subgroup_gap"] = summary["largest_subgroup_gap"]["value"]
    # the client, not the fluent API: mlflow.start_run(run_id) refuses a run of another experiment than
    # the process's active one (set by any earlier job in the same process)
    client = MlflowClient()
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
    client.log_dict(run_id, {"summary": summary, "rows": rows}, f"evaluation/{split}-v{version}.json")


def table_lines(summary: dict[str, Any]) -> list[str]:
    """The readable table (stderr): headline macros, then per-label AUROC/AUPRC."""
    m = summary["macro_auroc"]

    def f(x: float | None) -> str:
        return "  n/a" if x is None else f"{x:.3f}"

    lines = [
        f"evaluate {summary['model_name']} v{summary['model_version']} on {summary['split']}: "
        f"{summary['records']} records, {summary['patients']} patients",
        f"  macro AUROC all {f(m['all'])}  rare {f(m['rare'])}  common {f(m['common'])}  "
        f"gap {f(summary['common_rare_gap'])}",
    ]
    gap = summary["largest_subgroup_gap"]
    if gap is not None:
        lines.append(
            f"  largest subgroup gap: {gap['group_kind']} {gap['label_set']} {gap['metric']} {gap['value']:.3f} "
            f"[{f(gap['ci_low'])}, {f(gap['ci_high'])}] n={gap['n']}"
        )
    lines.append(
        f"  age MAE {f(summary['age_mae_years'])} years, sex AUROC {f(summary['sex_auroc'])}, localization "
        f"AUROC {f(summary['localization_auroc'])} ({summary['localization_records']} annotated records)"
    )
    lines.append(f"  {'label':<10} {'AUROC':>6} {'AUPRC':>6} {'n_pos':>6}  set")
    for label, v in summary["per_label"].items():
        kind = (
            "rare"
            if label in summary["rare_labels"]
            else "common"
            if label in summary["common_labels"]
            else "-"
        )
        status = "" if v["status"] == "ok" else f"  ({v['status']}: excluded from means)"
        lines.append(f"  {label:<10} {f(v['auroc']):>6} {f(v['auprc']):>6} {v['n_pos']:>6}  {kind}{status}")
    return lines
