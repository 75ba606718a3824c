"""Subgroup metrics by sex and age band, their largest gaps, each with a patient-bootstrap 95% CI.

Rows use the vocabulary of the ``subgroup_metrics`` table (DESIGN.md): group_kind in {overall, sex,
age_band}; label_set in {all, rare, common}; metric in {auroc, sens_at_spec90}. The largest gap
between the groups of a kind is the row with group "largest_gap".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rare_ecg.metrics.bootstrap import bootstrap_ci
from rare_ecg.metrics.labels import LabelSets
from rare_ecg.metrics.ranking import auroc_columns, sensitivity_at_specificity_columns

SEXES = ("male", "female")
AGE_BANDS = ("<40", "40-59", "60-79", "80+")
LABEL_SETS = ("all", "rare", "common")
METRICS = ("auroc", "sens_at_spec90")
LARGEST_GAP = "largest_gap"


def age_bands(age_years: np.ndarray) -> np.ndarray:
    """Band of each age: <40, 40-59, 60-79, 80+ ("" where the age is unknown)."""
    age = np.asarray(age_years, dtype=np.float64)
    band = np.full(age.shape, "", dtype=object)
    for name, lo, hi in (("<40", -np.inf, 40), ("40-59", 40, 60), ("60-79", 60, 80), ("80+", 80, np.inf)):
        band[(age >= lo) & (age < hi)] = name
    return band


@dataclass(frozen=True)
class MetricRow:
    group_kind: str
    group: str
    label_set: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int  # records in the group
    n_pos: int  # of them, records with at least one positive label of the set


def _macro(values: np.ndarray, cols: np.ndarray) -> float:
    v = values[cols]
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _gap(values: list[float]) -> float:
    v = [x for x in values if np.isfinite(x)]
    return max(v) - min(v) if len(v) >= 2 else float("nan")


def subgroup_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    sets: LabelSets,
    sex: Sequence[str | None],
    age_years: np.ndarray,
    patient_ids: np.ndarray,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
    specificity: float = 0.9,
) -> list[MetricRow]:
    """Macro AUROC and macro sensitivity at ``specificity`` per group and label set, plus the largest
    gap between the groups of each kind; CIs resample patients. ``sex`` holds "male" / "female" / None."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"targets {y.shape} and scores {s.shape} must both be (n, {len(labels)})")
    sex_arr = np.asarray([v if v in SEXES else "" for v in sex], dtype=object)
    band_arr = age_bands(age_years)
    if not len(sex_arr) == len(band_arr) == len(patient_ids) == len(y):
        raise ValueError("sex, age_years and patient_ids need one value per record")
    index = {label: j for j, label in enumerate(labels)}
    cols = {
        "all": np.arange(len(labels)),
        "rare": np.asarray([index[x] for x in sets.rare], dtype=np.int64),
        "common": np.asarray([index[x] for x in sets.common], dtype=np.int64),
    }
    groups: list[tuple[str, str, np.ndarray | None]] = [("overall", "all", None)]
    groups += [("sex", g, sex_arr) for g in SEXES]
    groups += [("age_band", g, band_arr) for g in AGE_BANDS]

    def statistic(idx: np.ndarray) -> np.ndarray:
        values: dict[tuple[str, str, str, str], float] = {}
        for kind, group, key in groups:
            sel = idx if key is None else idx[key[idx] == group]
            au = auroc_columns(y[sel], s[sel])
            se = sensitivity_at_specificity_columns(y[sel], s[sel], specificity)
            for label_set, c in cols.items():
                values[(kind, group, label_set, "auroc")] = _macro(au, c)
                values[(kind, group, label_set, "sens_at_spec90")] = _macro(se, c)
        for kind, names in (("sex", SEXES), ("age_band", AGE_BANDS)):
            for label_set in LABEL_SETS:
                for metric in METRICS:
                    gap = _gap([values[(kind, g, label_set, metric)] for g in names])
                    values[(kind, LARGEST_GAP, label_set, metric)] = gap
        return np.asarray([values[k] for k in keys])

    keys = _row_keys(groups)
    everyone = np.arange(len(y))
    point = statistic(everyone)
    low, high = bootstrap_ci(statistic, np.asarray(patient_ids), n_boot=n_boot, level=level, seed=seed)
    rows = []
    for i, (kind, group, label_set, metric) in enumerate(keys):
        if group == LARGEST_GAP:
            member = (sex_arr if kind == "sex" else band_arr) != ""
        elif kind == "overall":
            member = np.ones(len(y), dtype=bool)
        else:
            member = (sex_arr if kind == "sex" else band_arr) == group
        n_pos = int(y[member][:, cols[label_set]].any(1).sum()) if cols[label_set].size else 0
        rows.append(
            MetricRow(
                kind,
                group,
                label_set,
                metric,
                float(point[i]),
                float(low[i]),
                float(high[i]),
                int(member.sum()),
                n_pos,
            )
        )
    return rows


def _row_keys(groups: list[tuple[str, str, np.ndarray | None]]) -> list[tuple[str, str, str, str]]:
    """Every (group_kind, group, label_set, metric) row, in output order."""
    keys = [(k, g, ls, m) for k, g, _ in groups for ls in LABEL_SETS for m in METRICS]
    keys += [(k, LARGEST_GAP, ls, m) for k in ("sex", "age_band") for ls in LABEL_SETS for m in METRICS]
    return keys
