"""Deterministic R-peak detection (Pan-Tompkins style), multi-lead, at any sampling rate.

Pure numpy/scipy: the same signal always gives the same peaks, so the beat window of the local
pretraining view (METHOD.md) is reproducible from a record alone.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

QRS_BAND_HZ = (5.0, 20.0)  # where QRS energy dominates P, T and baseline wander
INTEGRATION_S = 0.10  # moving-window integration: about one QRS width
REFRACTORY_S = 0.25  # no two beats closer than this (240 bpm)
REFINE_S = 0.06  # an envelope peak is moved to the R apex within this distance
MIN_RATE_BPM = 30.0  # slowest rhythm the threshold is calibrated for
THRESHOLD_FRACTION = 0.3  # of the typical beat's envelope height; below it a candidate is noise or a T wave


def _as_leads(signal: np.ndarray) -> np.ndarray:
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"signal must be (n,) or (n_leads, n); got shape {x.shape}")
    return np.where(np.isfinite(x), x, 0.0)


def _qrs_envelope(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Sum over leads of the integrated squared slope of the QRS band, each lead scaled to its beats."""
    high = min(QRS_BAND_HZ[1], 0.45 * fs_hz)
    sos = sps.butter(2, [QRS_BAND_HZ[0], high], btype="bandpass", fs=fs_hz, output="sos")
    band = sps.sosfiltfilt(sos, x, axis=-1, padlen=min(x.shape[-1] - 1, int(fs_hz)))
    energy = np.gradient(band, axis=-1) ** 2
    width = max(1, round(INTEGRATION_S * fs_hz))
    kernel = np.ones(width) / width
    env = np.stack([np.convolve(lead, kernel, mode="same") for lead in energy])
    # Scale each lead by a high percentile so one large-amplitude lead cannot hide the others;
    # flat (absent) leads have zero scale and contribute nothing.
    scale = np.percentile(env, 99, axis=-1, keepdims=True)
    env = np.divide(env, scale, out=np.zeros_like(env), where=scale > 1e-12)
    return env.sum(axis=0)


def detect_r_peaks(signal: np.ndarray, fs_hz: float) -> np.ndarray:
    """R-peak sample indices of a (n,) or (n_leads, n) signal sampled at ``fs_hz``.

    Returns sorted, unique int64 indices into the time axis; empty for flat or too-short signals.
    NaN samples are treated as zero.
    """
    if fs_hz <= 0:
        raise ValueError(f"fs_hz must be positive; got {fs_hz}")
    x = _as_leads(signal)
    n = x.shape[-1]
    if n < fs_hz or not np.any(x):
        return np.zeros(0, dtype=np.int64)
    env = _qrs_envelope(x, fs_hz)
    candidates, props = sps.find_peaks(env, distance=max(1, round(REFRACTORY_S * fs_hz)), height=0.0)
    if candidates.size == 0:
        return np.zeros(0, dtype=np.int64)
    # The typical beat: the median of the largest candidates a record at MIN_RATE_BPM would still
    # have, so neither many small P/T/noise candidates nor one or two huge artefacts move it.
    heights = props["peak_heights"]
    n_top = max(3, int(n / fs_hz * MIN_RATE_BPM / 60.0))
    typical = np.median(np.sort(heights)[-n_top:])
    beats = candidates[heights >= THRESHOLD_FRACTION * typical]

    # Move each beat to the apex of the absolute, baseline-free signal summed over leads (the R or S
    # apex of the dominant deflection), so peaks line up with what a reader marks as R.
    sos = sps.butter(2, 1.0, btype="highpass", fs=fs_hz, output="sos")
    hp = sps.sosfiltfilt(sos, x, axis=-1, padlen=min(n - 1, int(fs_hz)))
    sd = hp.std(axis=-1, keepdims=True)
    apex = np.abs(np.divide(hp, sd, out=np.zeros_like(hp), where=sd > 1e-12)).sum(axis=0)
    half = max(1, round(REFINE_S * fs_hz))
    refined = np.empty(beats.size, dtype=np.int64)
    for i, beat in enumerate(beats):
        lo, hi = max(0, beat - half), min(n, beat + half + 1)
        refined[i] = lo + int(np.argmax(apex[lo:hi]))
    return np.unique(refined)


def beat_positions(signal: np.ndarray, valid_samples: int, fs_hz: float) -> np.ndarray:
    """R peaks of a whole model-rate record: ``signal`` is (n_leads, n) with the record's windows side
    by side (as stored in ecg_waveforms), of which the first ``valid_samples`` are real signal and the
    rest zero padding. Returns int32 sample indices (the lake's beat_positions column)."""
    return detect_r_peaks(signal[..., :valid_samples], fs_hz).astype(np.int32)


def heart_rate_bpm(r_peaks: np.ndarray, fs_hz: float) -> float:
    """Mean heart rate from the R-R intervals (NaN with fewer than two peaks)."""
    if len(r_peaks) < 2:
        return float("nan")
    return float(60.0 * fs_hz / np.mean(np.diff(r_peaks)))
