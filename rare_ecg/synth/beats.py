"""Beat templates: the waves of one P wave or one QRS-T complex, placed relative to its fiducial points.

A template wave is anchored to a fiducial of its beat (P onset, QRS onset, J point or T end) with an
offset in seconds; instantiating a template for many beats puts every wave on the record's time axis.
T-wave family waves (anchored to the T end) stretch with the beat's QT, so T waves narrow as the
heart rate rises. The normal QRS is four waves (septal q, two main left-ventricular forces, terminal
basal forces); the normal P wave is a right-atrial then a left-atrial component, which gives its
biphasic shape in V1.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from rare_ecg.synth.waves import GAUSS, PLATEAU, WaveTable, rotation

P_ON, QRS_ON, J_POINT, T_END = 0, 1, 2, 3
ROLE_P, ROLE_QRS, ROLE_ST, ROLE_T, ROLE_SPIKE = 0, 1, 2, 3, 4

REFERENCE_QRS_S = 0.095  # the QRS duration the normal template's offsets are written for
SPIKE_SIGMA_S = 0.0006  # pacing stimulus: one sample wide at 500 Hz


@dataclass
class Template:
    """Waves relative to a beat's fiducials (struct of arrays; seconds, mV)."""

    anchor0: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    off0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    anchor1: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    off1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    s0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    s1: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shape: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    role: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    vec: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    local: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))

    def add(
        self,
        anchor: int,
        off: float,
        s0: float,
        s1: float,
        vec: np.ndarray | tuple[float, float, float],
        role: int,
        *,
        shape: int = GAUSS,
        end_anchor: int | None = None,
        end_off: float = 0.0,
        local: np.ndarray | None = None,
    ) -> None:
        """Append one wave: a Gaussian peaking at anchor+off, or a plateau from anchor+off to
        end_anchor+end_off."""
        self.anchor0 = np.append(self.anchor0, anchor)
        self.off0 = np.append(self.off0, off)
        self.anchor1 = np.append(self.anchor1, anchor if end_anchor is None else end_anchor)
        self.off1 = np.append(self.off1, end_off)
        self.s0 = np.append(self.s0, s0)
        self.s1 = np.append(self.s1, s1)
        self.shape = np.append(self.shape, shape)
        self.role = np.append(self.role, role)
        self.vec = np.vstack([self.vec, np.asarray(vec, dtype=np.float64)[None, :]])
        loc = np.zeros(6) if local is None else np.asarray(local, dtype=np.float64)
        self.local = np.vstack([self.local, loc[None, :]])

    def copy(self) -> Template:
        return Template(**{k: v.copy() for k, v in self.__dict__.items()})

    @classmethod
    def gaussians(cls, rows: list[tuple[int, float, float, float, np.ndarray, int]]) -> Template:
        """Build from (anchor, offset, sigma before, sigma after, vector, role) rows in one go."""
        n = len(rows)
        anchors = np.array([r[0] for r in rows], dtype=np.int64)
        return cls(
            anchor0=anchors,
            off0=np.array([r[1] for r in rows], dtype=np.float64),
            anchor1=anchors.copy(),
            off1=np.zeros(n),
            s0=np.array([r[2] for r in rows], dtype=np.float64),
            s1=np.array([r[3] for r in rows], dtype=np.float64),
            shape=np.full(n, GAUSS, dtype=np.int64),
            role=np.array([r[5] for r in rows], dtype=np.int64),
            vec=np.array([np.asarray(r[4], dtype=np.float64) for r in rows]).reshape(n, 3),
            local=np.zeros((n, 6)),
        )

    def __len__(self) -> int:
        return len(self.off0)


