"""Bootstrap confidence intervals that resample patients, not records (a patient's ECGs are correlated)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def patient_resamples(patient_ids: np.ndarray, n_boot: int, seed: int = 0) -> list[np.ndarray]:
    """``n_boot`` record-index arrays: patients drawn with replacement, each bringing all its records
    as many times as it was drawn."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    _, patient_of_record = np.unique(np.asarray(patient_ids), return_inverse=True)
    n_patients = int(patient_of_record.max()) + 1 if patient_of_record.size else 0
    rng = np.random.default_rng(seed)
    records = np.arange(patient_of_record.size)
    out = []
    for _ in range(n_boot):
        draws = np.bincount(rng.integers(0, n_patients, n_patients), minlength=n_patients)
        out.append(np.repeat(records, draws[patient_of_record]))
    return out


def bootstrap_ci(
    statistic: Callable[[np.ndarray], np.ndarray],
    patient_ids: np.ndarray,
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of a vector ``statistic(record_indices)`` over patient resamples.

    Replicates where a statistic is NaN (a resample without positives) are left out of its interval;
    a statistic NaN in every replicate gets a NaN interval.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    reps = np.stack([np.atleast_1d(statistic(idx)) for idx in patient_resamples(patient_ids, n_boot, seed)])
    alpha = (1.0 - level) / 2.0
    low = np.full(reps.shape[1], np.nan)
    high = np.full(reps.shape[1], np.nan)
    finite = np.isfinite(reps).any(0)
    if finite.any():
        low[finite] = np.nanquantile(reps[:, finite], alpha, axis=0)
        high[finite] = np.nanquantile(reps[:, finite], 1.0 - alpha, axis=0)
    return low, high
