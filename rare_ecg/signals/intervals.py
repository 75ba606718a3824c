"""ECG intervals from a multi-lead record: heart rate, PR, QRS, QT, by delineating a median beat.

Pure numpy/scipy and deterministic. Steps:
1. band-pass 0.5-40 Hz; R peaks by rpeaks.detect_r_peaks;
2. the dominant beats (QRS shape within correlation 0.9 of the typical one, not premature) are
   aligned on their R peaks and their per-lead median is the median beat;
3. on the median beat, the spatial velocity (root sum of squares over leads of the first derivative)
   gives the QRS onset and offset: where it falls below 10% of its QRS maximum (the offset after the
   last part above it, so an R' after a notch belongs to the QRS), then on (up to 10 ms) down to its
   local minimum (so a slurred delta wave belongs to the QRS, as a reader marks it);
4. the P wave is the largest spatial-magnitude bump 30-350 ms before the QRS and after the previous
   beat's T wave, accepted only when the
   beats agree on it one by one (median correlation with it >= 0.75; fibrillatory waves average to a
   bump too, but no beat resembles it); its onset and offset are where its own spatial velocity falls
   below 25% of its maximum or reaches the valley before another wave (independent of the baseline);
5. the T end is where the tangent at the steepest descent after the T peak meets the T-P baseline
   (the tangent method), on the spatial magnitude.
QTc is Bazett's. Times are in ms, amplitudes in mV; values that cannot be measured are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal as sps

from rare_ecg.signals.rpeaks import detect_r_peaks

BAND_HZ = (0.5, 40.0)
QRS_THRESHOLD = 0.10  # of the QRS's peak spatial velocity
P_THRESHOLD = 0.25  # of the P wave's peak spatial velocity
MIN_P_MV = 0.03  # spatial-magnitude rise a P wave must show in the median beat
MIN_P_S = 0.04  # shortest P wave
MAX_P_S = 0.18  # longest P wave
P_AGREEMENT = 0.75  # median correlation of the beats' (detrended) P windows with the median P wave
VELOCITY_SMOOTH_S = 0.006
WALK_S = 0.01  # how far past the threshold crossing a QRS boundary may move to the velocity minimum
TERMINAL_GAP_S = 0.025
QRS_REACH_S = 0.2  # from the R apex (the last peak of a left bundle-branch block's QRS) to its onset
ONSET_GAP_S = 0.015
ONSET_PART = 0.12
DOMINANT_CORRELATION = 0.9
PREMATURE_FRACTION = 0.85  # an RR under this fraction of the median marks a premature beat


@dataclass(frozen=True)
class Delineation:
    fs_hz: float
    r_peaks: np.ndarray  # sample indices of every detected beat
    rr_ms: np.ndarray  # successive RR intervals
    dominant: np.ndarray  # (n_beats,) bool: beats averaged into the median beat
    beat_qrs_ms: np.ndarray  # (n_beats,) QRS duration of each beat on its own (NaN at the edges)
    median_beat: np.ndarray  # (n_leads, m) mV, baseline (PR segment) removed
    r_index: int  # the R peak's sample in median_beat
    p_onset: int | None  # samples in median_beat
    p_offset: int | None
    qrs_onset: int | None
    qrs_offset: int | None
    t_peak: int | None
    t_end: int | None
    hr_bpm: float
    pr_ms: float
    qrs_ms: float
    qt_ms: float
    qtc_ms: float

    def ms(self, index: int | None) -> float:
        """A median-beat sample index as ms relative to the QRS onset (NaN when absent)."""
        if index is None or self.qrs_onset is None:
            return float("nan")
        return 1000.0 * (index - self.qrs_onset) / self.fs_hz


@dataclass(frozen=True)
class LeadMeasurements:
    """Per lead, on the median beat (mV; durations in ms)."""

    q_mv: np.ndarray  # most negative value before the R peak within the QRS (<= 0)
    q_ms: np.ndarray  # duration of the negative deflection before the R peak
    r_mv: np.ndarray  # most positive value within the QRS (>= 0)
    s_mv: np.ndarray  # most negative value after the R peak within the QRS (<= 0)
    qrs_pp_mv: np.ndarray
    st_mv: np.ndarray  # mean level 50-70 ms after the J point
    t_mv: np.ndarray  # value of the largest T deflection (signed)


def bandpass(x: np.ndarray, fs_hz: float) -> np.ndarray:
    high = min(BAND_HZ[1], 0.45 * fs_hz)
    sos = sps.butter(2, [BAND_HZ[0], high], btype="bandpass", fs=fs_hz, output="sos")
    return np.asarray(sps.sosfiltfilt(sos, x, axis=-1, padlen=min(x.shape[-1] - 1, int(fs_hz))))


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    if width <= 1:
        return x
    return np.convolve(x, np.ones(width) / width, mode="same")


def spatial_velocity(x: np.ndarray, fs_hz: float) -> np.ndarray:
    """Root sum of squares over leads of d/dt (mV/s), smoothed over 6 ms."""
    v = np.sqrt((np.gradient(x, axis=-1) ** 2).sum(axis=0)) * fs_hz
    return _smooth(v, round(VELOCITY_SMOOTH_S * fs_hz))


def _walk_to_minimum(v: np.ndarray, start: int, step: int, floor: float, limit: int) -> int:
    """From ``start``, move by ``step`` while ``v`` keeps decreasing and stays above ``floor``."""
    i = start
    while 0 < i + step < len(v) and abs(i + step - start) <= limit and floor < v[i + step] <= v[i]:
        i += step
    return i


def qrs_bounds(v: np.ndarray, r: int, fs_hz: float) -> tuple[int, int] | None:
    """QRS onset and offset around R from the spatial velocity ``v`` (sample indices)."""
    half = round(0.07 * fs_hz)
    lo, hi = max(0, r - half), min(len(v), r + half)
    if hi - lo < 3:
        return None
    vmax = float(v[lo:hi].max())
    if vmax <= 0:
        return None
    th = QRS_THRESHOLD * vmax
    reach = round(QRS_REACH_S * fs_hz)
    onset = r
    while onset > 0 and r - onset < reach and v[onset] > th:
        onset -= 1
    # an earlier notched part (bundle-branch block) is QRS too when it is clearly stronger than a
    # P wave can be (P waves stay under about 8% of the QRS's peak velocity)
    gap = round(ONSET_GAP_S * fs_hz)
    while onset > 0 and r - onset < reach:
        before = v[max(0, onset - gap) : onset]
        if before.size == 0 or float(before.max()) <= ONSET_PART * vmax:
            break
        onset -= gap - int(np.argmax(before[::-1] > ONSET_PART * vmax))
        while onset > 0 and r - onset < reach and v[onset] > th:
            onset -= 1
    # the QRS ends after its last supra-threshold part: a notch (RSR') or a slow terminal wave
    # (right bundle-branch block) may dip under the threshold for up to TERMINAL_GAP_S
    gap = round(TERMINAL_GAP_S * fs_hz)
    offset = last = r
    while offset < len(v) - 1 and offset - r < reach and offset - last <= gap:
        offset += 1
        if v[offset] > th:
            last = offset
    offset = last
    limit = round(WALK_S * fs_hz)
    onset = _walk_to_minimum(v, onset, -1, 0.02 * vmax, limit)
    offset = _walk_to_minimum(v, offset, 1, 0.02 * vmax, limit)
    return onset, offset


def _beat_windows(x: np.ndarray, r: np.ndarray, pre: int, post: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_beats, n_leads, pre + post) windows for the beats that fit, and their indices into r."""
    n = x.shape[-1]
    ok = np.flatnonzero((r - pre >= 0) & (r + post <= n))
    idx = r[ok, None] + np.arange(-pre, post)[None, :]
    return np.transpose(x[:, idx], (1, 0, 2)), ok


