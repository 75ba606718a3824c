"""The trend view of METHOD.md: the smoothed first derivative of the signal, re-normalised per lead.

This numpy function is the specification; the model computes the same transform inside its graph
(``rare_ecg.model.objectives.trend_view``) so the exported network needs no extra input, and a test
holds the two equal.
"""

from __future__ import annotations

import numpy as np

TREND_SMOOTH_S = 0.02  # moving-average width (20 ms)


def moving_average_width(fs_hz: float, smooth_s: float = TREND_SMOOTH_S) -> int:
    """Samples in the moving-average window: 2 at 100 Hz, 10 at 500 Hz for 20 ms."""
    return max(1, round(smooth_s * fs_hz))


def trend(signal: np.ndarray, fs_hz: float, smooth_s: float = TREND_SMOOTH_S) -> np.ndarray:
    """Trend view of a (..., n) signal: moving average, first difference, per-lead standardisation.

    The moving average spans ``w`` samples with ``w // 2`` before and ``(w - 1) // 2`` after each
    sample, edges repeated; the difference keeps the length (the first sample's difference is 0).
    Leads whose derivative is constant (absent, zero-filled leads) come out as zeros.
    """
    x = np.asarray(signal, dtype=np.float64)
    w = moving_average_width(fs_hz, smooth_s)
    padded = np.concatenate(
        [np.repeat(x[..., :1], w // 2, axis=-1), x, np.repeat(x[..., -1:], (w - 1) // 2, axis=-1)], axis=-1
    )
    csum = np.cumsum(padded, axis=-1)
    csum = np.concatenate([np.zeros_like(csum[..., :1]), csum], axis=-1)
    smooth = (csum[..., w:] - csum[..., :-w]) / w
    deriv = np.diff(smooth, axis=-1, prepend=smooth[..., :1])
    mu = deriv.mean(axis=-1, keepdims=True)
    sd = deriv.std(axis=-1, keepdims=True)
    out = np.divide(deriv - mu, sd, out=np.zeros_like(deriv), where=sd > 1e-6)
    return out.astype(np.float32)
