"""Morphology of the anomalies: each label changes the patient's P and QRS-T templates as its
physiology does, in the dipole so that every lead shows it consistently.

Territories are unit vectors pointing from the heart's centre to a wall of the left ventricle; a lead
"faces" a territory when its lead vector points the same way (inferior: II, III, aVF; anteroseptal:
V1-V3; lateral: I, aVL, V5, V6; ...). Following the physiology:
- an old infarct removes the wall's forces: the initial QRS vector points away from it (Q waves in the
  facing leads), the R wave there shrinks, and the T vector turns away (T inversion);
- injury (acute ST-elevation infarction) adds an ST-segment vector toward the wall (ST elevation in the
  facing leads, reciprocal depression opposite) and a taller T;
- ischaemia adds an ST vector away from the wall (ST depression) and turns the T vector away;
- bundle-branch blocks add late, slow forces (toward the right ventricle for RBBB; LBBB loses the
  septal q and activates the left ventricle slowly from right to left), with secondary ST-T changes
  opposite to them; fascicular blocks rotate the frontal QRS axis;
- pre-excitation (WPW) adds a slow delta wave starting before the normal QRS onset (short PR);
- hypertrophy raises the voltage toward the hypertrophied chamber; atrial overload widens/notches
  (left) or heightens (right) the P wave; hyperkalaemia-like electrolyte disturbance (EL) makes the T
  tall, narrow and peaked; Brugada-like coved ST elevation (STE_) is a near-field potential of the
  right ventricular outflow tract, seen in V1-V2 only.

Each modifier draws its parameters from its own random stream, so removing one label from a record
(to find where it changes the signal, for the ground-truth mask) leaves the others' parameters alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rare_ecg.synth.beats import (
    J_POINT,
    QRS_ON,
    REFERENCE_QRS_S,
    ROLE_P,
    ROLE_QRS,
    ROLE_ST,
    ROLE_T,
    T_END,
    Template,
    VentricularTemplate,
    add_st_shift,
    instantiate,
)
from rare_ecg.synth.waves import PLATEAU, lead_matrix, render, rotation, unit

TERRITORIES: dict[str, np.ndarray] = {
    "inferior": unit([0.0, 1.0, 0.0]),
    "anteroseptal": unit([-0.2, 0.0, -1.0]),
    "anterior": unit([0.35, 0.0, -1.0]),
    "anterolateral": unit([1.0, -0.25, -0.45]),
    "lateral": unit([1.0, -0.45, 0.25]),
    "inferolateral": unit([0.7, 0.8, 0.1]),
    "posterior": unit([0.0, 0.0, 1.0]),
    "inferoposterior": unit([0.0, 0.75, 0.65]),
    "inferoposterolateral": unit([0.55, 0.65, 0.5]),
}
MI_TERRITORY = {
    "IMI": "inferior", "ASMI": "anteroseptal", "AMI": "anterior", "ALMI": "anterolateral", "LMI": "lateral",
    "ILMI": "inferolateral", "IPLMI": "inferoposterolateral", "IPMI": "inferoposterior", "PMI": "posterior",
}  # fmt: skip
INJURY_TERRITORY = {
    "INJAS": "anteroseptal", "INJAL": "anterolateral", "INJIN": "inferior", "INJLA": "lateral",
    "INJIL": "inferolateral",
}  # fmt: skip
ISCHEMIA_TERRITORY = {
    "ISCAL": "anterolateral", "ISCAS": "anteroseptal", "ISCIL": "inferolateral", "ISCIN": "inferior",
    "ISCLA": "lateral", "ISCAN": "anterior",
}  # fmt: skip
_LEADS = lead_matrix()


@dataclass
class Morph:
    """What the modifiers change: the atrial and ventricular templates and the timing knobs."""

    p: Template
    v: VentricularTemplate
    qrs_amp: float  # the patient's QRS scale, so added forces are in proportion
    t_amp: float
    pr_extra_s: float = 0.0  # added to the PR interval (digitalis)


Modifier = Callable[[Morph, np.random.Generator], None]


def _role(t: Template, role: int) -> np.ndarray:
    return np.flatnonzero(t.role == role)


def single_beat(t: Template, qrs_s: float, fs_hz: float = 500.0) -> np.ndarray:
    """(12, n) mV of one beat of ``t`` (QRS onset at 0.3 s, QT 0.4 s), to measure a template."""
    anchors = np.array([[0.3 - 0.16, 0.3, 0.3 + qrs_s, 0.7]])
    table = instantiate(t, anchors, np.ones(1), np.ones(1))
    return render(table, fs_hz, int(1.2 * fs_hz), 0.0, _LEADS)


def qrs_window(t: Template, qrs_s: float, pre_s: float = 0.0, fs_hz: float = 500.0) -> np.ndarray:
    """(12, m) mV: the QRS part of one beat of ``t`` (QRS-role waves only)."""
    sub = subset(t, t.role == ROLE_QRS)
    beat = single_beat(sub, qrs_s, fs_hz)
    lo, hi = int((0.3 - pre_s - 0.01) * fs_hz), int((0.3 + qrs_s + 0.02) * fs_hz)
    return beat[:, lo:hi]


def subset(t: Template, keep: np.ndarray) -> Template:
    return Template(**{k: v[keep] for k, v in t.__dict__.items()})


def frontal_axis_deg(t: Template) -> float:
    """The QRS frontal axis a reader would measure: atan2 of the net QRS areas in aVF and I
    (a Gaussian's area is proportional to the sum of its two sigmas)."""
    qrs = t.role == ROLE_QRS
    area = (t.vec[qrs] * (t.s0[qrs] + t.s1[qrs])[:, None]).sum(axis=0)
    return float(np.degrees(np.arctan2(_LEADS[5] @ area, _LEADS[0] @ area)))


def rotate_qrs_frontal(v: VentricularTemplate, target_deg: float, t_share: float = 0.5) -> None:
    """Rotate the QRS forces in the frontal plane until the measured axis is ``target_deg``;
    the T vector follows by ``t_share`` of the rotation (the QRS-T angle widens a little)."""
    qrs = _role(v.waves, ROLE_QRS)
    tw = _role(v.waves, ROLE_T)
    for _ in range(3):
        delta = (target_deg - frontal_axis_deg(v.waves) + 180.0) % 360.0 - 180.0
        if abs(delta) < 2.0:
            break
        v.waves.vec[qrs] = v.waves.vec[qrs] @ rotation("z", delta).T
        v.waves.vec[tw] = v.waves.vec[tw] @ rotation("z", t_share * delta).T


def _remove_toward(vecs: np.ndarray, u: np.ndarray, fraction: float) -> np.ndarray:
    along = np.clip(vecs @ u, 0.0, None)
    return vecs - fraction * along[:, None] * u[None, :]


def _turn_t_away(m: Morph, u: np.ndarray, strength: float, floor: float) -> None:
    """Make the T vector point away from ``u`` by at least ``floor`` (x t_amp) mV."""
    tw = _role(m.v.waves, ROLE_T)
    vecs = m.v.waves.vec[tw]
    along = vecs @ u
    vecs = vecs - (strength * np.clip(along, 0.0, None))[:, None] * u[None, :]
    vecs = vecs - floor * m.t_amp * u[None, :]
    m.v.waves.vec[tw] = vecs


def _k(m: Morph) -> float:
    return m.v.qrs_s / REFERENCE_QRS_S


def infarct(territory: str, t_changes: bool = True, q_scale: float = 1.0) -> Modifier:
    def apply(m: Morph, rng: np.random.Generator) -> None:
        u = TERRITORIES[territory]
        k = _k(m)
        qrs = _role(m.v.waves, ROLE_QRS)
        m.v.waves.vec[qrs] = _remove_toward(m.v.waves.vec[qrs], u, float(rng.uniform(0.4, 0.7)) * q_scale)
        amp = float(rng.uniform(0.55, 0.95)) * q_scale * m.qrs_amp
        # a Q wave of about 40 ms: the first forces point away from the dead wall
        m.v.waves.add(QRS_ON, 0.028 * k, 0.012 * k, 0.017 * k, -amp * u, ROLE_QRS)
        # old infarcts keep inverted T waves in about a third of the patients
        if t_changes and rng.uniform() < 0.35:
            _turn_t_away(m, u, float(rng.uniform(1.2, 1.8)), float(rng.uniform(0.06, 0.14)))

    return apply


def injury(territory: str, lo: float = 0.16, hi: float = 0.34) -> Modifier:
    def apply(m: Morph, rng: np.random.Generator) -> None:
        u = TERRITORIES[territory]
        add_st_shift(m.v.waves, float(rng.uniform(lo, hi)) * u)
        tw = _role(m.v.waves, ROLE_T)
        m.v.waves.vec[tw] += float(rng.uniform(0.1, 0.25)) * u

    return apply


def ischemia(territory: str | None) -> Modifier:
    def apply(m: Morph, rng: np.random.Generator) -> None:
        name = territory or str(rng.choice(["lateral", "anterolateral", "inferior", "inferolateral"]))
        u = TERRITORIES[name]
        add_st_shift(m.v.waves, -float(rng.uniform(0.07, 0.14)) * u)
        _turn_t_away(m, u, float(rng.uniform(1.0, 1.6)), float(rng.uniform(0.03, 0.09)))

    return apply


def _aneurysm(m: Morph, rng: np.random.Generator) -> None:
    territory = str(rng.choice(["anteroseptal", "anterior"]))
    infarct(territory, t_changes=False)(m, rng)
    add_st_shift(m.v.waves, float(rng.uniform(0.2, 0.32)) * TERRITORIES[territory])


def _brugada(m: Morph, rng: np.random.Generator) -> None:
    """Coved ST elevation in V1-V2 descending into a negative T: a near-field RVOT potential."""
    amp = float(rng.uniform(0.3, 0.55))
    local = amp * np.array([1.0, float(rng.uniform(0.75, 1.0)), 0.2, 0.0, 0.0, 0.0])
    m.v.waves.add(
        J_POINT,
        0.0,
        0.004,
        0.045,
        np.zeros(3),
        ROLE_ST,
        shape=PLATEAU,
        end_anchor=T_END,
        end_off=-0.16,
        local=local,
    )
    # the T wave in V1-V2 turns negative: cancel the normal T there and invert it
    tw = _role(m.v.waves, ROLE_T)
    t_v1_v2 = _LEADS[6:8] @ m.v.waves.vec[tw].sum(axis=0)
    inverted = np.zeros(6)
    inverted[:2] = -np.clip(t_v1_v2, 0.0, None) - 0.6 * local[:2]
    m.v.waves.add(T_END, -0.09, 0.05, 0.035, np.zeros(3), ROLE_T, local=inverted)


def _st_depression(m: Morph, rng: np.random.Generator) -> None:
    u = TERRITORIES[str(rng.choice(["lateral", "anterolateral", "inferolateral"]))]
    add_st_shift(m.v.waves, -float(rng.uniform(0.2, 0.3)) * u)


def _nonspecific_st(m: Morph, rng: np.random.Generator) -> None:
    direction = unit(rng.normal(size=3))
    add_st_shift(m.v.waves, float(rng.uniform(0.06, 0.11)) * direction)


def _t_change(lo_deg: float, hi_deg: float, lo_scale: float, hi_scale: float) -> Modifier:
    """Turn the T vector by a random angle about a random axis, and rescale it."""

    def apply(m: Morph, rng: np.random.Generator) -> None:
        tw = _role(m.v.waves, ROLE_T)
        axis = unit(rng.normal(size=3))
        angle = np.radians(float(rng.uniform(lo_deg, hi_deg)))
        # Rodrigues' rotation of each T vector about ``axis``
        v = m.v.waves.vec[tw]
        c, s = np.cos(angle), np.sin(angle)
        v = v * c + np.cross(axis, v) * s + np.outer(v @ axis, axis) * (1 - c)
        m.v.waves.vec[tw] = v * float(rng.uniform(lo_scale, hi_scale))

    return apply


def _inverted_t(m: Morph, rng: np.random.Generator) -> None:
    tw = _role(m.v.waves, ROLE_T)
    v = m.v.waves.vec[tw]
    u = unit(v.sum(axis=0) + 0.3 * np.linalg.norm(v.sum(axis=0)) * rng.normal(size=3))
    m.v.waves.vec[tw] = (v - 2.0 * np.outer(v @ u, u)) * float(rng.uniform(0.6, 1.0))


def _low_t(m: Morph, rng: np.random.Generator) -> None:
    m.v.waves.vec[_role(m.v.waves, ROLE_T)] *= float(rng.uniform(0.12, 0.25))


def _digitalis(m: Morph, rng: np.random.Generator) -> None:
    """Scooped (sagging) ST depression opposite the QRS, flat T, short QT, slightly long PR."""
    qrs = _role(m.v.waves, ROLE_QRS)
    mean = unit(m.v.waves.vec[qrs].sum(axis=0))
    m.v.waves.add(J_POINT, 0.01, 0.01, 0.05, -float(rng.uniform(0.2, 0.3)) * mean, ROLE_ST, shape=PLATEAU,
                  end_anchor=T_END, end_off=-0.09)  # fmt: skip
    m.v.waves.vec[_role(m.v.waves, ROLE_T)] *= float(rng.uniform(0.2, 0.4))
    m.v.qt_scale *= float(rng.uniform(0.84, 0.9))
    m.pr_extra_s += float(rng.uniform(0.01, 0.03))


def _long_qt(m: Morph, rng: np.random.Generator) -> None:
    """Rate-corrected QT of 490-560 ms (Fridericia), whatever the patient's baseline."""
    m.v.qt_scale *= float(rng.uniform(0.49, 0.56)) / m.v.qtc_s


def _electrolyte(m: Morph, rng: np.random.Generator) -> None:
    """Hyperkalaemia-like: tall, narrow, symmetric peaked T; flatter P."""
    tw = _role(m.v.waves, ROLE_T)
    m.v.waves.vec[tw] *= float(rng.uniform(2.2, 3.0))
    m.v.waves.s0[tw] *= 0.5
    m.v.waves.s1[tw] *= 0.75
    m.v.waves.off0[tw] *= 0.75
    m.p.vec[_role(m.p, ROLE_P)] *= float(rng.uniform(0.4, 0.7))


def _scale_qrs_to(m: Morph, leads: slice, target_pp: float) -> None:
    w = qrs_window(m.v.waves, m.v.qrs_s, m.v.pre_qrs_s)
    current = float(np.ptp(w[leads], axis=1).max())
    qrs = _role(m.v.waves, ROLE_QRS)
    m.v.waves.vec[qrs] *= target_pp / current


def _low_voltage(m: Morph, rng: np.random.Generator) -> None:
    _scale_qrs_to(m, slice(0, 6), float(rng.uniform(0.25, 0.42)))
    w = qrs_window(m.v.waves, m.v.qrs_s, m.v.pre_qrs_s)
    precordial = float(np.ptp(w[6:], axis=1).max())
    if precordial > 0.9:
        _scale_qrs_to(m, slice(6, 12), 0.9)


_MIN_SOKOLOW_MV = 0.2
_MAX_VOLTAGE_GAIN = 4.0


def sokolow_lyon_mv(t: Template, qrs_s: float) -> float:
    """S in V1 plus the larger R of V5 and V6 (mV)."""
    w = qrs_window(t, qrs_s)
    return float(-w[6].min() + max(w[10].max(), w[11].max()))


def _lv_voltage(lo: float, hi: float) -> Modifier:
    def apply(m: Morph, rng: np.random.Generator) -> None:
        qrs = _role(m.v.waves, ROLE_QRS)
        m.v.waves.vec[qrs[2]] += 0.3 * m.qrs_amp * unit([0.55, 0.05, 0.85])
        target = float(rng.uniform(lo, hi))
        current = sokolow_lyon_mv(m.v.waves, m.v.qrs_s)
        # Another modifier may have turned V1's S or V5/V6's R around (RVH with VCLVH: patient 4604 of
        # seed 0 had 0 mV); scaling by target / ~0 would divide by zero or blow the QRS up.
        if current > _MIN_SOKOLOW_MV:
            m.v.waves.vec[qrs] *= min(target / current, _MAX_VOLTAGE_GAIN)

    return apply


def _lvh(m: Morph, rng: np.random.Generator) -> None:
    _widen(m, float(rng.uniform(0.006, 0.012)))
    _lv_voltage(3.8, 5.0)(m, rng)
    if rng.uniform() < 0.4:  # the strain pattern: lateral ST depression and T inversion
        u = TERRITORIES["lateral"]
        add_st_shift(m.v.waves, -float(rng.uniform(0.06, 0.12)) * u)
        _turn_t_away(m, u, float(rng.uniform(1.2, 1.7)), float(rng.uniform(0.04, 0.1)))


def _high_voltage(m: Morph, rng: np.random.Generator) -> None:
    _scale_qrs_to(m, slice(6, 12), float(rng.uniform(3.8, 5.0)))


def _rvh(m: Morph, rng: np.random.Generator) -> None:
    k = _k(m)
    rotate_qrs_frontal(m.v, float(rng.uniform(105, 140)), t_share=0.2)
    force = unit([-0.45, 0.2, -0.9])
    amp = float(rng.uniform(0.7, 1.1)) * m.qrs_amp
    qrs = _role(m.v.waves, ROLE_QRS)
    m.v.waves.vec[qrs] = _remove_toward(m.v.waves.vec[qrs], unit([0.2, 0.0, 1.0]), 0.5)
    m.v.waves.add(QRS_ON, 0.05 * k, 0.013 * k, 0.013 * k, amp * force, ROLE_QRS)
    # tall R in V1: keep adding right-anterior force until R exceeds S there
    for _ in range(4):
        w = qrs_window(m.v.waves, m.v.qrs_s)
        if w[6].max() > 1.2 * -w[6].min():
            break
        m.v.waves.vec[-1] *= 1.4
    _turn_t_away(m, TERRITORIES["anteroseptal"], 1.2, 0.05)


def _septal_hypertrophy(m: Morph, rng: np.random.Generator) -> None:
    qrs = _role(m.v.waves, ROLE_QRS)
    m.v.waves.vec[qrs[0]] = m.v.waves.vec[qrs[0]] * float(rng.uniform(2.5, 3.5)) + m.qrs_amp * np.array(
        [-0.35, 0.0, -0.45]
    )


def _left_atrial(m: Morph, rng: np.random.Generator) -> None:
    """Broad (>= 120 ms), notched P; deep terminal negative P in V1."""
    pw = _role(m.p, ROLE_P)
    la = pw[-1]
    shift = float(rng.uniform(0.04, 0.055))
    m.p.off0[la] += shift
    m.p.off0[pw[0]] -= 0.005
    m.p.vec[la] = m.p.vec[la] * float(rng.uniform(1.8, 2.3)) + np.array(
        [0.0, 0.0, float(rng.uniform(0.08, 0.12))]
    )


def _right_atrial(m: Morph, rng: np.random.Generator) -> None:
    """Tall, peaked P in II, III, aVF."""
    ra = _role(m.p, ROLE_P)[0]
    m.p.vec[ra] = m.p.vec[ra] * float(rng.uniform(2.6, 3.4)) + np.array([0.0, 0.05, -0.02])
    m.p.s0[ra] *= 0.85
    m.p.s1[ra] *= 0.85


def _fascicular(lo_deg: float, hi_deg: float, initial: tuple[float, float, float]) -> Modifier:
    def apply(m: Morph, rng: np.random.Generator) -> None:
        rotate_qrs_frontal(m.v, float(rng.uniform(lo_deg, hi_deg)))
        q = _role(m.v.waves, ROLE_QRS)[0]
        m.v.waves.vec[q] = m.qrs_amp * np.array(initial)

    return apply


def _widen(m: Morph, extra_s: float) -> None:
    """Stretch the QRS waves in time (slower conduction through the whole ventricle)."""
    k = (m.v.qrs_s + extra_s) / m.v.qrs_s
    qrs = _role(m.v.waves, ROLE_QRS)
    m.v.waves.off0[qrs] *= k
    m.v.waves.s0[qrs] *= k
    m.v.waves.s1[qrs] *= k
    m.v.qrs_s += extra_s


def _ivcd(m: Morph, rng: np.random.Generator) -> None:
    _widen(m, max(0.0, float(rng.uniform(0.112, 0.128)) - m.v.qrs_s))


def _terminal_right_forces(m: Morph, end_s: float, amp: float, sigma: float, delays_t: bool) -> None:
    """Late, slow activation of the right ventricle: R' in V1, wide S in I and V6 (with ``delays_t``,
    repolarisation starts later by as much as the QRS is prolonged, as in complete block)."""
    force = unit([-0.7, 0.1, -0.9])
    extra = max(0.0, end_s - m.v.qrs_s)
    m.v.waves.add(QRS_ON, end_s - 2.2 * sigma, sigma, sigma, amp * m.qrs_amp * force, ROLE_QRS)
    m.v.qrs_s += extra
    if delays_t:
        m.v.qt_extra_s += extra


def _irbbb(m: Morph, rng: np.random.Generator) -> None:
    end = max(m.v.qrs_s + 0.006, float(rng.uniform(0.1, 0.11)))
    _terminal_right_forces(m, end, float(rng.uniform(0.45, 0.7)), 0.011, delays_t=False)


def _crbbb(m: Morph, rng: np.random.Generator) -> None:
    end = float(rng.uniform(0.128, 0.16))
    _terminal_right_forces(m, end, float(rng.uniform(0.6, 0.9)), 0.018, delays_t=True)
    _turn_t_away(m, TERRITORIES["anteroseptal"], 1.0, float(rng.uniform(0.05, 0.1)))


def _no_septal_q(m: Morph) -> None:
    q = _role(m.v.waves, ROLE_QRS)[0]
    m.v.waves.vec[q] = m.qrs_amp * np.array([0.12, 0.02, 0.12])


def _ilbbb(m: Morph, rng: np.random.Generator) -> None:
    _no_septal_q(m)
    _widen(m, max(0.0, float(rng.uniform(0.11, 0.118)) - m.v.qrs_s))


def _clbbb(m: Morph, rng: np.random.Generator) -> None:
    """Septum activated from the left is lost; the left ventricle depolarises slowly from right to
    left (broad notched R in I, aVL, V5, V6; QS in V1); the ST-T is discordant."""
    _no_septal_q(m)
    qrs_s = float(rng.uniform(0.135, 0.17))
    qrs = _role(m.v.waves, ROLE_QRS)
    amp = m.qrs_amp * float(rng.uniform(1.1, 1.5))
    keep = np.ones(len(m.v.waves), dtype=bool)
    keep[qrs[1:]] = False
    m.v.waves = subset(m.v.waves, keep)
    # three leftward-posterior forces with a notch between the last two ("M" in V6, QS in V1)
    forces = (unit([0.6, 0.2, 0.8]), unit([0.85, 0.0, 0.5]), unit([0.9, -0.2, 0.35]))
    for off, sigma, scale, force in zip(
        (0.27, 0.55, 0.8), (0.1, 0.09, 0.08), (0.75, 1.0, 0.85), forces, strict=True
    ):
        m.v.waves.add(QRS_ON, off * qrs_s, sigma * qrs_s, sigma * qrs_s, scale * amp * force, ROLE_QRS)
    m.v.qt_extra_s += qrs_s - m.v.qrs_s
    m.v.qrs_s = qrs_s
    mean = unit(sum(forces, np.zeros(3)))
    tw = _role(m.v.waves, ROLE_T)
    m.v.waves.vec[tw] = -float(rng.uniform(0.22, 0.32)) * amp * mean
    add_st_shift(m.v.waves, -float(rng.uniform(0.1, 0.18)) * mean)


def _wpw(m: Morph, rng: np.random.Generator) -> None:
    """Accessory pathway: ventricular activation starts 35-60 ms before the AV-node's (short PR),
    slowly (the delta wave), from the pathway's insertion; secondary T changes."""
    delta_s = float(rng.uniform(0.04, 0.06))
    pathway = unit(
        [[-0.3, 0.3, -0.9], [0.3, -0.8, -0.5], [0.9, 0.1, 0.4], [0.2, 0.6, -0.8]][int(rng.integers(0, 4))]
    )
    amp = float(rng.uniform(0.7, 1.0)) * m.qrs_amp
    peak = 0.02
    m.v.waves.add(QRS_ON, peak, (delta_s + peak) / 2.4, 0.014, amp * pathway, ROLE_QRS)
    m.v.pre_qrs_s = delta_s
    m.v.qt_extra_s += delta_s
    tw = _role(m.v.waves, ROLE_T)
    m.v.waves.vec[tw] -= 0.3 * amp * pathway


def _fragmented(m: Morph, rng: np.random.Generator) -> None:
    k = _k(m)
    direction = unit(rng.normal(size=3))
    amp = float(rng.uniform(0.25, 0.4)) * m.qrs_amp
    for off, sign in ((0.046, 1.0), (0.062, -1.0)):
        m.v.waves.add(QRS_ON, off * k, 0.0045, 0.0045, sign * amp * direction, ROLE_QRS)


def _q_waves(m: Morph, rng: np.random.Generator) -> None:
    territory = str(rng.choice(["inferior", "lateral", "anteroseptal"]))
    infarct(territory, t_changes=False, q_scale=0.6)(m, rng)


MODIFIERS: dict[str, Modifier] = {
    # axis first: later additions (Q waves, terminal forces) must not be rotated with it
    "LAFB": _fascicular(-75, -48, (-0.05, 0.2, -0.12)),
    "LPFB": _fascicular(108, 140, (0.08, -0.18, -0.12)),
    "RVH": _rvh,
    "IVCD": _ivcd,
    "ILBBB": _ilbbb,
    "CLBBB": _clbbb,
    "IRBBB": _irbbb,
    "CRBBB": _crbbb,
    "WPW": _wpw,
    "VCLVH": _lv_voltage(3.6, 4.6),
    "LVH": _lvh,
    "HVOLT": _high_voltage,
    "SEHYP": _septal_hypertrophy,
    "LAO/LAE": _left_atrial,
    "RAO/RAE": _right_atrial,
    **{code: infarct(territory) for code, territory in MI_TERRITORY.items()},
    # the posterior wall is seen only as a mirror image (tall R in V1): it takes a larger loss
    "PMI": infarct("posterior", q_scale=1.3),
    "QWAVE": _q_waves,
    "ANEUR": _aneurysm,
    **{code: injury(territory) for code, territory in INJURY_TERRITORY.items()},
    "STE_": _brugada,
    "ISC_": ischemia(None),
    **{code: ischemia(territory) for code, territory in ISCHEMIA_TERRITORY.items()},
    "STD_": _st_depression,
    "NST_": _nonspecific_st,
    "NDT": _t_change(25, 70, 0.45, 0.85),
    "NT_": _t_change(30, 80, 0.45, 0.9),
    "TAB_": _t_change(50, 110, 0.5, 1.0),
    "INVT": _inverted_t,
    "LOWT": _low_t,
    "DIG": _digitalis,
    "LNGQT": _long_qt,
    "EL": _electrolyte,
    "ABQRS": _fragmented,
    # last: it scales whatever the other findings built
    "LVOLT": _low_voltage,
}


def apply_modifiers(m: Morph, labels: frozenset[str], rng_for: Callable[[str], np.random.Generator]) -> None:
    """Apply the modifiers of ``labels`` in MODIFIERS' order, each with its own random stream."""
    for code, modifier in MODIFIERS.items():
        if code in labels:
            modifier(m, rng_for(code))
