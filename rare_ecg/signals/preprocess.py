"""The one canonical preprocessing function, shared by ingestion, training, evaluation and scoring.

Pure numpy/scipy. Deterministic: the same record always gives the same tensor.
Steps (METHOD.md): canonical lead order with zero-filled missing leads and a lead mask, zero-phase
band-pass (0.5 Hz high-pass, low-pass below the model rate's Nyquist), optional mains notch and
resampling to the model rate (one FFT round trip: 5-10x cheaper than sosfiltfilt + resample_poly),
per-lead standardisation with clipping, cut or pad to whole 10 s windows; and the record's R peaks
(rare_ecg.signals.rpeaks) from the same filtered spectrum. Computed in float32; ``preprocess_many``
filters the records of one rate and length together (what ingestion calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from scipy import fft as sp_fft
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
    signal: np.ndarray  # (n_windows, 12, WINDOW_S * fs_hz) float32, standardised per lead (may be a view)
    lead_mask: np.ndarray  # (12,) bool: True where the lead is present and usable
    valid_samples: int  # samples of real signal in the concatenated windows (the rest is padding)
    flags: tuple[str, ...]
    fs_hz: int
    # int32 R peaks in the record's model-rate samples (the lake's beat_positions), detected by
    # rare_ecg.signals.rpeaks from the same filtered spectrum as ``signal``
    beat_positions: np.ndarray


@lru_cache(maxsize=256)
def _lead_rows(lead_names: tuple[str, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(file rows, canonical rows) of the leads of a file order that map onto the canonical twelve;
    a lead named twice keeps its first row."""
    src: list[int] = []
    dst: list[int] = []
    for row, name in enumerate(lead_names):
        canon = normalize_lead_name(name)
        if canon is None:
            continue
        i = CANONICAL_LEADS.index(canon)
        if i not in dst:
            src.append(row)
            dst.append(i)
    return tuple(src), tuple(dst)


