"""Recording noise, generated per electrode (RA, LA, LL, V1-V6) and turned into leads like the signal.

Generating noise at the electrodes, not the leads, keeps it physical: a loose V4 electrode disturbs V4
alone, a tremor of the left arm shows in I, III, aVL, aVR and aVF at once, and Einthoven's law holds
for the noise too. Components: baseline wander (respiration-locked and slow drifts), mains hum (50 or
60 Hz, mostly common-mode so it largely cancels), muscle noise (band-limited 20-150 Hz, sometimes in a
burst), and occasionally an electrode artefact (a pop or motion transient) on one
electrode. The stationary parts are built as one spectrum and one inverse FFT per record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.synth.waves import ELECTRODE_TO_LEAD, ELECTRODES

_N_EL = len(ELECTRODES)
WANDER_REPORT_MV = 0.25  # peak-to-peak baseline wander above which a lead counts as drifting
STATIC_REPORT_MV = 0.012  # muscle-noise SD above which a lead counts as noisy


@dataclass
class NoiseReport:
    """Which leads each kind of noise visibly affects (for PTB-XL's noise columns)."""

    baseline_drift: list[str] = field(default_factory=list)
    static_noise: list[str] = field(default_factory=list)
    burst_noise: list[str] = field(default_factory=list)
    electrodes_problems: list[str] = field(default_factory=list)


def _names(mask: np.ndarray) -> list[str]:
    return [name for name, hit in zip(CANONICAL_LEADS, mask, strict=True) if hit]


def electrode_noise(
    rng: np.random.Generator, n: int, fs_hz: float, mains_hz: float, resp_hz: float
) -> tuple[np.ndarray, NoiseReport]:
    """(12, n) mV of noise in lead space, and which leads it visibly affects."""
    n_bins = n // 2 + 1
    df = fs_hz / n
    spec = np.zeros((_N_EL, n_bins), dtype=np.complex128)
    to_amp = n / 2.0  # irfft of a bin of value to_amp * a * e^(i phi) is a cosine of amplitude a

    # baseline wander: respiration plus two slow drifts, each with per-electrode amplitude
    wander_amp = float(rng.lognormal(np.log(0.03), 0.7))
    wander = np.zeros((_N_EL, 3), dtype=np.complex128)
    for j, f in enumerate((resp_hz, float(rng.uniform(0.03, 0.4)), float(rng.uniform(0.03, 0.4)))):
        k = max(1, round(f / df))
        coef = wander_amp * rng.normal(0.0, 1.0, _N_EL) * np.exp(1j * rng.uniform(0, 2 * np.pi, _N_EL))
        spec[:, k] += to_amp * coef
        wander[:, j] = coef

    if rng.uniform() < 0.35:
        k = round(mains_hz / df)
        if k < n_bins - 1:
            # common-mode pickup cancels in every lead; the electrode-to-electrode differences remain
            amp = float(rng.uniform(0.0, 0.015)) * rng.uniform(0.2, 1.0, _N_EL)
            spec[:, k] += to_amp * amp * np.exp(1j * float(rng.uniform(0, 2 * np.pi)))

    # muscle noise: flat 20-150 Hz band of unit variance per electrode, limb electrodes louder
    freqs = np.arange(n_bins) * df
    band = np.flatnonzero((freqs >= 20.0) & (freqs <= min(150.0, fs_hz / 2 - df)))
    muscle_sd = float(rng.lognormal(np.log(0.006), 0.6))
    gain = np.ones(_N_EL)
    gain[:3] = rng.uniform(1.0, 2.5, 3)
    per_bin = muscle_sd * gain[:, None] * n / (2.0 * np.sqrt(band.size))
    # complex Gaussian bins (real and imaginary parts independent) drawn as one real array
    emg = rng.standard_normal((_N_EL, 2 * band.size)).view(np.complex128) * per_bin
    burst = rng.uniform() < 0.12
    if not burst:
        spec[:, band] += emg
    electrodes = np.fft.irfft(spec, n=n, axis=1)

    report = NoiseReport()
    t = np.arange(n) / fs_hz
    if burst:
        muscle = np.zeros((_N_EL, n_bins), dtype=np.complex128)
        muscle[:, band] = emg
        start, length = float(rng.uniform(0, 8)), float(rng.uniform(0.5, 2.5))
        envelope = np.where((t >= start) & (t < start + length), float(rng.uniform(3.0, 6.0)), 1.0)
        electrodes += np.fft.irfft(muscle, n=n, axis=1) * envelope[None, :]
        burst_sd = np.sqrt((ELECTRODE_TO_LEAD**2) @ (muscle_sd * gain) ** 2) * envelope.max()
        report.burst_noise = _names(burst_sd > 2 * STATIC_REPORT_MV)

    if rng.uniform() < 0.06:
        # pops and motion transients mostly at chest electrodes, so usually one lead shows them
        problem = int(rng.choice(_N_EL, p=[0.04, 0.04, 0.04] + [0.88 / 6] * 6))
        at = float(rng.uniform(0.5, 9.0))
        step = float(rng.uniform(0.3, 1.5)) * float(rng.choice([-1.0, 1.0]))
        decay = float(rng.uniform(0.15, 0.8))
        after = t >= at
        electrodes[problem, after] += step * np.exp(-(t[after] - at) / decay)
        report.electrodes_problems = _names(np.abs(ELECTRODE_TO_LEAD[:, problem]) > 0.5)

    lead_wander = np.abs(ELECTRODE_TO_LEAD @ wander).sum(axis=1) * 2.0  # peak-to-peak bound
    report.baseline_drift = _names(lead_wander > WANDER_REPORT_MV)
    lead_sd = np.sqrt((ELECTRODE_TO_LEAD**2) @ (muscle_sd * gain) ** 2)
    report.static_noise = _names(lead_sd > STATIC_REPORT_MV)
    return ELECTRODE_TO_LEAD @ electrodes, report
