"""Rhythm: when each P wave and each QRS complex happens, and which beats are ectopic or blocked.

Sinus rhythms come from a sinus node whose rate is modulated by respiration (sinus arrhythmia) with
small beat-to-beat jitter; each P conducts to the ventricles after the PR interval unless the AV
node blocks it (Mobitz I/II, complete block with an independent escape rhythm). Atrial premature
beats reset the sinus node; ventricular premature beats leave it alone, so the sinus beat they
pre-empt is lost and a compensatory pause follows. Fibrillation gives irregular ventricular timing
and no P; flutter gives regular flutter waves conducted 2:1 to 4:1; pacing gives fixed-rate beats.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from rare_ecg.synth.labels import primary_rhythm

V_NORMAL, V_PVC, V_PACED, V_ESCAPE = 0, 1, 2, 3
P_SINUS, P_ECTOPIC, P_RETRO, P_PACED = 0, 1, 2, 3
VISIBLE = (0.0, 10.0)
_GRID_HZ = (
    500  # the synthesis rate  # the record's time span (s); events are generated beyond it so edges are whole
)


@dataclass(eq=False)
class PEvent:
    on: float  # P onset (s)
    kind: int
    tags: set[str] = field(default_factory=set)
    conducted: bool = False
    blocked: bool = False  # a sinus P the AV node did not conduct (second-degree block)


@dataclass(eq=False)
class VBeat:
    on: float  # QRS onset anchor (s)
    kind: int
    p: PEvent | None = None  # the P wave that conducted to this beat
    tags: set[str] = field(default_factory=set)


@dataclass
class AtrialWaves:
    """Continuous atrial activity: fibrillatory f waves or flutter F waves."""

    kind: str  # "fib" | "flutter"
    rate_hz: float
    amp_mv: float
    phase: float
    # fibrillation: slow random modulations of the f-wave rate and amplitude, (frequency Hz,
    # depth, phase) each; real f waves change cycle length and size from one wave to the next
    rate_wobble: tuple[tuple[float, float, float], ...] = ()
    amp_wobble: tuple[tuple[float, float, float], ...] = ()


@dataclass
class Schedule:
    p: list[PEvent]
    v: list[VBeat]
    atrial: AtrialWaves | None = None
    runs: list[tuple[VBeat, VBeat]] = field(default_factory=list)  # PSVT: first and last beat of each run
    pacing_mode: str = ""


@dataclass(frozen=True)
class RhythmParams:
    hr_bpm: float  # rate of the primary rhythm (sinus rate; ventricular rate in AF/flutter/pacing)
    pr_s: float  # P onset to QRS onset anchor for conducted beats
    rsa: float  # relative RR modulation by respiration
    resp_hz: float
    t_lo: float
    t_hi: float


def sinus_times(rng: np.random.Generator, hr_bpm: float, rsa: float, resp_hz: float, t_lo: float, t_hi: float,
                jitter: float = 0.012) -> list[float]:  # fmt: skip
    rr0 = 60.0 / hr_bpm
    phase = float(rng.uniform(0, 2 * np.pi))
    t = t_lo - float(rng.uniform(0.0, rr0))
    out = []
    while t < t_hi:
        out.append(t)
        t += (
            rr0 * (1.0 + rsa * np.sin(2 * np.pi * resp_hz * t + phase)) * (1.0 + jitter * float(rng.normal()))
        )
    return out


def _premature_targets(rng: np.random.Generator, count: int, lo: float = 0.8, hi: float = 9.0) -> list[float]:
    """``count`` times in [lo, hi] at least 2 s apart (evenly spread, then jittered)."""
    if count <= 0:
        return []
    edges = np.linspace(lo, hi, count + 1)
    return [float(rng.uniform(a + 0.2, max(a + 0.3, b - 1.8))) for a, b in itertools.pairwise(edges)]


def atrial_sinus(rng: np.random.Generator, p: RhythmParams, labels: frozenset[str]) -> list[PEvent]:
    """Sinus P waves with atrial premature beats (PAC, premature complexes, SVARR runs) inserted."""
    rr0 = 60.0 / p.hr_bpm
    plan: list[tuple[float, str, int]] = []  # (after time, tag, run length)
    if "PAC" in labels:
        plan += [(t, "PAC", 1) for t in _premature_targets(rng, int(rng.choice([1, 1, 2])))]
    if "SVARR" in labels:
        targets = _premature_targets(rng, int(rng.integers(3, 5)), 0.8, 9.0)
        run_at = int(rng.integers(0, len(targets)))
        plan += [(t, "SVARR", int(rng.integers(3, 6)) if i == run_at else 1) for i, t in enumerate(targets)]
    plan.sort()
    events: list[PEvent] = []
    phase = float(rng.uniform(0, 2 * np.pi))
    t = p.t_lo - float(rng.uniform(0.0, rr0))
    while t < p.t_hi:
        events.append(PEvent(t, P_SINUS))
        rr = (
            rr0
            * (1.0 + p.rsa * np.sin(2 * np.pi * p.resp_hz * t + phase))
            * (1.0 + 0.012 * float(rng.normal()))
        )
        if plan and t >= plan[0][0]:
            _, tag, run = plan.pop(0)
            tp = t + rr * float(rng.uniform(0.58, 0.75))
            for _ in range(run):
                events.append(PEvent(tp, P_ECTOPIC, {tag}))
                tp += rr * float(rng.uniform(0.6, 0.72))
            # the ectopic beat resets the sinus node: next sinus beat one cycle (and a little) later
            t = events[-1].on + rr * float(rng.uniform(1.0, 1.12))
        else:
            t += rr
    return events


def conduct(
    rng: np.random.Generator, events: list[PEvent], p: RhythmParams, labels: frozenset[str]
) -> list[VBeat]:
    """QRS complexes for the P waves the AV node lets through."""
    beats: list[VBeat] = []
    if "2AVB" in labels:
        mobitz_i = rng.uniform() < 0.6
        conducted_per_cycle = int(rng.choice([2, 3, 3, 4])) if mobitz_i else int(rng.choice([1, 2, 2, 3]))
        position = int(rng.integers(0, conducted_per_cycle + 1))
        increment = float(rng.uniform(0.08, 0.14))
    for ev in events:
        pr = p.pr_s
        if ev.kind == P_ECTOPIC:
            pr += float(rng.uniform(0.0, 0.04))
        if "2AVB" in labels and ev.kind == P_SINUS:
            if position == conducted_per_cycle:
                position = 0
                ev.blocked = True
                continue
            if mobitz_i:
                pr += increment * (1.0 - 0.5**position) / 0.5
            position += 1
        ev.conducted = True
        beats.append(VBeat(ev.on + pr, V_NORMAL, ev, set(ev.tags)))
    return beats


def escape(rng: np.random.Generator, p: RhythmParams) -> list[VBeat]:
    """Complete AV block: a regular escape rhythm independent of the atria; junctional (narrow,
    40-55 bpm) or ventricular (wide, 28-40 bpm)."""
    junctional = rng.uniform() < 0.5
    hr = float(rng.uniform(40, 55) if junctional else rng.uniform(28, 40))
    times = sinus_times(rng, hr, 0.0, p.resp_hz, p.t_lo, p.t_hi, jitter=0.01)
    kind = V_NORMAL if junctional else V_ESCAPE
    return [VBeat(t, kind) for t in times]


def fibrillation(rng: np.random.Generator, p: RhythmParams) -> tuple[list[VBeat], AtrialWaves]:
    rr_mean = 60.0 / p.hr_bpm
    cv = float(rng.uniform(0.15, 0.28))
    sigma = np.sqrt(np.log(1 + cv**2))
    t = p.t_lo - float(rng.uniform(0, rr_mean))
    beats = []
    while t < p.t_hi:
        beats.append(VBeat(t, V_NORMAL))
        t += max(0.3, rr_mean * float(rng.lognormal(-0.5 * sigma**2, sigma)))
    return beats, fibrillatory_waves(rng, float(rng.uniform(0.03, 0.1)))


def fibrillatory_waves(rng: np.random.Generator, amp_mv: float) -> AtrialWaves:
    def wobble(depth: float) -> tuple[tuple[float, float, float], ...]:
        return tuple(
            (
                float(rng.uniform(0.3, 2.5)),
                depth * float(rng.uniform(0.5, 1.0)),
                float(rng.uniform(0, 2 * np.pi)),
            )
            for _ in range(3)
        )

    return AtrialWaves(
        "fib", float(rng.uniform(5.0, 8.0)), amp_mv, float(rng.uniform(0, 1)), wobble(0.2), wobble(0.4)
    )


def flutter(rng: np.random.Generator, p: RhythmParams) -> tuple[list[VBeat], AtrialWaves]:
    rate = float(rng.uniform(4.2, 5.5))
    phase = float(rng.uniform(0, 1))
    ratio = rng.choice(["2", "3", "4", "4", "variable"])
    delay = float(rng.uniform(0.2, 0.28))
    first = p.t_lo + (1.0 - phase) / rate  # flutter wave k starts at first + k / rate
    beats = []
    k = int(rng.integers(0, 4))
    while True:
        t = first + k / rate + delay
        if t >= p.t_hi:
            break
        beats.append(VBeat(t, V_NORMAL))
        k += int(rng.choice([2, 3, 4])) if ratio == "variable" else int(ratio)
    return beats, AtrialWaves("flutter", rate, float(rng.uniform(0.18, 0.3)), phase)


def supraventricular_tachycardia(rng: np.random.Generator, t_lo: float, t_hi: float, hr: float,
                                 tag: str) -> tuple[list[VBeat], list[PEvent]]:  # fmt: skip
    """Regular narrow-complex re-entry; a small retrograde P follows each QRS."""
    times = sinus_times(rng, hr, 0.0, 0.25, t_lo, t_hi, jitter=0.004)
    retro_delay = float(rng.uniform(0.07, 0.1))
    beats = [VBeat(t, V_NORMAL, tags={tag}) for t in times]
    retro = [PEvent(t + retro_delay, P_RETRO) for t in times]
    return beats, retro


def paced(rng: np.random.Generator, p: RhythmParams, sched: Schedule) -> tuple[list[VBeat], list[PEvent]]:
    """Dual-chamber (atrial spike, P, AV delay, ventricular spike) or single-chamber ventricular pacing."""
    rr = 60.0 / p.hr_bpm
    t = p.t_lo - float(rng.uniform(0, rr))
    dual = rng.uniform() < 0.5
    sched.pacing_mode = "DDD" if dual else "VVI"
    av_delay = round(float(rng.uniform(0.14, 0.2)) * _GRID_HZ) / _GRID_HZ
    beats, events = [], []
    while t < p.t_hi:
        # a stimulus lasts under a millisecond: it is placed on the sample grid, so every spike is
        # sampled at its peak (off-grid, a 500 Hz recording would catch a random part of it)
        t = round(t * _GRID_HZ) / _GRID_HZ
        if dual:
            events.append(PEvent(t, P_PACED, {"PACE"}, conducted=True))
            beats.append(VBeat(t + av_delay, V_PACED, events[-1], {"PACE"}))
        else:
            beats.append(VBeat(t, V_PACED, tags={"PACE"}))
        t += rr * (1.0 + 0.002 * float(rng.normal()))
    return beats, events


def _drop_after(beats: list[VBeat], events: list[PEvent], t_v: float, until: float) -> None:
    """Remove the normal beats a premature ventricular beat pre-empts; their P waves stay, unconducted."""
    for b in [b for b in beats if b.kind == V_NORMAL and t_v - 0.12 < b.on < until]:
        beats.remove(b)
        if b.p is not None:
            b.p.conducted = False


def ventricular_ectopy(rng: np.random.Generator, beats: list[VBeat], events: list[PEvent],
                       labels: frozenset[str]) -> None:  # fmt: skip
    """Insert PVCs: bigeminy/trigeminy patterns, or 1-3 isolated PVCs (sometimes a couplet)."""
    normals = [b for b in beats if b.kind == V_NORMAL]
    if len(normals) < 3:
        return
    rr = float(np.median(np.diff([b.on for b in normals])))
    coupling = float(rng.uniform(0.5, 0.68))
    pvc_tags = {t for t in ("PVC",) if t in labels}
    if "BIGU" in labels or "TRIGU" in labels:
        period, tag = (2, "BIGU") if "BIGU" in labels else (3, "TRIGU")
        count = 0
        for b in sorted(normals, key=lambda b: b.on):
            if b not in beats or not VISIBLE[0] - rr < b.on < VISIBLE[1]:
                continue
            count += 1
            if count % (period - 1) == 0:
                t_v = b.on + coupling * rr
                _drop_after(beats, events, t_v, t_v + 0.6 * rr)
                beats.append(VBeat(t_v, V_PVC, tags={tag, *pvc_tags}))
        beats.sort(key=lambda b: b.on)
        return
    want: list[tuple[str, int]] = []
    if "PVC" in labels:
        n = int(rng.choice([1, 1, 1, 2, 2, 3]))
        want += [("PVC", 2 if (i == 0 and rng.uniform() < 0.2) else 1) for i in range(n)]
    if "PRC(S)" in labels:
        want.append(("PRC(S)", 1))
    for target, (tag, run) in zip(_premature_targets(rng, len(want)), want, strict=True):
        before = [b for b in beats if b.kind == V_NORMAL and b.on <= target]
        if not before:
            continue
        t_v = before[-1].on + coupling * rr
        for _ in range(run):
            _drop_after(beats, events, t_v, t_v + 0.6 * rr)
            beats.append(VBeat(t_v, V_PVC, tags={tag}))
            t_v += float(rng.uniform(0.45, 0.55)) * rr
    beats.sort(key=lambda b: b.on)


def schedule(rng: np.random.Generator, p: RhythmParams, labels: frozenset[str]) -> Schedule:
    sched = Schedule(p=[], v=[])
    primary = primary_rhythm(labels)
    if primary == "AFIB":
        sched.v, sched.atrial = fibrillation(rng, p)
    elif primary == "AFLT":
        sched.v, sched.atrial = flutter(rng, p)
    elif primary == "SVTAC":
        sched.v, sched.p = supraventricular_tachycardia(rng, p.t_lo, p.t_hi, p.hr_bpm, "SVTAC")
    elif primary == "PACE":
        sched.v, sched.p = paced(rng, p, sched)
        if sched.pacing_mode == "VVI" and rng.uniform() < 0.6:
            # single-chamber pacing is chosen for patients in permanent AF: fine f waves remain
            sched.atrial = fibrillatory_waves(rng, float(rng.uniform(0.02, 0.05)))
    else:
        sched.p = atrial_sinus(rng, p, labels)
        if "3AVB" in labels:
            sched.v = escape(rng, p)
        else:
            sched.v = conduct(rng, sched.p, p, labels)
        if primary == "PSVT":
            _paroxysm(rng, sched, p, labels)
    if primary != "PACE" or rng.uniform() < 0.3:
        ventricular_ectopy(rng, sched.v, sched.p, labels)
    if "PRC(S)" in labels and not any("PRC(S)" in b.tags for b in sched.v) and sched.p:
        # a premature complex of atrial origin when it was not placed as a ventricular one
        for ev in sched.p:
            if ev.kind == P_ECTOPIC:
                ev.tags.add("PRC(S)")
    return sched


def _paroxysm(rng: np.random.Generator, sched: Schedule, p: RhythmParams, labels: frozenset[str]) -> None:
    """Replace part of a sinus rhythm by a run of re-entrant tachycardia starting abruptly."""
    start = float(rng.uniform(2.0, 5.5))
    end = float(rng.uniform(start + 2.5, 11.0)) if rng.uniform() < 0.5 else p.t_hi
    before = [b for b in sched.v if b.on < start]
    first_t = (before[-1].on if before else start) + float(rng.uniform(0.32, 0.4))
    run, retro = supraventricular_tachycardia(
        rng, first_t, min(end, p.t_hi), float(rng.uniform(160, 210)), "PSVT"
    )
    if not run:
        return
    for b in run:
        b.tags = {"PSVT", *({"SVTAC"} & labels)}
    # sinus activity resumes one sinus cycle after the run stops
    resume = run[-1].on + 60.0 / p.hr_bpm
    after = [b for b in sched.v if b.on > resume]
    kept = {id(b.p) for b in before + after if b.p is not None}
    sched.p = sorted(
        [ev for ev in sched.p if ev.on < first_t - 0.1 or id(ev) in kept or ev.on > resume] + retro,
        key=lambda ev: ev.on,
    )
    sched.v = before + run + after
    sched.runs.append((run[0], run[-1]))
