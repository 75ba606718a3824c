"""Ranking metrics of one binary target: AUROC, AUPRC (average precision), sensitivity at a specificity.

Pure numpy. Each returns NaN, never raises, when the target has no positives or no negatives, so a
label absent from a split is reported instead of crashing an evaluation.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata


def _binary(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but score has {s.size}")
    return y, s


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties)."""
    y, s = _binary(y_true, score)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_columns(y_true: np.ndarray, score: np.ndarray) -> np.ndarray:
    """AUROC of every column of (n, L) targets and scores at once (NaN where a column lacks a class)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"need matching (n, L) arrays; got {y.shape} and {s.shape}")
    n_pos = y.sum(0).astype(np.float64)
    n_neg = y.shape[0] - n_pos
    ranks = rankdata(s, axis=0)
    u = (ranks * y).sum(0) - n_pos * (n_pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        out = u / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), out, np.nan)


def auprc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision: sum over distinct thresholds of (recall step) x precision, as scikit-learn."""
    y, s = _binary(y_true, score)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    last_of_tie = np.r_[np.diff(s) != 0, True]  # a threshold admits all tied scores at once
    tp = np.cumsum(y)[last_of_tie]
    predicted = (np.arange(1, y.size + 1))[last_of_tie]
    precision = tp / predicted
    recall_step = np.diff(np.r_[0, tp]) / n_pos
    return float((recall_step * precision).sum())


def sensitivity_at_specificity(y_true: np.ndarray, score: np.ndarray, specificity: float = 0.9) -> float:
    """Highest sensitivity over thresholds (positive when score >= t) whose specificity is >= the target."""
    if not 0.0 < specificity <= 1.0:
        raise ValueError(f"specificity must be in (0, 1]; got {specificity}")
    y, s = _binary(y_true, score)
    neg = np.sort(s[~y])
    pos = s[y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    # At least q negatives must fall below the threshold; the best threshold sits just above the
    # q-th smallest negative score, so exactly the positives scoring above it are detected.
    q = math.ceil(specificity * neg.size - 1e-9)
    return float((pos > neg[q - 1]).mean())


def sensitivity_at_specificity_columns(
    y_true: np.ndarray, score: np.ndarray, specificity: float = 0.9
) -> np.ndarray:
    """``sensitivity_at_specificity`` of every column of (n, L) targets and scores at once."""
    if not 0.0 < specificity <= 1.0:
        raise ValueError(f"specificity must be in (0, 1]; got {specificity}")
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2:
        raise ValueError(f"need matching (n, L) arrays; got {y.shape} and {s.shape}")
    n_pos = y.sum(0)
    n_neg = y.shape[0] - n_pos
    neg_sorted = np.sort(np.where(y, np.inf, s), axis=0)  # each column's negatives first, ascending
    q = np.ceil(specificity * n_neg - 1e-9).astype(np.int64)
    rows = np.clip(q - 1, 0, max(0, y.shape[0] - 1))
    threshold = neg_sorted[rows, np.arange(y.shape[1])] if y.shape[0] else np.zeros(y.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = ((s > threshold) & y).sum(0) / n_pos
    return np.where((n_pos > 0) & (n_neg > 0), sens, np.nan)
