"""Beat-aligned views of a record from its R peaks: the beat phase, each sample's R-aligned twins in
the neighbouring beats, and the neighbouring-beat copy built from them (the inpainting baseline).

Pure numpy. R peaks are sample indices (``beat_positions`` of the lake), sorted and unique.
"""

from __future__ import annotations

import numpy as np

PHASE_CLIP_S = 1.0  # longer than any RR interval the phase needs to resolve (60 bpm)


def beat_phase(peaks: np.ndarray, n: int, fs_hz: float) -> np.ndarray:
    """(2, n) float32: seconds since the previous R peak and until the next, clipped to PHASE_CLIP_S."""
    t = np.arange(n)
    clip = PHASE_CLIP_S * fs_hz
    if peaks.size == 0:
        return np.full((2, n), PHASE_CLIP_S, dtype=np.float32)
    k = np.searchsorted(peaks, t, side="right")  # peaks[k - 1] <= t < peaks[k]
    since = np.where(k > 0, t - peaks[np.maximum(k - 1, 0)], clip)
    until = np.where(k < peaks.size, peaks[np.minimum(k, peaks.size - 1)] - t, clip)
    return (np.minimum(np.stack([since, until]), clip) / fs_hz).astype(np.float32)


def beat_neighbours(peaks: np.ndarray, n: int) -> np.ndarray:
    """(2, n) int64: each sample's R-aligned twin in the previous and the next beat.

    A sample belongs to its nearest R peak; its twin keeps the offset from R in the neighbouring beat.
    Where one neighbour is missing (first or last beat, twin outside the window) the other stands in;
    where both are, the sample's own index (a copy of itself: no information).
    """
    t = np.arange(n)
    if peaks.size < 2:
        return np.stack([t, t])
    mid = (peaks[1:] + peaks[:-1]) / 2.0
    own = np.searchsorted(mid, t, side="right")  # index of the nearest peak
    offset = t - peaks[own]
    twins = []
    for step in (-1, 1):
        j = own + step
        ok = (j >= 0) & (j < peaks.size)
        src = peaks[np.clip(j, 0, peaks.size - 1)] + offset
        ok &= (src >= 0) & (src < n)
        twins.append(np.where(ok, src, -1))
    prev, nxt = twins
    prev_f = np.where(prev >= 0, prev, np.where(nxt >= 0, nxt, t))
    next_f = np.where(nxt >= 0, nxt, prev_f)
    return np.stack([prev_f, next_f]).astype(np.int64)


def beat_copy(signal: np.ndarray, hidden: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """The R-aligned neighbouring-beat copy of a (C, N) signal with hidden samples ``hidden`` (N,) bool:
    each sample from its twin in the previous beat if that twin is visible, else from the next beat's
    twin if visible, else 0. Hidden samples are never read: the baseline sees what the network sees."""
    x = np.asarray(signal)
    prev, nxt = np.asarray(neighbours)
    t = np.arange(x.shape[-1])
    use_prev = ~hidden[prev] & (prev != t)
    use_next = ~use_prev & ~hidden[nxt] & (nxt != t)
    return np.where(use_prev, x[:, prev], np.where(use_next, x[:, nxt], 0.0)).astype(x.dtype)