def _dominant(windows: np.ndarray, pre: int, fs_hz: float, premature: np.ndarray) -> np.ndarray:
    """Beats whose QRS (R-60 ms to R+80 ms, all leads) correlates >= 0.9 with the typical QRS."""
    a, b = pre - int(0.06 * fs_hz), pre + int(0.08 * fs_hz)
    qrs = windows[:, :, a:b].reshape(len(windows), -1)
    qrs = qrs - qrs.mean(axis=1, keepdims=True)
    typical = np.median(qrs, axis=0)
    norms = np.linalg.norm(qrs, axis=1) * np.linalg.norm(typical)
    corr = np.divide(qrs @ typical, norms, out=np.zeros(len(qrs)), where=norms > 0)
    keep = (corr >= DOMINANT_CORRELATION) & ~premature
    if keep.sum() < 2:
        keep = corr >= np.median(corr)
    return keep


def _empty(x: np.ndarray, fs_hz: float, r: np.ndarray) -> Delineation:
    nan = float("nan")
    rr = np.diff(r) * 1000.0 / fs_hz
    hr = 60_000.0 / float(np.mean(rr)) if rr.size else nan
    return Delineation(fs_hz, r, rr, np.zeros(r.size, dtype=bool), np.full(r.size, nan),
                       np.zeros((x.shape[0], 0)), 0, None, None, None, None, None, None, hr, nan, nan, nan, nan)  # fmt: skip


