"""Predictions + labels -> `subgroup_metrics` rows (DESIGN.md's vocabulary), on top of rare_ecg.metrics.

Shared by the scoring job (a labelled cohort) and the evaluation job (a split). Rows:
- group_kind overall / sex / age_band (with the `largest_gap` group), label_set all / rare / common:
  macro AUROC and sensitivity at 90% specificity with patient-bootstrap 95% CIs (rare_ecg.metrics);
- overall, label_set all / rare / common: macro AUPRC; label_set all: ECE;
- overall, label_set = one label code: that label's AUROC and AUPRC (labels without positives in the
  cohort get rows with a null value: reported, never dropped);
- every group and label set: n_flagged, the records with at least one predicted label of the set.
A metric undefined on the data (no positives) is null, never NaN, so SQL aggregates skip it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rare_ecg.lake.schema import SCHEMAS, SUBGROUP_METRICS
from rare_ecg.metrics import (
    LabelSets,
    expected_calibration_error,
    macro_metric,
    per_label_metrics,
    subgroup_metrics,
)
from rare_ecg.metrics.subgroups import AGE_BANDS, LABEL_SETS, SEXES, age_bands

METRIC_AUROC = "auroc"
METRIC_AUPRC = "auprc"
METRIC_SENS_AT_SPEC90 = "sens_at_spec90"
METRIC_ECE = "ece"
METRIC_N_FLAGGED = "n_flagged"
METRICS = (METRIC_AUROC, METRIC_AUPRC, METRIC_SENS_AT_SPEC90, METRIC_ECE, METRIC_N_FLAGGED)
GROUP_KINDS = ("overall", "sex", "age_band")


@dataclass(frozen=True)
class Predictions:
    """One evaluated cohort: (n, L) targets, probabilities and decisions in the model's label order."""

    labels: tuple[str, ...]
    y_true: np.ndarray  # (n, L) {0, 1}
    y_prob: np.ndarray  # (n, L) in [0, 1]
    y_pred: np.ndarray  # (n, L) bool: probability >= the label's threshold
    sex: Sequence[str | None]  # male | female | None
    age_years: np.ndarray  # (n,) NaN where unknown
    patient_ids: np.ndarray  # (n,) bootstrap resamples patients

    def __post_init__(self) -> None:
        n, n_labels = len(self.patient_ids), len(self.labels)
        for name in ("y_true", "y_prob", "y_pred"):
            shape = np.shape(getattr(self, name))
            if shape != (n, n_labels):
                raise ValueError(f"{name} has shape {shape}; expected ({n}, {n_labels})")
        if len(self.sex) != n or np.shape(self.age_years) != (n,):
            raise ValueError("sex and age_years need one value per record")


def _value(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def metric_rows(pred: Predictions, sets: LabelSets, n_boot: int = 200, seed: int = 0) -> list[dict]:
    """Every subgroup_metrics row of one cohort, without the run columns (run_id, model_version, cohort)."""
    y = np.asarray(pred.y_true).astype(bool)
    rows: list[dict] = []

    def add(kind: str, group: str, label_set: str, metric: str, value: float, n: int, n_pos: int,
            ci: tuple[float, float] = (float("nan"), float("nan"))) -> None:  # fmt: skip
        rows.append(
            {
                "group_kind": kind,
                "group": group,
                "label_set": label_set,
                "metric": metric,
                "value": _value(value),
                "ci_low": _value(ci[0]),
                "ci_high": _value(ci[1]),
                "n": int(n),
                "n_pos": int(n_pos),
            }
        )

    for r in subgroup_metrics(
        y,
        pred.y_prob,
        pred.labels,
        sets,
        pred.sex,
        pred.age_years,
        pred.patient_ids,
        n_boot=n_boot,
        seed=seed,
    ):
        add(r.group_kind, r.group, r.label_set, r.metric, r.value, r.n, r.n_pos, (r.ci_low, r.ci_high))

    per_label = per_label_metrics(y, pred.y_prob, pred.labels)
    index = {label: j for j, label in enumerate(pred.labels)}
    subsets = {"all": tuple(pred.labels), "rare": sets.rare, "common": sets.common}
    n = len(y)
    for label_set, members in subsets.items():
        cols = [index[x] for x in members]
        n_pos = int(y[:, cols].any(1).sum()) if cols else 0
        add("overall", "all", label_set, METRIC_AUPRC, macro_metric(per_label, members, "auprc"), n, n_pos)
    add(
        "overall",
        "all",
        "all",
        METRIC_ECE,
        expected_calibration_error(y, pred.y_prob),
        n,
        int(y.any(1).sum()),
    )
    for m in per_label:
        add("overall", "all", m.label, METRIC_AUROC, m.auroc, m.n, m.n_pos)
        add("overall", "all", m.label, METRIC_AUPRC, m.auprc, m.n, m.n_pos)

    sex = np.asarray([s if s in SEXES else "" for s in pred.sex], dtype=object)
    band = age_bands(pred.age_years)
    groups: list[tuple[str, str, np.ndarray]] = [("overall", "all", np.ones(n, dtype=bool))]
    groups += [("sex", g, sex == g) for g in SEXES]
    groups += [("age_band", g, band == g) for g in AGE_BANDS]
    flagged = np.asarray(pred.y_pred).astype(bool)
    for kind, group, member in groups:
        for label_set in LABEL_SETS:
            cols = [index[x] for x in subsets[label_set]]
            hit = flagged[member][:, cols].any(1) if cols else np.zeros(int(member.sum()), bool)
            pos = y[member][:, cols].any(1) if cols else np.zeros(int(member.sum()), bool)
            add(kind, group, label_set, METRIC_N_FLAGGED, float(hit.sum()), int(member.sum()), int(pos.sum()))
    return rows


def metrics_table(rows: list[dict], *, run_id: str, model_version: str, cohort: str) -> pa.Table:
    """Rows in the subgroup_metrics schema, with the run columns."""
    full = [{"run_id": run_id, "model_version": model_version, "cohort": cohort, **r} for r in rows]
    return pa.Table.from_pylist(full, schema=SCHEMAS[SUBGROUP_METRICS])