def canonical_leads(signal_mv: np.ndarray, lead_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Reorder (n_leads, n) mV leads into the canonical 12 with zero-filled gaps; returns (12, n), mask."""
    out = np.zeros((len(CANONICAL_LEADS), signal_mv.shape[1]), dtype=np.float64)
    mask = np.zeros(len(CANONICAL_LEADS), dtype=bool)
    src, dst = _lead_rows(tuple(lead_names))
    out[list(dst)] = signal_mv[list(src)]
    mask[list(dst)] = True
    return out, mask


PAD_S = 2.0  # odd-extension padding against edge transients of the 0.5 Hz high-pass


@lru_cache(maxsize=64)
def _zero_phase_gain(n_fft: int, fs_in_hz: float, fs_out_hz: float, notch_hz: float | None) -> np.ndarray:
    """|H(f)|^2 of a 4th-order Butterworth band-pass (and notch) on the rfft grid: a zero-phase filter,
    the frequency-domain equivalent of filtfilt. The low-pass edge sits below the OUTPUT Nyquist, so the
    same gain is also the anti-aliasing filter of the resampling."""
    freqs = np.fft.rfftfreq(n_fft, d=1.0 / fs_in_hz)
    low = 0.45 * min(fs_in_hz, fs_out_hz)
    sos = sps.butter(4, [HIGHPASS_HZ, low], btype="bandpass", fs=fs_in_hz, output="sos")
    _, h = sps.sosfreqz(sos, worN=freqs, fs=fs_in_hz)
    gain = np.abs(h) ** 2
    if notch_hz is not None and notch_hz < low:
        b, a = sps.iirnotch(notch_hz, Q=30.0, fs=fs_in_hz)
        _, hn = sps.freqz(b, a, worN=freqs, fs=fs_in_hz)
        gain *= np.abs(hn) ** 2
    return gain


@lru_cache(maxsize=256)
def _fft_length(n_min: int, fs_in_hz: float, fs_out_hz: float) -> int:
    """The smallest length >= n_min that pocketfft handles fast (no large prime factor) and that maps to
    a whole number of output samples, so resampling has no time-scale error."""
    ratio = Fraction(fs_out_hz / fs_in_hz).limit_denominator(10_000)
    q = ratio.denominator
    n = -(-n_min // q) * q
    for _ in range(10_000):
        if sp_fft.next_fast_len(n, real=True) == n:
            return n
        n += q
    return -(-n_min // q) * q


@dataclass(frozen=True)
class _Spectrum:
    """The band-passed spectrum of padded records on the OUTPUT rate's rfft grid: irfft(values, m_fft)
    * scale, cut at [start, start + m), is the filtered, resampled signal."""

    values: np.ndarray  # (..., m_fft // 2 + 1) complex
    m_fft: int
    start: int
    m: int
    scale: float

    def signal(self, gain: np.ndarray | None = None) -> np.ndarray:
        """The time signal, through an extra zero-phase ``gain`` on this grid when one is given."""
        values = self.values if gain is None else self.values * gain
        y = sp_fft.irfft(values, n=self.m_fft, axis=-1)[..., self.start : self.start + self.m]
        return y * np.asarray(self.scale, dtype=y.dtype)


def _padding(n: int, fs_in_hz: float, fs_out_hz: float) -> tuple[int, int]:
    """(left padding, FFT length) of a record of n samples."""
    pad_left = min(n - 1, round(PAD_S * fs_in_hz))
    return pad_left, _fft_length(n + 2 * pad_left, fs_in_hz, fs_out_hz)


def _odd_extension(buf: np.ndarray, pad_left: int, n: int) -> None:
    """Fill the padding of ``buf`` (..., n_fft), whose [pad_left, pad_left + n) holds the signal, in
    place: the signal reflected through its end points, zeros beyond one reflection (very short records)."""
    x = buf[..., pad_left : pad_left + n]
    np.subtract(2 * x[..., :1], x[..., pad_left:0:-1], out=buf[..., :pad_left])
    right = min(buf.shape[-1] - n - pad_left, n - 1)
    np.subtract(
        2 * x[..., -1:], x[..., -2 : -right - 2 : -1], out=buf[..., pad_left + n : pad_left + n + right]
    )
    buf[..., pad_left + n + right :] = 0


def _band_spectrum(
    buf: np.ndarray, pad_left: int, n: int, fs_in_hz: float, fs_out_hz: float, notch_hz: float | None
) -> _Spectrum:
    """The filtered spectrum of the records in ``buf`` (..., n_fft), padded by _odd_extension."""
    n_fft = buf.shape[-1]
    gain = _zero_phase_gain(n_fft, float(fs_in_hz), float(fs_out_hz), notch_hz).astype(buf.dtype)
    m_fft = round(n_fft * fs_out_hz / fs_in_hz)
    keep = min(n_fft // 2 + 1, m_fft // 2 + 1)
    spectrum = sp_fft.rfft(buf, axis=-1)[..., :keep]
    spectrum *= gain[:keep]
    return _Spectrum(
        values=spectrum,
        m_fft=m_fft,
        start=round(pad_left * fs_out_hz / fs_in_hz),
        m=round(n * fs_out_hz / fs_in_hz),
        scale=m_fft / n_fft,
    )


def bandpass_resample(
    x: np.ndarray, fs_in_hz: float, fs_out_hz: float, notch_hz: float | None = None
) -> np.ndarray:
    """Zero-phase band-pass (0.5 Hz to 0.45 * the lower of the two rates, optional mains notch) and
    resampling to ``fs_out_hz``, in one FFT round trip along the last axis, in x's float precision.

    Odd-extension padding of about PAD_S at both ends keeps the high-pass free of edge transients; any
    rate ratio works (257 Hz -> 100 Hz as well as 500 -> 100).
    """
    x = np.asarray(x)
    n = x.shape[-1]
    pad_left, n_fft = _padding(n, fs_in_hz, fs_out_hz)
    buf = np.empty(
        (*x.shape[:-1], n_fft), dtype=x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    )
    buf[..., pad_left : pad_left + n] = x
    _odd_extension(buf, pad_left, n)
    return _band_spectrum(buf, pad_left, n, fs_in_hz, fs_out_hz, notch_hz).signal()


def standardize(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-lead zero mean, unit variance, clipped at +-CLIP_SD; absent leads stay zero. ``x`` is
    (..., 12, n) and ``mask`` (..., 12)."""
    mu = x.mean(axis=-1, keepdims=True)
    sd = x.std(axis=-1, keepdims=True)
    sd = np.where(sd < 1e-6, 1.0, sd)
    z = np.clip((x - mu) / sd, -CLIP_SD, CLIP_SD)
    return np.where(mask[..., None], z, 0.0).astype(x.dtype, copy=False)


# Records filtered together: up to about this many bytes of padded input (stays in a 32 MB L3 cache
# with the temporaries; a whole 500 Hz batch of 64 did not and was 1.5x slower, benchmarks/README.md)
CHUNK_BYTES = 16 * 1024 * 1024


def preprocess(
    signal_mv: np.ndarray,
    fs_hz: float,
    lead_names: list[str],
    target_fs_hz: int = 100,
    notch_hz: float | None = None,
) -> Preprocessed:
    """Turn a native (n_leads, n_samples) mV signal into model-ready 10 s windows at ``target_fs_hz``,
    with its R peaks.

    Raises ValueError when the record cannot be used at all (no standard lead, under 1 s of signal).
    """
    out = preprocess_many([(signal_mv, fs_hz, lead_names)], target_fs_hz, notch_hz)[0]
    if isinstance(out, ValueError):
        raise out
    return out


def preprocess_many(
    records: Sequence[tuple[np.ndarray, float, Sequence[str]]],
    target_fs_hz: int = 100,
    notch_hz: float | None = None,
) -> list[Preprocessed | ValueError]:
    """``preprocess`` of each (signal_mv, fs_hz, lead_names), in float32: records of one rate and length
    are filtered together, a few MB at a time (the per-record cost of ingestion). A record that cannot
    be used gets its ValueError in its place. No step mixes records: each result is what the record
    gives alone."""
    out: list[Preprocessed | ValueError] = [ValueError("not preprocessed")] * len(records)
    groups: dict[tuple[int, float], list[int]] = {}
    for i, (signal_mv, fs_hz, lead_names) in enumerate(records):
        if signal_mv.ndim != 2 or signal_mv.shape[0] != len(lead_names):
            out[i] = ValueError(f"signal shape {signal_mv.shape} does not match {len(lead_names)} lead names")
        elif signal_mv.shape[1] < fs_hz:
            out[i] = ValueError(f"{signal_mv.shape[1]} samples at {fs_hz} Hz is under 1 s")
        elif not _lead_rows(tuple(lead_names))[1]:
            out[i] = ValueError(f"no standard lead among {list(lead_names)}")
        else:
            groups.setdefault((signal_mv.shape[1], float(fs_hz)), []).append(i)
    for (n, fs_hz), idx in groups.items():
        per_chunk = max(1, CHUNK_BYTES // (len(CANONICAL_LEADS) * 4 * 2 * (n + 2 * round(PAD_S * fs_hz))))
        for c in range(0, len(idx), per_chunk):
            chunk = idx[c : c + per_chunk]
            done = _preprocess_stack([records[i] for i in chunk], n, fs_hz, target_fs_hz, notch_hz)
            for i, pre in zip(chunk, done, strict=True):
                out[i] = pre
    return out


def _preprocess_stack(
    records: Sequence[tuple[np.ndarray, float, Sequence[str]]],
    n: int,
    fs_hz: float,
    target_fs_hz: int,
    notch_hz: float | None,
) -> list[Preprocessed]:
    from rare_ecg.signals.rpeaks import qrs_gains, r_peaks_from_filtered

    b = len(records)
    leads = len(CANONICAL_LEADS)
    # the records are written straight into the padded FFT input (no copy of the stack to pad it)
    pad_left, n_fft = _padding(n, fs_hz, target_fs_hz)
    buf = np.empty((b, leads, n_fft), dtype=np.float32)
    x = buf[..., pad_left : pad_left + n]
    mask = np.zeros((b, leads), dtype=bool)
    for k, (signal_mv, _, lead_names) in enumerate(records):
        src, dst = _lead_rows(tuple(lead_names))
        x[k, list(dst)] = signal_mv[list(src)]
        mask[k, list(dst)] = True
        if len(dst) < leads:
            x[k, ~mask[k]] = 0.0
    missing = np.asarray(~mask.all(axis=1))
    has_nan = np.zeros(b, dtype=bool)
    if not np.isfinite(x.sum(axis=2)).all():  # a sum is finite unless some sample is not
        nan = ~np.isfinite(x)
        has_nan = np.asarray(nan.any(axis=(1, 2)))
        x[nan] = 0.0
        mask &= nan.mean(axis=2) < 0.5  # a lead that is mostly NaN is unusable
    flat = mask & (np.ptp(x, axis=2) < FLAT_LEAD_MV)
    mask &= ~flat
    _odd_extension(buf, pad_left, n)
    spectrum = _band_spectrum(buf, pad_left, n, fs_hz, target_fs_hz, notch_hz)
    y = standardize(spectrum.signal(), mask)
    band_gain, high_gain = qrs_gains(float(target_fs_hz), spectrum.m_fft)
    m = spectrum.m
    # R peaks from the same spectrum: the QRS band and the baseline-free signal of every usable lead
    # (the detector scales each lead on its own, so standardising first would change nothing)
    live = mask[..., None].astype(np.float32)
    band = spectrum.signal(band_gain[: spectrum.values.shape[-1]]) * live
    high = spectrum.signal(high_gain[: spectrum.values.shape[-1]]) * live
    peaks = r_peaks_from_filtered(band, high, float(target_fs_hz))
    win = round(WINDOW_S * target_fs_hz)
    n_windows = max(1, int(np.ceil(m / win - 1e-9)))
    if n_windows * win > m:
        y = np.pad(y, ((0, 0), (0, 0), (0, n_windows * win - m)))
    windows = y.reshape(b, len(CANONICAL_LEADS), n_windows, win).transpose(0, 2, 1, 3)
    out = []
    for k in range(b):
        flags = [
            flag
            for flag, on in (
                (FLAG_MISSING_LEAD, missing[k]),
                (FLAG_NAN_SAMPLES, has_nan[k]),
                (FLAG_FLAT_LEAD, flat[k].any()),
                (FLAG_PADDED, n_windows * win > m),
            )
            if on
        ]
        out.append(
            Preprocessed(
                # a view: the record's row of the chunk's (12, n_windows * win) array, as stored
                signal=windows[k],
                lead_mask=mask[k],
                valid_samples=m,
                flags=tuple(flags),
                fs_hz=target_fs_hz,
                beat_positions=peaks[k].astype(np.int32),
            )
        )
    return out