def delineate(signal_mv: np.ndarray, fs_hz: float, r_peaks: np.ndarray | None = None) -> Delineation:
    """Delineate a (n_leads, n) or (n,) mV record sampled at ``fs_hz``."""
    x = np.asarray(signal_mv, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    x = np.where(np.isfinite(x), x, 0.0)
    y = bandpass(x, fs_hz)
    r = np.asarray(detect_r_peaks(x, fs_hz) if r_peaks is None else r_peaks, dtype=np.int64)
    if r.size < 3:
        return _empty(x, fs_hz, r)
    rr = np.diff(r) * 1000.0 / fs_hz
    rr_med = float(np.median(rr))
    pre = round(min(0.45, 0.6 * rr_med / 1000.0) * fs_hz)
    post = round(float(np.clip(0.9 * rr_med / 1000.0, 0.35, 0.7)) * fs_hz)
    windows, ok = _beat_windows(y, r, pre, post)
    if len(ok) < 2:
        return _empty(x, fs_hz, r)
    rr_prev = np.concatenate([[rr_med], rr])
    premature = rr_prev[ok] < PREMATURE_FRACTION * rr_med
    keep = _dominant(windows, pre, fs_hz, premature)
    dominant = np.zeros(r.size, dtype=bool)
    dominant[ok[keep]] = True
    beat = np.median(windows[keep], axis=0)

    v_all = spatial_velocity(y, fs_hz)
    beat_qrs = np.full(r.size, np.nan)
    for i, peak in enumerate(r):
        bounds = qrs_bounds(v_all, int(peak), fs_hz)
        if bounds is not None and bounds[0] > 0 and bounds[1] < len(v_all) - 1:
            beat_qrs[i] = 1000.0 * (bounds[1] - bounds[0]) / fs_hz

    v = spatial_velocity(beat, fs_hz)
    bounds = qrs_bounds(v, pre, fs_hz)
    nan = float("nan")
    hr = 60_000.0 / float(np.mean(rr))
    if bounds is None:
        return _empty(x, fs_hz, r)
    on, off = bounds
    iso = beat[:, max(0, on - int(0.02 * fs_hz)) : max(1, on - int(0.006 * fs_hz))]
    beat_iso = iso.mean(axis=1, keepdims=True) if iso.size else None
    beat = beat - (beat_iso if beat_iso is not None else 0.0)

    rr_dom = float(np.median(rr_prev[ok[keep]])) / 1000.0
    t_peak, t_end = _t_wave(beat, pre, off, rr_dom, fs_hz)
    # the P wave lies after the previous beat's T wave; it is located in the median of the beats
    # after the longer cycles, where a short cycle's T wave cannot reach into the P window, and
    # checked against every dominant beat
    after_t = round(t_end - rr_dom * fs_hz + 0.02 * fs_hz) if t_end is not None else 0
    cycles = rr_prev[ok[keep]]
    long_cycle = cycles >= np.median(cycles)
    p_windows = windows[keep][long_cycle] if long_cycle.sum() >= 4 else windows[keep]
    p_beat = np.median(p_windows, axis=0) - (beat_iso if beat_iso is not None else 0.0)
    p_on, p_off = _p_wave(p_beat, windows[keep], on, fs_hz, max(0, after_t))
    qrs_ms = 1000.0 * (off - on) / fs_hz
    qt_ms = 1000.0 * (t_end - on) / fs_hz if t_end is not None else nan
    return Delineation(
        fs_hz=fs_hz,
        r_peaks=r,
        rr_ms=rr,
        dominant=dominant,
        beat_qrs_ms=beat_qrs,
        median_beat=beat,
        r_index=pre,
        p_onset=p_on,
        p_offset=p_off,
        qrs_onset=on,
        qrs_offset=off,
        t_peak=t_peak,
        t_end=t_end,
        hr_bpm=hr,
        pr_ms=1000.0 * (on - p_on) / fs_hz if p_on is not None else nan,
        qrs_ms=qrs_ms,
        qt_ms=qt_ms,
        qtc_ms=qt_ms / np.sqrt(rr_dom) if rr_dom > 0 else nan,
    )


def _t_wave(
    beat: np.ndarray, r_index: int, qrs_off: int, rr_s: float, fs_hz: float
) -> tuple[int | None, int | None]:
    """T peak and T end; the search stops before the next beat's P wave (RR - 220 ms after R)."""
    m = min(beat.shape[1], r_index + int(min(0.7, rr_s - 0.22) * fs_hz))
    lo = qrs_off + int(0.06 * fs_hz)
    if lo >= m - 3:
        return None, None
    a = _smooth(np.sqrt((beat**2).sum(axis=0)), max(1, int(0.02 * fs_hz)))[:m]
    peak = lo + int(np.argmax(a[lo:]))
    tail = a[peak : peak + int(0.15 * fs_hz)]
    if tail.size < 3:
        return peak, None
    slope = np.gradient(tail)
    steep = int(np.argmin(slope))
    if slope[steep] >= 0:
        return peak, None
    base = float(a[peak + steep : m].min())
    end = peak + steep + (tail[steep] - base) / -slope[steep]
    return peak, int(min(m - 1, round(end)))


def _p_wave(
    beat: np.ndarray, windows: np.ndarray, qrs_on: int, fs_hz: float, earliest: int
) -> tuple[int | None, int | None]:
    """P onset and offset on ``beat`` (median of the long-cycle beats), accepted when the dominant
    beats ``windows`` agree on it one by one."""
    lo, hi = max(earliest, qrs_on - int(0.35 * fs_hz)), qrs_on - int(0.03 * fs_hz)
    if hi - lo < int(0.04 * fs_hz):
        return None, None
    a = _smooth(np.sqrt((beat[:, lo:hi] ** 2).sum(axis=0)), max(1, int(0.02 * fs_hz)))
    peak = int(np.argmax(a))
    if a[peak] - a.min() < MIN_P_MV:
        return None, None
    # judged over +-100 ms: a P wave stands on a flat baseline, a fibrillatory wave on more waves
    half = int(0.1 * fs_hz)
    # ... and stops 20 ms short of the QRS, whose foot every beat shares
    a0, a1 = max(0, lo + peak - half), min(qrs_on - int(0.02 * fs_hz), lo + peak + half)
    if len(windows) >= 4 and not _consistent(windows[:, :, a0:a1], beat[:, a0:a1]):
        return None, None
    # boundaries from the P wave's own spatial velocity: independent of where the baseline sits
    v = spatial_velocity(beat, fs_hz)
    centre = lo + peak
    reach = int(0.1 * fs_hz)
    left = v[max(0, centre - reach) : centre + 1]
    right = v[centre : min(qrs_on, centre + reach)]
    if left.size < 2 or right.size < 2:
        return None, None
    vmax = max(float(left.max()), float(right.max()))
    th = P_THRESHOLD * vmax
    look = int(0.03 * fs_hz)
    onset = _p_edge(
        v, max(0, centre - reach) + int(np.argmax(left)), -1, th, vmax, max(0, centre - reach), look
    )
    offset = _p_edge(v, centre + int(np.argmax(right)), 1, th, vmax, min(qrs_on, centre + reach), look)
    if offset - onset < MIN_P_S * fs_hz:
        return None, None  # too brief for atrial depolarisation: flutter or noise locked to the QRS
    if offset - onset > MAX_P_S * fs_hz:
        return None, None  # too long: the tail of the previous T wave (short cycles in fibrillation)
    return onset, offset


def _p_edge(v: np.ndarray, start: int, step: int, th: float, vmax: float, stop: int, look: int) -> int:
    """From the P wave's steepest point, walk outwards until the velocity falls under ``th``, or
    reaches a valley after which another wave (the QRS, the previous T) rises within ``look``
    samples; shallower valleys are noise on a small P wave and are walked through."""
    i = start
    while i != stop and v[i] > th:
        if v[i + step] > v[i] and v[i] < 0.5 * vmax:
            ahead = v[i : i + step * look : step] if step > 0 else v[max(0, i - look) : i + 1]
            if ahead.size and float(ahead.max()) > 0.5 * vmax:
                break
        i += step
    return i


def _consistent(p_windows: np.ndarray, p_median: np.ndarray) -> bool:
    """True when most beats show the median P wave (>= 0.5 correlation, all leads): a P wave that
    exists. Fibrillatory waves average to a bump too, but no single beat resembles it."""
    # linear trends (residual baseline wander) would correlate between beats whatever the P wave
    ref = sps.detrend(p_median, axis=-1).ravel()
    each = sps.detrend(p_windows, axis=-1).reshape(len(p_windows), -1)
    norms = np.linalg.norm(each, axis=1) * np.linalg.norm(ref)
    corr = np.divide(each @ ref, norms, out=np.zeros(len(each)), where=norms > 0)
    return float(np.median(corr)) >= P_AGREEMENT


def lead_measurements(d: Delineation) -> LeadMeasurements:
    """Q, R, S, ST and T amplitudes per lead on the median beat."""
    n_leads = d.median_beat.shape[0]
    nan = np.full(n_leads, np.nan)
    if d.qrs_onset is None or d.qrs_offset is None:
        return LeadMeasurements(nan, nan, nan, nan, nan, nan, nan)
    beat, fs = d.median_beat, d.fs_hz
    seg = beat[:, d.qrs_onset : d.qrs_offset + 1]
    r_at = np.argmax(seg, axis=1)
    q = np.array([seg[i, : r_at[i]].min() if r_at[i] > 0 else 0.0 for i in range(n_leads)])
    s = np.array([seg[i, r_at[i] :].min() for i in range(n_leads)])
    # Q duration: the samples before the R peak spent in the Q deflection (from where it leaves the
    # baseline to where it returns: below 5% of its depth, and at least 15 uV below zero)
    q_ms = np.array(
        [1000.0 * np.count_nonzero(seg[i, : r_at[i]] < min(-0.015, 0.05 * q[i])) / fs for i in range(n_leads)]
    )
    st_lo = d.qrs_offset + int(0.05 * fs)
    st_hi = d.qrs_offset + int(0.07 * fs) + 1
    st = beat[:, st_lo:st_hi].mean(axis=1) if st_hi <= beat.shape[1] else nan
    if d.t_peak is not None:
        lo = max(d.qrs_offset + int(0.06 * fs), d.t_peak - int(0.1 * fs))
        hi = d.t_end if d.t_end is not None else min(beat.shape[1], d.t_peak + int(0.1 * fs))
        window = beat[:, lo : max(lo + 1, hi)]
        t = window[np.arange(n_leads), np.argmax(np.abs(window), axis=1)]
    else:
        t = nan
    return LeadMeasurements(
        q_mv=np.minimum(q, 0.0),
        q_ms=q_ms,
        r_mv=np.maximum(seg.max(axis=1), 0.0),
        s_mv=np.minimum(s, 0.0),
        qrs_pp_mv=seg.max(axis=1) - seg.min(axis=1),
        st_mv=np.asarray(st, dtype=np.float64),
        t_mv=np.asarray(t, dtype=np.float64),
    )
