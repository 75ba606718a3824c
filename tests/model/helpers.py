"""Helpers shared by the model tests."""

from __future__ import annotations

import numpy as np

from rare_ecg.signals.rpeaks import beat_positions


def r_peaks(signal: np.ndarray, fs: int = 100) -> list[np.ndarray]:
    """Beat positions of each (12, N) record of a batch, as ingestion stores them in the lake."""
    return [beat_positions(record, record.shape[-1], fs) for record in signal]
