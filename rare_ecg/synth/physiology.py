"""A patient's physiology: persistent traits, and the rates and intervals of one visit.

Traits are z-scores drawn once per patient, so the same person's ECGs look alike across visits while
age moves the population means. Population means and spreads (resting adults, ours, from textbook
reference ranges, then adjusted so the intervals detector reads the same distributions on synthetic
records as on the PTB-XL sample): heart rate about 69 bpm, a little higher in women and lower with
age; PR about 146 ms, lengthening with age; QRS about 90 ms, about 6 ms shorter in women;
Fridericia-corrected QT about 398 ms in men and 411 ms in women, lengthening with age; frontal QRS
axis about +40 degrees, turning left with age; QRS voltage lower in women and with age. Each rhythm label constrains the rate
to its definition (sinus bradycardia under 60 bpm, tachycardia over 100, ...), with margins so a
reader measuring the record agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rare_ecg.synth.waves import rotation, unit


@dataclass(frozen=True)
class Traits:
    """Per-patient z-scores and ectopic foci (drawn once; a patient's ECGs share them)."""

    z_hr: float
    z_pr: float
    z_qrs: float
    z_qtc: float
    z_axis: float
    z_qrs_amp: float
    z_t_amp: float
    z_p_amp: float
    z_p_dur: float
    horizontal_deg: float  # rotation of the heart about the vertical axis (R-wave progression)
    t_angle_deg: tuple[float, float]  # QRS-T angle jitter (about z, about y)
    pvc_focus: np.ndarray  # (3,) unit vector: direction of a PVC's main forces
    escape_focus: np.ndarray
    pacing_spike: np.ndarray  # (3,) mV: the stimulus artefact's dipole
    ectopic_p: np.ndarray  # (3,) unit vector: ectopic atrial focus
    pvc_qrs_s: float


def draw_traits(rng: np.random.Generator) -> Traits:
    z = rng.normal(size=9)
    return Traits(
        z_hr=float(z[0]),
        z_pr=float(z[1]),
        z_qrs=float(z[2]),
        z_qtc=float(z[3]),
        z_axis=float(z[4]),
        z_qrs_amp=float(z[5]),
        z_t_amp=float(z[6]),
        z_p_amp=float(z[7]),
        z_p_dur=float(z[8]),
        horizontal_deg=float(rng.normal(0.0, 12.0)),
        t_angle_deg=(float(rng.normal(0.0, 12.0)), float(rng.normal(0.0, 10.0))),
        pvc_focus=unit(rng.normal(size=3)),
        escape_focus=unit(rng.normal(size=3)),
        pacing_spike=float(rng.uniform(1.0, 4.0)) * unit([0.3, 0.8, -0.4] + 0.3 * rng.normal(size=3)),
        ectopic_p=unit([0.2, -1.0, 0.1] + 0.6 * rng.normal(size=3)),
        pvc_qrs_s=float(rng.uniform(0.14, 0.17)),
    )


def _within(value: float, lo: float, hi: float, rng: np.random.Generator, spread: float) -> float:
    """``value`` if inside [lo, hi], else redrawn around it (then clipped): no pile-up at the bounds."""
    v = value
    for _ in range(8):
        if lo <= v <= hi:
            return v
        v = float(rng.normal(np.clip(value, lo, hi), spread))
    return float(np.clip(v, lo, hi))


@dataclass(frozen=True)
class VisitPhysiology:
    hr_bpm: float
    pr_s: float
    qrs_s: float
    qtc_s: float
    axis_deg: float
    qrs_amp: float
    t_amp: float
    p_amp: float
    p_dur_s: float
    rsa: float
    resp_hz: float
    qrs_rot: np.ndarray  # (3, 3) orientation of the QRS loop
    t_rot: np.ndarray  # (3, 3) QRS-T angle


# Population calibration (development time): with these, the medians of the R and S amplitudes per
# lead that the intervals detector measures on a synthetic cohort, and of the T amplitudes on NORM
# records, are close to those it measures on the 250 PTB-XL sample records
# (tests/synth/test_synth_realism.py prints and bounds the comparison).
AXIS_MEAN_DEG = 50.0
QRS_SCALE = 1.3
T_SCALE = 1.2

RATE_RANGES = {  # bpm, by primary rhythm (ours; PTB-XL's definitions with margins)
    "SR": (62.0, 98.0),
    "SVARR": (62.0, 95.0),
    "PSVT": (62.0, 95.0),
    "SARRH": (58.0, 95.0),
    "SBRAD": (40.0, 56.0),
    "STACH": (105.0, 150.0),
    "AFIB": (55.0, 140.0),
    "AFLT": (60.0, 150.0),
    "SVTAC": (150.0, 210.0),
    "PACE": (60.0, 75.0),
}


def visit_physiology(
    traits: Traits, age: float, sex: str, primary: str, labels: frozenset[str], rng: np.random.Generator
) -> VisitPhysiology:
    female = sex == "female"
    a = age - 50.0
    hr_mean = 69.0 - 0.06 * a + (3.0 if female else 0.0)
    lo, hi = RATE_RANGES[primary]
    if primary == "SBRAD":
        hr = _within(53.0 + 3.0 * traits.z_hr + 2.0 * float(rng.normal()), lo, hi, rng, 3.0)
    elif primary == "STACH":
        hr = _within(114.0 + 8.0 * abs(traits.z_hr) + 5.0 * float(rng.normal()), lo, hi, rng, 8.0)
    elif primary in ("AFIB", "AFLT"):
        hr = _within(88.0 + 16.0 * traits.z_hr + 8.0 * float(rng.normal()), lo, hi, rng, 15.0)
    elif primary == "SVTAC":
        hr = float(rng.uniform(lo, hi))
    elif primary == "PACE":
        hr = float(rng.choice([60.0, 65.0, 70.0, 72.0]))
    else:
        hr = _within(hr_mean + 10.0 * traits.z_hr + 5.0 * float(rng.normal()), lo, hi, rng, 6.0)
    if "2AVB" in labels or "3AVB" in labels:
        hr = max(hr, 65.0)  # the atrial rate stays normal; the ventricles are the slow ones

    pr_ms = 146.0 + 0.3 * a + 16.0 * traits.z_pr + 4.0 * float(rng.normal())
    if "1AVB" in labels:
        pr_ms = 235.0 + 25.0 * abs(traits.z_pr) + 5.0 * float(rng.normal())
        pr_ms = float(np.clip(pr_ms, 222.0, 330.0))
    elif "LPR" in labels:
        pr_ms = float(np.clip(215.0 + 10.0 * abs(traits.z_pr), 210.0, 250.0))
    elif "WPW" in labels:
        pr_ms = float(rng.uniform(80.0, 100.0))  # to the delta wave's onset
    else:
        pr_ms = _within(pr_ms, 124.0, 196.0, rng, 10.0)

    qrs_ms = _within((90.0 - (6.0 if female else 0.0)) + 7.0 * traits.z_qrs, 74.0, 104.0, rng, 5.0)
    qtc_ms = _within(
        (398.0 + (13.0 if female else 0.0)) + 0.35 * a + 13.0 * traits.z_qtc, 365.0, 445.0, rng, 8.0
    )
    axis = float(np.clip(AXIS_MEAN_DEG - 0.45 * a + 20.0 * traits.z_axis, -25.0, 88.0))
    qrs_amp = (
        QRS_SCALE * float(np.exp(0.2 * traits.z_qrs_amp)) * (1.0 - 0.005 * a) * (0.88 if female else 1.0)
    )
    t_amp = T_SCALE * float(np.exp(0.2 * traits.z_t_amp)) * (0.9 if female else 1.0) * (1.0 - 0.003 * a)
    p_amp = float(np.exp(0.2 * traits.z_p_amp))
    p_dur = float(np.clip(96.0 + 9.0 * traits.z_p_dur, 76.0, 114.0)) / 1000.0
    if "WPW" in labels:
        # the P wave runs straight into the delta wave: it cannot outlast the short PR
        p_dur = min(p_dur, pr_ms / 1000.0 - 0.004)
    # respiratory sinus arrhythmia, stronger in the young; kept under 10% peak-to-peak RR variation
    # (what a reader would call sinus arrhythmia) unless the label says so
    rsa = float(np.clip(0.035 - 0.0004 * a, 0.008, 0.045)) * float(rng.uniform(0.6, 1.1))
    if primary == "SARRH":
        rsa = float(rng.uniform(0.1, 0.16))
    qrs_rot = rotation("y", traits.horizontal_deg)
    t_rot = rotation("z", traits.t_angle_deg[0]) @ rotation("y", traits.t_angle_deg[1])
    return VisitPhysiology(
        hr_bpm=hr,
        pr_s=pr_ms / 1000.0,
        qrs_s=qrs_ms / 1000.0,
        qtc_s=qtc_ms / 1000.0,
        axis_deg=axis,
        qrs_amp=qrs_amp,
        t_amp=t_amp,
        p_amp=p_amp,
        p_dur_s=p_dur,
        rsa=rsa,
        resp_hz=float(rng.uniform(0.2, 0.33)),
        qrs_rot=qrs_rot,
        t_rot=t_rot,
    )


def placement_jitter(rng: np.random.Generator, dower: np.ndarray) -> np.ndarray:
    """Electrodes are placed anew at every visit: the precordial lead vectors vary a little."""
    out = dower.copy()
    out[2:] = out[2:] * rng.normal(1.0, 0.07, (6, 1)) + rng.normal(0.0, 0.06, (6, 3))
    return out