@dataclass
class VentricularTemplate:
    """A QRS-T complex: its waves plus the timing the schedule and the masks need."""

    waves: Template
    qrs_s: float  # QRS onset anchor to J point
    qtc_s: float  # rate-corrected QT (Fridericia) of this patient's normal beats
    pre_qrs_s: float = 0.0  # activation before the QRS onset anchor (the WPW delta wave)
    qt_extra_s: float = 0.0  # QT lengthening beyond the rate-corrected QT (wide QRS, drugs)
    qt_scale: float = 1.0  # multiplies the rate-dependent QT (long QT syndromes)

    def copy(self) -> VentricularTemplate:
        return replace(self, waves=self.waves.copy())


def qt_s(qtc_s: float, rr_s: np.ndarray | float) -> np.ndarray:
    """QT for the preceding RR by Fridericia's rate correction: QT = QTc * RR^(1/3)."""
    return qtc_s * np.cbrt(np.clip(np.asarray(rr_s, dtype=np.float64), 0.25, 2.5))


def sinus_p(p_dur_s: float, amp: float, rot: np.ndarray) -> Template:
    """Right-atrial then left-atrial depolarisation: upright in II, biphasic in V1."""
    sigma = 0.17 * p_dur_s
    return Template.gaussians(
        [
            (P_ON, 0.38 * p_dur_s, sigma, sigma, amp * rot @ np.array([0.02, 0.075, -0.035]), ROLE_P),
            (P_ON, 0.62 * p_dur_s, sigma, sigma, amp * rot @ np.array([0.06, 0.05, 0.025]), ROLE_P),
        ]
    )


def ectopic_p(p_dur_s: float, amp: float, direction: np.ndarray) -> Template:
    """A P wave from an ectopic atrial focus (or a retrograde one): one component along ``direction``."""
    sigma = 0.2 * p_dur_s
    return Template.gaussians([(P_ON, 0.5 * p_dur_s, sigma, sigma, 0.1 * amp * direction, ROLE_P)])


# The normal QRS-T in Frank coordinates (mV). The septal vector is set from physiology; the other
# vectors were fitted (least squares, development time) so that one beat's R, S and T amplitudes in
# the 12 leads match the medians the intervals detector measures on the 250 PTB-XL sample records,
# then the early forces were turned a little anterior so the cohort's V2 R wave matches too.
_NORMAL_QRS = (  # (offset s, sigma s, Frank vector mV) at REFERENCE_QRS_S
    (0.016, 0.0055, (-0.07, 0.02, -0.16)),  # septal forces, left to right and anterior: q in V6, r in V1
    (0.038, 0.0105, (1.006, 0.501, -0.2)),  # apical and left free wall (anterior part: R in V2)
    (0.055, 0.0105, (0.11, 0.039, 0.832)),  # posterolateral free wall: S in V1-V3
    (0.077, 0.0075, (-0.154, -0.019, 0.28)),  # basal, posterior terminal forces
)
_NORMAL_T = (0.312, 0.136, -0.21)  # least squares on the median T amplitudes of the sample's NORM records
T_SIGMA_BEFORE_S, T_SIGMA_AFTER_S = 0.062, 0.04


def normal_qrst(qrs_s: float, qrs_amp: float, t_amp: float, rot: np.ndarray, t_rot: np.ndarray) -> Template:
    """Septal q, early and late left-ventricular forces, terminal forces, then the T wave."""
    k = qrs_s / REFERENCE_QRS_S
    rows: list[tuple[int, float, float, float, np.ndarray, int]] = [
        (QRS_ON, off * k, sigma * k, sigma * k, qrs_amp * rot @ np.array(vec), ROLE_QRS)
        for off, sigma, vec in _NORMAL_QRS
    ]
    t_vec = t_amp * t_rot @ rot @ np.array(_NORMAL_T)
    rows.append((T_END, -2.6 * T_SIGMA_AFTER_S, T_SIGMA_BEFORE_S, T_SIGMA_AFTER_S, t_vec, ROLE_T))
    return Template.gaussians(rows)


