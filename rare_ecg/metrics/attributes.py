"""Metrics of the patient-attribute heads: age error and sex discrimination."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rare_ecg.metrics.ranking import auroc


def age_mae(age_true: np.ndarray, age_pred: np.ndarray) -> float:
    """Mean absolute error in years over records whose true age is known (NaN when none is)."""
    t = np.asarray(age_true, dtype=np.float64).ravel()
    p = np.asarray(age_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise ValueError(f"age_true has {t.size} values but age_pred has {p.size}")
    known = np.isfinite(t)
    return float(np.abs(t[known] - p[known]).mean()) if known.any() else float("nan")


def sex_auroc(sex: Sequence[str | None], female_prob: np.ndarray) -> float:
    """AUROC of P(female) against the recorded sex ("male" / "female"; other values are left out)."""
    s = np.asarray(list(sex), dtype=object)
    p = np.asarray(female_prob, dtype=np.float64).ravel()
    if s.size != p.size:
        raise ValueError(f"sex has {s.size} values but female_prob has {p.size}")
    known = (s == "male") | (s == "female")
    return auroc(s[known] == "female", p[known])
