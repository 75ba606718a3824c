"""One synthetic 12-lead ECG: physiology -> templates -> rhythm -> rendered dipole -> leads + noise,
with its ground-truth masks and its true intervals.

Records are synthesised at 500 Hz over the 10 s record plus a margin on each side; the 100 Hz copy is
the 500 Hz signal low-passed (flat to 40 Hz, raised-cosine to zero at 50 Hz) and decimated, as
PTB-XL's 100 Hz files were derived from its 500 Hz ones, so both rates carry the same record. Every random draw comes from a stream keyed by (seed, patient,
purpose, visit[, label]), which makes a record depend on nothing but its own spec: the archive is
byte-identical whatever the worker count, and removing one label from a record (for its mask)
changes nothing else.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np

from rare_ecg.synth import anomalies as an
from rare_ecg.synth.beats import (
    P_ON,
    ROLE_P,
    ROLE_QRS,
    ROLE_SPIKE,
    ROLE_T,
    SPIKE_SIGMA_S,
    Template,
    VentricularTemplate,
    ectopic_p,
    instantiate,
    normal_qrst,
    qt_s,
    sinus_p,
    wide_complex,
)
from rare_ecg.synth.labels import CATALOGUE, MASK_MIN_MV, MASK_REL_FRACTION, primary_rhythm
from rare_ecg.synth.noise import NoiseReport, electrode_noise
from rare_ecg.synth.physiology import Traits, VisitPhysiology, draw_traits, placement_jitter, visit_physiology
from rare_ecg.synth.rhythm import (
    P_ECTOPIC,
    P_PACED,
    P_RETRO,
    P_SINUS,
    V_ESCAPE,
    V_NORMAL,
    V_PACED,
    V_PVC,
    AtrialWaves,
    PEvent,
    RhythmParams,
    Schedule,
    schedule,
)
from rare_ecg.synth.waves import DOWER, N_LEADS, WaveTable, concat, lead_matrix, render, unit

FS_HZ = 500
DURATION_S = 10.0
N_SAMPLES = int(FS_HZ * DURATION_S)
MARGIN_S = 0.2  # synthesised beyond the record on both sides: no decimation edge effects
_MARGIN = int(MARGIN_S * FS_HZ)
_EVENTS_SPAN = (-2.0, 12.0)  # beats are placed over this span so waves at the edges are whole
_EXTRA_QT_S = {V_PVC: 0.05, V_ESCAPE: 0.06, V_PACED: 0.05}
MIN_PR_SEGMENT_S = 0.03

# random-stream purposes
_TRAITS, _VISIT, _LABEL_CHRONIC, _LABEL_VISIT, _NOISE, _RHYTHM, _ECTOPIC, _BEATS = range(8)


@dataclass(frozen=True)
class RecordSpec:
    seed: int
    patient: int
    visit: int
    sex: str  # "male" | "female"
    age: float
    labels: frozenset[str]
    mains_hz: float = 50.0


@dataclass(frozen=True)
class Masks:
    """Ground-truth spans, one row per (label, lead, contiguous span); samples, end exclusive."""

    label: np.ndarray  # (k,) str
    lead: np.ndarray  # (k,) int: index into CANONICAL_LEADS
    start: np.ndarray  # (k,) int
    end: np.ndarray  # (k,) int

    def __len__(self) -> int:
        return int(self.label.size)

    @staticmethod
    def from_rows(rows: list[tuple[str, int, int, int]]) -> Masks:
        if not rows:
            return Masks(np.zeros(0, dtype="<U8"), *(np.zeros(0, dtype=np.int64),) * 3)
        label, lead, start, end = zip(*rows, strict=True)
        return Masks(
            np.array(label, dtype="<U8"),
            np.array(lead, dtype=np.int64),
            np.array(start, dtype=np.int64),
            np.array(end, dtype=np.int64),
        )


@dataclass
class SynthEcg:
    spec: RecordSpec
    padded_mv: np.ndarray  # (12, N_SAMPLES + 2 * margin) at 500 Hz
    clean_mv: np.ndarray  # the same without noise
    masks: Masks  # at 500 Hz
    measurements: dict[
        str, float
    ]  # true hr_bpm, rr_ms, pr_ms (where P waves conduct), qrs_ms, qt_ms, qtc_ms, axes
    noise: NoiseReport
    pacing_mode: str

    def signal_at(self, fs_hz: int, clean: bool = False) -> np.ndarray:
        """(12, 10 * fs_hz) mV at 500 Hz, or decimated to 100 Hz through an anti-aliasing FIR."""
        x = self.clean_mv if clean else self.padded_mv
        if fs_hz == FS_HZ:
            return x[:, _MARGIN:-_MARGIN]
        if fs_hz != 100:
            raise ValueError(f"rate {fs_hz} Hz is not generated; choose 100 or 500")
        y = decimate(x, FS_HZ // fs_hz)
        m = _MARGIN * fs_hz // FS_HZ
        return y[:, m:-m]

    def masks_at(self, fs_hz: int) -> Masks:
        """Masks at ``fs_hz``: a span covers every sample whose 500 Hz period it overlaps."""
        if fs_hz == FS_HZ:
            return self.masks
        f = FS_HZ // fs_hz
        m = self.masks
        start, end = m.start // f, np.minimum(N_SAMPLES // f, -(-m.end // f))
        same = (m.label[1:] == m.label[:-1]) & (m.lead[1:] == m.lead[:-1])
        touching = np.flatnonzero(same & (start[1:] <= end[:-1])) + 1
        if touching.size == 0:
            return Masks(m.label, m.lead, start, end)
        keep = np.ones(len(m), dtype=bool)
        for i in touching[::-1]:  # fold each touching span into its predecessor
            end[i - 1] = max(end[i - 1], end[i])
            keep[i] = False
        return Masks(m.label[keep], m.lead[keep], start[keep], end[keep])


@cache
def _lowpass(n: int, factor: int) -> np.ndarray:
    """Zero-phase response on the rfft bins of ``n`` samples kept after decimating by ``factor``:
    flat to 80% of the new Nyquist frequency, raised cosine to zero at it."""
    m = n // factor
    f = np.arange(m // 2 + 1) / (m // 2)  # fraction of the new Nyquist frequency
    h = np.where(f <= 0.8, 1.0, 0.5 * (1.0 + np.cos(np.pi * (f - 0.8) / 0.2)))
    return h / factor


def decimate(x: np.ndarray, factor: int) -> np.ndarray:
    """Anti-aliased decimation of (..., n) by ``factor`` (n a multiple of it), by FFT. The line joining
    the first and last samples is taken out first, so the FFT's periodic wrap adds no step."""
    n = x.shape[-1]
    m = n // factor
    line = x[..., :1] + (x[..., -1:] - x[..., :1]) * np.linspace(0.0, 1.0, n)
    spectrum = np.fft.rfft(x - line, axis=-1)[..., : m // 2 + 1] * _lowpass(n, factor)
    return np.fft.irfft(spectrum, n=m, axis=-1) + line[..., ::factor]


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


def _code_key(code: str) -> int:
    return zlib.crc32(code.encode())


def normal_templates(phys: VisitPhysiology) -> tuple[Template, VentricularTemplate]:
    """The patient's normal P and QRS-T at this visit, before any label changes them."""
    p = sinus_p(phys.p_dur_s, phys.p_amp, np.eye(3))
    v = VentricularTemplate(
        normal_qrst(phys.qrs_s, phys.qrs_amp, phys.t_amp, phys.qrs_rot, phys.t_rot),
        phys.qrs_s,
        qtc_s=phys.qtc_s,
    )
    an.rotate_qrs_frontal(v, phys.axis_deg, t_share=0.8)
    return p, v


def build_morph(
    phys: VisitPhysiology,
    labels: frozenset[str],
    spec: RecordSpec,
    normal: tuple[Template, VentricularTemplate] | None = None,
) -> an.Morph:
    """The record's P and QRS-T templates with the labels' modifications (``normal``: the
    normal_templates already built for this visit, copied rather than rebuilt)."""
    p, v = normal if normal is not None else normal_templates(phys)
    morph = an.Morph(p.copy(), v.copy(), phys.qrs_amp, phys.t_amp)

    def rng_for(code: str) -> np.random.Generator:
        if CATALOGUE[code].chronic:
            return _rng(spec.seed, spec.patient, _LABEL_CHRONIC, _code_key(code))
        return _rng(spec.seed, spec.patient, _LABEL_VISIT, spec.visit, _code_key(code))

    an.apply_modifiers(morph, labels, rng_for)
    return morph


@dataclass
class _Beats:
    """Per-beat timing of the schedule's ventricular beats."""

    on: np.ndarray
    kind: np.ndarray
    qt: np.ndarray
    stretch: np.ndarray
    amp: np.ndarray


def _beat_timing(
    sched: Schedule, v: VentricularTemplate, phys: VisitPhysiology, rng: np.random.Generator
) -> _Beats:
    on = np.array([b.on for b in sched.v])
    kind = np.array([b.kind for b in sched.v], dtype=np.int64)
    if on.size == 0:
        z = np.zeros(0)
        return _Beats(z, kind, z, z, z)
    rr = np.diff(on, prepend=on[0] - (np.median(np.diff(on)) if on.size > 1 else 60.0 / phys.hr_bpm))
    qtc = v.qtc_s * v.qt_scale
    qt = qt_s(qtc, rr) + v.qt_extra_s
    rr_typical = float(np.median(rr))
    for k, extra in _EXTRA_QT_S.items():
        qt[kind == k] = float(qt_s(phys.qtc_s, rr_typical)) + extra
    stretch = np.cbrt(np.clip(rr, 0.25, 2.5))
    phase = float(rng.uniform(0, 2 * np.pi))
    amp = 1.0 + 0.04 * np.sin(2 * np.pi * phys.resp_hz * on + phase) + rng.normal(0.0, 0.01, on.size)
    return _Beats(on, kind, qt, stretch, amp)


def _ventricular_tables(
    beats: _Beats, kinds: dict[int, tuple[Template, float]], pr_s: float, only: int | None = None
) -> list[WaveTable]:
    tables = []
    for kind, (template, qrs_s) in kinds.items():
        if only is not None and kind != only:
            continue
        sel = beats.kind == kind
        if not sel.any():
            continue
        on = beats.on[sel]
        anchors = np.stack([on - pr_s, on, on + qrs_s, on + beats.qt[sel]], axis=1)
        tables.append(instantiate(template, anchors, beats.amp[sel], beats.stretch[sel]))
    return tables


def _atrial_tables(
    events: list[PEvent], templates: dict[int, Template], only: int | None = None
) -> list[WaveTable]:
    tables = []
    for kind, template in templates.items():
        if only is not None and kind != only:
            continue
        on = np.array([ev.on for ev in events if ev.kind == kind])
        if on.size:
            anchors = np.repeat(on[:, None], 4, axis=1)
            tables.append(instantiate(template, anchors, np.ones(on.size), np.ones(on.size)))
    return tables


def _atrial_activity(atrial: AtrialWaves, t: np.ndarray, leads: np.ndarray) -> np.ndarray:
    if atrial.kind == "fib":
        # irregular f waves: the instantaneous rate and the size wander slowly and randomly
        rate = atrial.rate_hz * (
            1.0 + sum(d * np.sin(2 * np.pi * f * t + p) for f, d, p in atrial.rate_wobble)
        )
        cycles = np.cumsum(rate) * (t[1] - t[0]) + atrial.phase
        size = 1.0 + sum(d * np.sin(2 * np.pi * f * t + p) for f, d, p in atrial.amp_wobble)
        x = (
            atrial.amp_mv
            * np.clip(size, 0.2, None)
            * (np.sin(2 * np.pi * cycles) + 0.3 * np.sin(4 * np.pi * cycles))
        )
        direction = unit([-0.3, 0.4, -0.85])
    else:
        cycle = atrial.rate_hz * t + atrial.phase
        # sawtooth from its first harmonics: slow descent, fast return in the inferior leads
        x = sum((-1.0) ** (k + 1) * np.sin(2 * np.pi * k * cycle) / k for k in range(1, 9)) * (2.0 / np.pi)
        x = atrial.amp_mv * np.asarray(x)
        direction = unit([0.1, -0.85, -0.5])
    return np.asarray(leads @ np.outer(direction, x))


def _p_extent_s(template: Template) -> float:
    return float(np.max(template.off0 + 2.5 * template.s1)) if len(template) else 0.1


def _t_onset_offset(template: Template) -> float:
    """T onset relative to the T end (negative), at stretch 1."""
    tw = template.role == ROLE_T
    if not tw.any():
        return -0.2
    return float(np.min(template.off0[tw] - 2.5 * template.s0[tw]))


def _spans(
    kind: str,
    sched: Schedule,
    beats: _Beats,
    v: VentricularTemplate,
    p_template: Template,
    pr_s: float,
    label: str,
) -> list[tuple[float, float]]:
    """Time spans (s) of one mask kind for ``label``."""
    out: list[tuple[float, float]] = []
    normal = beats.kind == V_NORMAL
    on, qt, stretch = beats.on, beats.qt, beats.stretch
    if kind == "record":
        return [(0.0, DURATION_S)]
    if kind == "pr":
        return [(b.p.on, b.on - v.pre_qrs_s) for b in sched.v if b.kind == V_NORMAL and b.p is not None]
    if kind == "blocked_p":
        return [(ev.on, ev.on + pr_s + v.qrs_s) for ev in sched.p if ev.blocked]
    if kind == "beat":
        for i, b in enumerate(sched.v):
            start = None
            if label in b.tags:
                start = b.on - (2 * SPIKE_SIGMA_S if b.kind == V_PACED else 0.0)
                if b.p is not None and label in b.p.tags:
                    start = b.p.on
            elif b.p is not None and label in b.p.tags:
                start = b.p.on
            if start is not None:
                out.append((start, b.on + qt[i]))
        for ev in sched.p:
            if label in ev.tags and not ev.conducted:
                out.append((ev.on, ev.on + _p_extent_s(p_template)))
        return out
    if kind == "run":
        index = {id(b): i for i, b in enumerate(sched.v)}
        return [(first.on, last.on + qt[index[id(last)]]) for first, last in sched.runs]
    if kind == "p":
        extent = _p_extent_s(p_template)
        return [(ev.on, ev.on + extent) for ev in sched.p if ev.kind == P_SINUS]
    t_on = _t_onset_offset(v.waves)
    for k in np.flatnonzero(normal):
        start = on[k] - v.pre_qrs_s
        if kind == "qrs":
            out.append((start, on[k] + v.qrs_s))
        elif kind == "qrs_early":
            out.append((start, on[k] + min(v.qrs_s, 0.5 * v.qrs_s + 0.012)))
        elif kind == "delta":
            out.append((start, on[k] + 0.02))
        elif kind == "st_t":
            out.append((on[k] + v.qrs_s, on[k] + qt[k]))
        elif kind == "t":
            out.append((max(on[k] + v.qrs_s, on[k] + qt[k] + t_on * stretch[k]), on[k] + qt[k]))
    return out


def _to_samples(spans: list[tuple[float, float]]) -> list[tuple[int, int]]:
    """Clip to the record, convert to 500 Hz samples, merge overlaps."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        s, e = max(0, int(np.floor(a * FS_HZ))), min(N_SAMPLES, int(np.ceil(b * FS_HZ)))
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def synthesize(spec: RecordSpec) -> SynthEcg:
    traits = draw_traits(_rng(spec.seed, spec.patient, _TRAITS))
    visit_rng = _rng(spec.seed, spec.patient, _VISIT, spec.visit)
    primary = primary_rhythm(spec.labels)
    phys = visit_physiology(traits, spec.age, spec.sex, primary, spec.labels, visit_rng)
    leads = lead_matrix(placement_jitter(visit_rng, DOWER))
    normal = normal_templates(phys)
    morph = build_morph(phys, spec.labels, spec, normal)
    v = morph.v
    pr_s = phys.pr_s + morph.pr_extra_s + v.pre_qrs_s
    if v.pre_qrs_s == 0.0:
        # conduction leaves a PR segment: a widened P wave (atrial enlargement) lengthens the PR
        pr_s = max(pr_s, _p_extent_s(morph.p) + MIN_PR_SEGMENT_S)
    params = RhythmParams(phys.hr_bpm, pr_s, phys.rsa, phys.resp_hz, *_EVENTS_SPAN)
    sched = schedule(_rng(spec.seed, spec.patient, _RHYTHM, spec.visit), params, spec.labels)
    beats = _beat_timing(sched, v, phys, _rng(spec.seed, spec.patient, _BEATS, spec.visit))

    v_kinds = _ventricular_kinds(traits, phys, v, spec, set(beats.kind.tolist()))
    p_kinds = _atrial_kinds(traits, phys, morph.p, {ev.kind for ev in sched.p})
    n = N_SAMPLES + 2 * _MARGIN
    t_start = -MARGIN_S
    tables = _ventricular_tables(beats, v_kinds, pr_s) + _atrial_tables(sched.p, p_kinds)
    clean = render(concat(tables), FS_HZ, n, t_start, leads)
    if sched.atrial is not None:
        clean += _atrial_activity(sched.atrial, t_start + np.arange(n) / FS_HZ, leads)
    noise, report = electrode_noise(
        _rng(spec.seed, spec.patient, _NOISE, spec.visit), n, FS_HZ, spec.mains_hz, phys.resp_hz
    )
    masks = _masks(spec, phys, sched, beats, morph, normal, pr_s, leads)
    return SynthEcg(
        spec=spec,
        padded_mv=clean + noise,
        clean_mv=clean,
        masks=masks,
        measurements=_measurements(sched, beats, morph, pr_s, v_kinds, leads),
        noise=report,
        pacing_mode=sched.pacing_mode,
    )


def _ventricular_kinds(
    traits: Traits, phys: VisitPhysiology, v: VentricularTemplate, spec: RecordSpec, present: set[int]
) -> dict[int, tuple[Template, float]]:
    """Templates of the beat kinds the record has; ectopic ones are the patient's own (fixed foci)."""
    kinds: dict[int, tuple[Template, float]] = {V_NORMAL: (v.waves, v.qrs_s)}
    amp = 1.5 * phys.qrs_amp
    if V_PVC in present:
        rng = _rng(spec.seed, spec.patient, _ECTOPIC, V_PVC)
        kinds[V_PVC] = (wide_complex(traits.pvc_focus, amp, traits.pvc_qrs_s, rng), traits.pvc_qrs_s)
    if V_ESCAPE in present:
        rng = _rng(spec.seed, spec.patient, _ECTOPIC, V_ESCAPE)
        kinds[V_ESCAPE] = (wide_complex(traits.escape_focus, amp, 0.15, rng), 0.15)
    if V_PACED in present:
        rng = _rng(spec.seed, spec.patient, _ECTOPIC, V_PACED)
        lead_tip = unit([0.45, -0.75, 0.5])  # right-ventricular apex: superior axis, LBBB-like
        kinds[V_PACED] = (
            wide_complex(lead_tip, 1.4 * phys.qrs_amp, 0.16, rng, spike=traits.pacing_spike),
            0.16,
        )
    return kinds


def _atrial_kinds(
    traits: Traits, phys: VisitPhysiology, p: Template, present: set[int]
) -> dict[int, Template]:
    kinds = {P_SINUS: p}
    if P_ECTOPIC in present:
        kinds[P_ECTOPIC] = ectopic_p(phys.p_dur_s, phys.p_amp, traits.ectopic_p)
    if P_RETRO in present:
        kinds[P_RETRO] = ectopic_p(0.08, 0.7 * phys.p_amp, unit([0.0, -1.0, 0.35]))
    if P_PACED in present:
        sinus_like = sinus_p(phys.p_dur_s * 1.1, phys.p_amp * 0.8, np.eye(3))
        rows = [(P_ON, 0.0, SPIKE_SIGMA_S, SPIKE_SIGMA_S, 0.6 * traits.pacing_spike, ROLE_SPIKE)]
        rows += [
            (P_ON, float(sinus_like.off0[i]) + 0.01, float(sinus_like.s0[i]), float(sinus_like.s1[i]),
             sinus_like.vec[i], ROLE_P)
            for i in range(len(sinus_like))
        ]  # fmt: skip
        kinds[P_PACED] = Template.gaussians(rows)
    return kinds


def _masks(
    spec: RecordSpec,
    phys: VisitPhysiology,
    sched: Schedule,
    beats: _Beats,
    morph: an.Morph,
    normal: tuple[Template, VentricularTemplate],
    pr_s: float,
    leads: np.ndarray,
) -> Masks:
    rows: list[tuple[str, int, int, int]] = []
    rr = 60.0 / phys.hr_bpm
    labelled: np.ndarray | None = None  # one beat with all the record's labels, rendered once
    for code in sorted(spec.labels):
        rule = CATALOGUE[code]
        if not rule.spans:
            continue
        spans = _to_samples(
            [s for kind in rule.spans for s in _spans(kind, sched, beats, morph.v, morph.p, pr_s, code)]
        )
        if not spans:
            continue
        if rule.leads == "all":
            lead_ids = list(range(N_LEADS))
        else:
            without = build_morph(phys, spec.labels - {code}, spec, normal)
            if labelled is None:
                labelled = _one_beat(morph, pr_s, rr, leads)
            diff = np.abs(labelled - _one_beat(without, pr_s, rr, leads))
            peak = _lead_peaks(diff, rule.spans, morph, pr_s, rr)
            threshold = max(MASK_MIN_MV, MASK_REL_FRACTION * float(peak.max()))
            lead_ids = [int(i) for i in np.flatnonzero(peak >= threshold)]
        rows.extend((code, lead, s, e) for lead in lead_ids for s, e in spans)
    return Masks.from_rows(rows)


_BEAT_AT_S = 0.5  # QRS onset of the representative beat inside its 1.4 s window


def _one_beat(m: an.Morph, pr_s: float, rr_s: float, leads: np.ndarray) -> np.ndarray:
    """(12, 1.4 s) clean render of one P-QRS-T of morphology ``m``, QRS onset at _BEAT_AT_S."""
    qt = float(qt_s(m.v.qtc_s * m.v.qt_scale, rr_s)) + m.v.qt_extra_s
    beat = _Beats(
        np.array([_BEAT_AT_S]), np.array([V_NORMAL]), np.array([qt]), np.array([np.cbrt(rr_s)]), np.ones(1)
    )
    tables = _ventricular_tables(beat, {V_NORMAL: (m.v.waves, m.v.qrs_s)}, pr_s)
    tables += _atrial_tables([PEvent(_BEAT_AT_S - pr_s, P_SINUS)], {P_SINUS: m.p})
    return render(concat(tables), FS_HZ, int(1.4 * FS_HZ), 0.0, leads)


def _lead_peaks(
    diff: np.ndarray, kinds: tuple[str, ...], a: an.Morph, pr_s: float, rr_s: float
) -> np.ndarray:
    """(12,) largest ``diff`` (|one beat with the label - one beat without it|, same timing) inside
    the label's span kinds: which leads the label visibly changes. Every beat of a record differs
    the same way up to a few percent of respiratory amplitude modulation."""
    fs, n = FS_HZ, diff.shape[1]
    v = a.v
    qt = float(qt_s(v.qtc_s * v.qt_scale, rr_s)) + v.qt_extra_s
    start = _BEAT_AT_S - v.pre_qrs_s
    t_on = max(_BEAT_AT_S + v.qrs_s, _BEAT_AT_S + qt + _t_onset_offset(v.waves) * np.cbrt(rr_s))
    windows = {
        "p": (_BEAT_AT_S - pr_s, _BEAT_AT_S - pr_s + _p_extent_s(a.p)),
        "qrs": (start, _BEAT_AT_S + v.qrs_s),
        "qrs_early": (start, _BEAT_AT_S + min(v.qrs_s, 0.5 * v.qrs_s + 0.012)),
        "delta": (start, _BEAT_AT_S + 0.02),
        "st_t": (_BEAT_AT_S + v.qrs_s, _BEAT_AT_S + qt),
        "t": (t_on, _BEAT_AT_S + qt),
    }
    peak = np.zeros(N_LEADS)
    for kind in kinds:
        lo, hi = windows[kind]
        seg = np.abs(diff[:, max(0, int(lo * fs)) : min(n, int(np.ceil(hi * fs)))])
        if seg.size:
            peak = np.maximum(peak, seg.max(axis=1))
    return peak


def _axis(template: Template, leads: np.ndarray, roles: tuple[int, ...]) -> float:
    """Frontal axis (degrees) from the net areas of ``roles`` waves in I and aVF."""
    sel = np.isin(template.role, roles)
    area = (template.vec[sel] * (template.s0[sel] + template.s1[sel])[:, None]).sum(axis=0)
    lead_i, lead_avf = leads[0] @ area, leads[5] @ area
    return float(np.degrees(np.arctan2(lead_avf, lead_i)))


def _measurements(
    sched: Schedule,
    beats: _Beats,
    morph: an.Morph,
    pr_s: float,
    v_kinds: dict[int, tuple[Template, float]],
    leads: np.ndarray,
) -> dict[str, float]:
    visible = (beats.on >= 0.0) & (beats.on < DURATION_S)
    out: dict[str, float] = {}
    if visible.sum() >= 2:
        rr = float(np.mean(np.diff(beats.on[visible])))
        out["rr_ms"] = 1000.0 * rr
        out["hr_bpm"] = 60.0 / rr
    v = morph.v
    normal = visible & (beats.kind == V_NORMAL)
    dominant = (
        V_NORMAL
        if normal.any()
        else int(np.bincount(beats.kind[visible]).argmax())
        if visible.any()
        else V_NORMAL
    )
    template, qrs_s = v_kinds[dominant]
    sel = visible & (beats.kind == dominant)
    pre = v.pre_qrs_s if dominant == V_NORMAL else 0.0
    out["qrs_ms"] = 1000.0 * (qrs_s + pre)
    if sel.any():
        out["qt_ms"] = 1000.0 * float(np.median(beats.qt[sel]) + pre)
        if "rr_ms" in out:
            out["qtc_ms"] = out["qt_ms"] / np.sqrt(out["rr_ms"] / 1000.0)
    prs = [
        b.on - pre - b.p.on
        for b in sched.v
        if b.kind == V_NORMAL and b.p is not None and 0 <= b.on < DURATION_S
    ]
    if prs and dominant == V_NORMAL:
        out["pr_ms"] = 1000.0 * float(np.median(prs))
        out["p_ms"] = 1000.0 * _p_extent_s(morph.p)
        out["p_axis"] = _axis(morph.p, leads, (0,))
    out["qrs_axis"] = _axis(template, leads, (ROLE_QRS,))
    out["t_axis"] = _axis(template, leads, (ROLE_T,))
    return out