def add_st_shift(t: Template, vec: np.ndarray, local: np.ndarray | None = None) -> None:
    """An ST-segment shift: a plateau from just after the J point into the T wave's downslope."""
    t.add(
        J_POINT, 0.012, 0.006, 0.03, vec, ROLE_ST, shape=PLATEAU, end_anchor=T_END, end_off=-0.11, local=local
    )


def wide_complex(
    direction: np.ndarray, amp: float, qrs_s: float, rng: np.random.Generator, spike: np.ndarray | None = None
) -> Template:
    """A QRS-T from a ventricular origin (ectopic focus, escape focus, pacing lead): activation
    spreading slowly through the muscle from ``direction``, turning by 30-70 degrees (three forces
    over the wide QRS, with a notch between them), and a T wave opposite to them."""
    turn = rotation("z", float(rng.uniform(-70, 70))) @ rotation("y", float(rng.uniform(-40, 40)))
    second = turn @ direction
    third = turn @ second
    mean = direction + 0.8 * second + 0.3 * third
    rows: list[tuple[int, float, float, float, np.ndarray, int]] = []
    if spike is not None:
        rows.append((QRS_ON, 0.0, SPIKE_SIGMA_S, SPIKE_SIGMA_S, spike, ROLE_SPIKE))
    rows += [
        (QRS_ON, 0.25 * qrs_s, 0.1 * qrs_s, 0.09 * qrs_s, 0.8 * amp * direction, ROLE_QRS),
        (QRS_ON, 0.52 * qrs_s, 0.09 * qrs_s, 0.09 * qrs_s, amp * second, ROLE_QRS),
        (QRS_ON, 0.8 * qrs_s, 0.08 * qrs_s, 0.07 * qrs_s, 0.45 * amp * third, ROLE_QRS),
        (T_END, -2.6 * 0.045, 0.08, 0.045, -0.35 * amp * mean / np.linalg.norm(mean), ROLE_T),
    ]
    return Template.gaussians(rows)


def instantiate(
    template: Template,
    anchors: np.ndarray,
    amp: np.ndarray,
    t_stretch: np.ndarray,
) -> WaveTable:
    """Put ``template`` at every beat.

    anchors: (n_beats, 4) absolute times of P onset, QRS onset, J point, T end (s);
    amp: (n_beats,) amplitude factor per beat (respiration, beat-to-beat variability);
    t_stretch: (n_beats,) factor on T-end-anchored offsets and widths (the beat's QT over the
    template's reference QT).
    """
    n_b, n_w = anchors.shape[0], len(template)
    if n_b == 0 or n_w == 0:
        return WaveTable(*(np.zeros(0),) * 4, np.zeros(0, dtype=np.int64), np.zeros((0, 3)), np.zeros((0, 6)))
    stretch0 = np.where(template.anchor0[None, :] == T_END, t_stretch[:, None], 1.0)
    stretch1 = np.where(template.anchor1[None, :] == T_END, t_stretch[:, None], 1.0)
    t_family = (template.role == ROLE_T)[None, :]
    t0 = anchors[:, template.anchor0] + template.off0[None, :] * stretch0
    t1 = anchors[:, template.anchor1] + template.off1[None, :] * stretch1
    s0 = template.s0[None, :] * np.where(t_family, stretch0, 1.0)
    s1 = template.s1[None, :] * np.where(t_family, stretch0, 1.0)
    vec = template.vec[None, :, :] * amp[:, None, None]
    local = template.local[None, :, :] * amp[:, None, None]
    return WaveTable(
        t0=t0.ravel(),
        t1=t1.ravel(),
        s0=np.broadcast_to(s0, (n_b, n_w)).ravel(),
        s1=np.broadcast_to(s1, (n_b, n_w)).ravel(),
        shape=np.broadcast_to(template.shape[None, :], (n_b, n_w)).ravel(),
        vec=vec.reshape(-1, 3),
        local=local.reshape(-1, 6),
    )
