"""Deterministic R-peak detection (Pan-Tompkins style), multi-lead, at any sampling rate.

Pure numpy/scipy: the same signal always gives the same peaks, so the beat window of the local
pretraining view (METHOD.md) is reproducible from a record alone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft as spfft
from scipy import signal as sps
from scipy.ndimage import uniform_filter1d

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


@lru_cache(maxsize=64)
def _bandpass_sos(fs_hz: float) -> np.ndarray:
    high = min(QRS_BAND_HZ[1], 0.45 * fs_hz)
    return np.asarray(sps.butter(2, [QRS_BAND_HZ[0], high], btype="bandpass", fs=fs_hz, output="sos"))


@lru_cache(maxsize=64)
def _highpass_sos(fs_hz: float) -> np.ndarray:
    return np.asarray(sps.butter(2, 1.0, btype="highpass", fs=fs_hz, output="sos"))


@lru_cache(maxsize=64)
def _zero_phase_gains(fs_hz: float, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """|H(f)|^2 of the QRS band-pass and of the 1 Hz high-pass on an rfft grid of nfft points: what
    filtering forward then backward (sosfiltfilt) applies, as one multiplication per frequency."""
    freqs = np.fft.rfftfreq(nfft, 1.0 / fs_hz)

    def gain(sos: np.ndarray) -> np.ndarray:
        return np.abs(sps.sosfreqz(sos, worN=freqs, fs=fs_hz)[1]) ** 2

    return gain(_bandpass_sos(fs_hz)), gain(_highpass_sos(fs_hz))


@lru_cache(maxsize=64)
def qrs_gains(fs_hz: float, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 (QRS band-pass, 1 Hz high-pass) zero-phase gains on an rfft grid of nfft points, for
    callers that already hold a signal's spectrum (rare_ecg.signals.preprocess)."""
    band, high = _zero_phase_gains(fs_hz, nfft)
    return band.astype(np.float32), high.astype(np.float32)


