"""The one canonical preprocessing function, shared by ingestion, training, evaluation and scoring.

Pure numpy/scipy. Deterministic: the same record always gives the same tensor.
Steps (METHOD.md): canonical lead order with zero-filled missing leads and a lead mask, resampling to
the model rate, zero-phase band-pass (0.5 Hz high-pass, low-pass below Nyquist), optional mains
notch, per-lead standardisation with clipping, cut or pad to whole 10 s windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from rare_ecg.signals.leads import CANONICAL_LEADS, normalize_lead_name

PREPROCESSING_VERSION = "pp-1"
WINDOW_S = 10.0
HIGHPASS_HZ = 0.5
CLIP_SD = 8.0
FLAT_LEAD_MV = 0.01  # a lead whose peak-to-peak range is below this is flat (electrode off)

# Quality flags: a record keeps its rows, with these named flags, when it can still be used.
FLAG_FLAT_LEAD = "flat_lead"
FLAG_NAN_SAMPLES = "nan_samples"
FLAG_MISSING_LEAD = "missing_lead"
FLAG_PADDED = "padded"
FLAG_SATURATED = "saturated"


@dataclass(frozen=True)
class Preprocessed:
    signal: np.ndarray  # (n_windows, 12, WINDOW_S * fs_hz) float32, standardised per lead
    lead_mask: np.ndarray  # (12,) bool: True where the lead is present and usable
    valid_samples: int  # samples of real signal in the concatenated windows (the rest is padding)
    flags: tuple[str, ...]
    fs_hz: int


def canonical_leads(signal_mv: np.ndarray, lead_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Reorder (n_leads, n) mV leads into the canonical 12 with zero-filled gaps; returns (12, n), mask."""
    out = np.zeros((len(CANONICAL_LEADS), signal_mv.shape[1]), dtype=np.float64)
    mask = np.zeros(len(CANONICAL_LEADS), dtype=bool)
    for row, name in zip(signal_mv, lead_names, strict=True):
        canon = normalize_lead_name(name)
        if canon is None:
            continue
        i = CANONICAL_LEADS.index(canon)
        if not mask[i]:
            out[i] = row
            mask[i] = True
    return out, mask


def resample(x: np.ndarray, fs_in_hz: float, fs_out_hz: float) -> np.ndarray:
    """Polyphase resampling along the last axis (anti-aliased, deterministic)."""
    if fs_in_hz == fs_out_hz:
        return x
    ratio = Fraction(fs_out_hz / fs_in_hz).limit_denominator(1000)
    return sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=-1)


def bandpass(x: np.ndarray, fs_hz: float, notch_hz: float | None = None) -> np.ndarray:
    """Zero-phase 0.5 Hz high-pass, low-pass at 0.45 * fs (below Nyquist), optional mains notch."""
    low = min(0.45 * fs_hz, 150.0)
    sos = sps.butter(4, [HIGHPASS_HZ, low], btype="bandpass", fs=fs_hz, output="sos")
    padlen = min(x.shape[-1] - 1, 3 * int(fs_hz))
    y = sps.sosfiltfilt(sos, x, axis=-1, padlen=padlen)
    if notch_hz is not None and notch_hz < fs_hz / 2:
        b, a = sps.iirnotch(notch_hz, Q=30.0, fs=fs_hz)
        y = sps.filtfilt(b, a, y, axis=-1, padlen=padlen)
    return y


def standardize(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-lead zero mean, unit variance, clipped at +-CLIP_SD; absent leads stay zero."""
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    sd = np.where(sd < 1e-6, 1.0, sd)
    z = np.clip((x - mu) / sd, -CLIP_SD, CLIP_SD)
    return np.where(mask[:, None], z, 0.0)


def preprocess(
    signal_mv: np.ndarray,
    fs_hz: float,
    lead_names: list[str],
    target_fs_hz: int = 100,
    notch_hz: float | None = None,
) -> Preprocessed:
    """Turn a native (n_leads, n_samples) mV signal into model-ready 10 s windows at ``target_fs_hz``.

    Raises ValueError when the record cannot be used at all (no standard lead, under 1 s of signal).
    """
    if signal_mv.ndim != 2 or signal_mv.shape[0] != len(lead_names):
        raise ValueError(f"signal shape {signal_mv.shape} does not match {len(lead_names)} lead names")
    if signal_mv.shape[1] < fs_hz:
        raise ValueError(f"{signal_mv.shape[1]} samples at {fs_hz} Hz is under 1 s")
    flags: list[str] = []
    x, mask = canonical_leads(np.asarray(signal_mv, dtype=np.float64), lead_names)
    if not mask.any():
        raise ValueError(f"no standard lead among {lead_names}")
    if not mask.all():
        flags.append(FLAG_MISSING_LEAD)
    nan = ~np.isfinite(x)
    if nan.any():
        flags.append(FLAG_NAN_SAMPLES)
        x = np.where(nan, 0.0, x)
        mask &= nan.mean(axis=1) < 0.5  # a lead that is mostly NaN is unusable
    ptp = np.ptp(x, axis=1)
    flat = mask & (ptp < FLAT_LEAD_MV)
    if flat.any():
        flags.append(FLAG_FLAT_LEAD)
        mask &= ~flat
    x = bandpass(x, fs_hz, notch_hz)
    x = resample(x, fs_hz, target_fs_hz)
    x = standardize(x, mask)
    win = round(WINDOW_S * target_fs_hz)
    n = x.shape[1]
    n_windows = max(1, int(np.ceil(n / win - 1e-9)))
    if n_windows * win > n:
        flags.append(FLAG_PADDED)
        x = np.pad(x, ((0, 0), (0, n_windows * win - n)))
    windows = x.reshape(len(CANONICAL_LEADS), n_windows, win).transpose(1, 0, 2)
    return Preprocessed(
        signal=np.ascontiguousarray(windows, dtype=np.float32),
        lead_mask=mask,
        valid_samples=n,
        flags=tuple(flags),
        fs_hz=target_fs_hz,
    )
