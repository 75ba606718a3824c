"""Expected calibration error of predicted probabilities."""

from __future__ import annotations

import numpy as np


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 10) -> float:
    """sum over equal-width probability bins of (bin share) x |observed rate - mean probability|.

    Multi-label input is flattened: every (record, label) pair is one prediction. Bin b holds
    probabilities in [b / n_bins, (b + 1) / n_bins), the last bin also 1.0. NaN for empty input.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_prob, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"y_true has {y.size} values but y_prob has {p.size}")
    if p.size == 0:
        return float("nan")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"probabilities must lie in [0, 1]; got range [{p.min()}, {p.max()}]")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    observed = np.bincount(bins, weights=y, minlength=n_bins)
    predicted = np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.abs(observed - predicted).sum() / p.size)