def _zero_phase(x: np.ndarray, fs_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(QRS band, baseline-free signal) of x along its last axis: the zero-phase filters of sosfiltfilt,
    with its odd extension at both ends (padlen = min(n - 1, one second)), in one FFT round trip per
    filter sharing one forward transform, in x's precision (float32 here: the peaks of all 250 real
    PTB-XL records are the same as in float64, at about 60% of the detector's float64 time)."""
    n = x.shape[-1]
    pad = min(n - 1, int(fs_hz))
    left = 2 * x[..., :1] - x[..., pad:0:-1]
    right = 2 * x[..., -1:] - x[..., -2 : -pad - 2 : -1]
    ext = np.concatenate([left, x, right], axis=-1)
    nfft = spfft.next_fast_len(ext.shape[-1], real=True)
    spectrum = spfft.rfft(ext, nfft, axis=-1)
    band_gain, high_gain = _zero_phase_gains(fs_hz, nfft)
    band = spfft.irfft(spectrum * band_gain.astype(x.dtype), nfft, axis=-1)[..., pad : pad + n]
    high = spfft.irfft(spectrum * high_gain.astype(x.dtype), nfft, axis=-1)[..., pad : pad + n]
    return band, high


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """np.convolve(row, ones(width) / width, mode="same") of every row along the last axis, at once
    (the same window alignment, even widths included)."""
    return np.asarray(uniform_filter1d(x, width, axis=-1, mode="constant", cval=0.0))


def _percentile_last(x: np.ndarray, q: float) -> np.ndarray:
    """np.percentile(x, q, axis=-1, keepdims=True) (linear interpolation) by one partition: a third of
    np.percentile's time on a batch of envelopes."""
    n = x.shape[-1]
    pos = q / 100.0 * (n - 1)
    lo = int(np.floor(pos))
    part = np.partition(x, lo, axis=-1)
    a = part[..., lo : lo + 1]
    # the next order statistic: the smallest of what the partition put above ``lo``
    b = part[..., lo + 1 :].min(axis=-1, keepdims=True) if lo + 1 < n else a
    return a + (b - a) * np.asarray(pos - lo, dtype=x.dtype)


def _qrs_envelope(band: np.ndarray, fs_hz: float) -> np.ndarray:
    """(..., n_leads, n) QRS band -> (..., n): sum over leads of the integrated squared slope of the
    band, each lead scaled to its beats."""
    energy = np.gradient(band, axis=-1)
    energy *= energy
    env = _moving_average(energy, max(1, round(INTEGRATION_S * fs_hz)))
    # Scale each lead by a high percentile so one large-amplitude lead cannot hide the others;
    # flat (absent) leads have zero scale and contribute nothing.
    scale = _percentile_last(env, 99)
    env = np.divide(env, scale, out=np.zeros_like(env), where=scale > 1e-12)
    return env.sum(axis=-2)


def detect_r_peaks(signal: np.ndarray, fs_hz: float) -> np.ndarray:
    """R-peak sample indices of a (n,) or (n_leads, n) signal sampled at ``fs_hz``.

    Returns sorted, unique int64 indices into the time axis; empty for flat or too-short signals.
    NaN samples are treated as zero.
    """
    if fs_hz <= 0:
        raise ValueError(f"fs_hz must be positive; got {fs_hz}")
    return detect_r_peaks_batch(_as_leads(signal)[None], fs_hz)[0]


def detect_r_peaks_batch(signals: np.ndarray, fs_hz: float) -> list[np.ndarray]:
    """detect_r_peaks of each (n_leads, n) record of a (batch, n_leads, n) array, with the filtering
    done for the whole batch at once. Every record's result is exactly what detect_r_peaks gives for it
    alone: no step mixes records."""
    if fs_hz <= 0:
        raise ValueError(f"fs_hz must be positive; got {fs_hz}")
    x = np.asarray(signals, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"signals must be (batch, n_leads, n); got shape {x.shape}")
    x = np.where(np.isfinite(x), x, 0.0)
    if x.shape[-1] < fs_hz or x.shape[0] == 0:
        return [np.zeros(0, dtype=np.int64)] * x.shape[0]
    band, high = _zero_phase(x, fs_hz)
    return r_peaks_from_filtered(band, high, fs_hz)


def r_peaks_from_filtered(band: np.ndarray, high: np.ndarray, fs_hz: float) -> list[np.ndarray]:
    """The detector after its filters: R peaks (sorted unique int64) of each record of (batch, n_leads,
    n) arrays of its QRS band and its baseline-free signal (zero on absent leads); records without a
    non-zero lead, or under a second long, have none."""
    n = band.shape[-1]
    empty = np.zeros(0, dtype=np.int64)
    out = [empty] * band.shape[0]
    if n < fs_hz:
        return out
    live = np.flatnonzero(np.any(band, axis=(1, 2)))
    if live.size == 0:
        return out
    if live.size < band.shape[0]:
        band, high = band[live], high[live]
    env = _qrs_envelope(band, fs_hz)
    # Move each beat to the apex of the absolute, baseline-free signal summed over leads (the R or S
    # apex of the dominant deflection), so peaks line up with what a reader marks as R.
    sd = high.std(axis=-1, keepdims=True)
    apex = np.abs(np.divide(high, sd, out=np.zeros_like(high), where=sd > 1e-12)).sum(axis=-2)
    distance = max(1, round(REFRACTORY_S * fs_hz))
    n_top = max(3, int(n / fs_hz * MIN_RATE_BPM / 60.0))
    half = max(1, round(REFINE_S * fs_hz))
    offsets = np.arange(-half, half + 1)
    # beats at least ``distance`` apart have disjoint refinement windows: the refined peaks stay sorted
    # and distinct, so no np.unique is needed (a tenth of the per-record loop)
    disjoint = distance > 2 * half
    for k, i in enumerate(live):
        candidates, props = sps.find_peaks(env[k], distance=distance, height=0.0)
        if candidates.size == 0:
            continue
        # The typical beat: the median of the largest candidates a record at MIN_RATE_BPM would still
        # have, so neither many small P/T/noise candidates nor one or two huge artefacts move it.
        heights = props["peak_heights"]
        top = np.sort(heights)[-n_top:]
        middle = top.size // 2
        typical = top[middle] if top.size % 2 else top[middle - 1 : middle + 1].mean()  # np.median(top)
        beats = candidates[heights >= THRESHOLD_FRACTION * typical]
        # windows clipped at the edges: argmax takes the first maximum, so a clipped (repeated) edge
        # index picks the same sample as the truncated window would
        idx = beats[:, None] + offsets
        np.maximum(idx, 0, out=idx)
        np.minimum(idx, n - 1, out=idx)
        refined = idx[np.arange(beats.size), np.argmax(apex[k][idx], axis=1)].astype(np.int64)
        out[i] = refined if disjoint else np.unique(refined)
    return out


def beat_positions(signal: np.ndarray, valid_samples: int, fs_hz: float) -> np.ndarray:
    """R peaks of a whole model-rate record: ``signal`` is (n_leads, n) with the record's windows side
    by side (as stored in ecg_waveforms), of which the first ``valid_samples`` are real signal and the
    rest zero padding. Returns int32 sample indices. (Ingestion stores the peaks preprocess finds from
    its filter spectrum, within one sample of these: tests/signals/test_preprocess.py.)"""
    return detect_r_peaks(signal[..., :valid_samples], fs_hz).astype(np.int32)


def heart_rate_bpm(r_peaks: np.ndarray, fs_hz: float) -> float:
    """Mean heart rate from the R-R intervals (NaN with fewer than two peaks)."""
    if len(r_peaks) < 2:
        return float("nan")
    return float(60.0 * fs_hz / np.mean(np.diff(r_peaks)))
