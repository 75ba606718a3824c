"""Synthetic against real: the same intervals detector run on 250 synthetic records and on the 250
real PTB-XL sample records gives close heart-rate, PR, QRS and QT distributions and per-lead
amplitudes; the generator's label frequencies are PTB-XL's. Run with -s to see the tables."""

from __future__ import annotations

import ast
import csv
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import wfdb

from rare_ecg.signals.intervals import delineate, lead_measurements
from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.synth.calibration import label_prevalence, load_calibration
from rare_ecg.synth.cohort import LabelSampler, age_cdfs, plan_patient
from rare_ecg.synth.ecg import RecordSpec, synthesize
from rare_ecg.synth.labels import (
    CATALOGUE,
    EXCLUSIONS,
    HIDDEN_BY_PACING,
    NEEDS_SINUS_P,
    PRIMARY_RHYTHMS,
    resolve,
)

FS = 500
N_SYNTHETIC = 250
INTERVALS = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "qtc_ms")


@dataclass(frozen=True)
class Measured:
    norm: bool  # the record states NORM
    intervals: dict[str, float]
    leads: dict[str, np.ndarray]  # "r", "s", "t" (median beat) and "range" (whole record), mV per lead


def _measure(x: np.ndarray, norm: bool) -> Measured:
    d = delineate(x, FS)
    m = lead_measurements(d)
    intervals = {key: float(getattr(d, key)) for key in INTERVALS}
    return Measured(norm, intervals, {"r": m.r_mv, "s": m.s_mv, "t": m.t_mv, "range": np.ptp(x, axis=1)})


@pytest.fixture(scope="module")
def real(shared_data: Path) -> list[Measured]:
    root = shared_data / "ptbxl-sample"
    with open(root / "ptbxl_database.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        _measure(
            wfdb.rdrecord(str(root / row["filename_hr"])).p_signal.T,
            "NORM" in ast.literal_eval(row["scp_codes"]),
        )
        for row in rows
    ]


@pytest.fixture(scope="module")
def synthetic() -> list[Measured]:
    cal = load_calibration()
    sampler, cdfs = LabelSampler(), age_cdfs(cal)
    out = []
    for i in range(N_SYNTHETIC):
        patient = plan_patient(17, i, 1, i + 1, sampler, cal["female_fraction"], cdfs)
        visit = patient.visits[0]
        ecg = synthesize(RecordSpec(17, i, 0, patient.sex, visit.age, visit.labels))
        out.append(_measure(ecg.signal_at(FS), "NORM" in visit.labels))
    return out


def _values(records: list[Measured], key: str, norm_only: bool) -> np.ndarray:
    v = np.array([r.intervals[key] for r in records if r.norm or not norm_only])
    return v[np.isfinite(v)]


@pytest.mark.timeout(150)
def test_interval_distributions_match(real: list[Measured], synthetic: list[Measured]) -> None:
    print("\ninterval (NORM records)   real p10/p50/p90        synthetic p10/p50/p90")
    for key in INTERVALS:
        a, b = _values(real, key, True), _values(synthetic, key, True)
        qa, qb = np.percentile(a, [10, 50, 90]), np.percentile(b, [10, 50, 90])
        print(f"  {key:8s}  {qa.round(0)}  {qb.round(0)}")
        assert abs(qb[1] - qa[1]) <= 0.08 * qa[1], f"{key}: median {qb[1]:.0f} vs real {qa[1]:.0f}"
        assert qb[0] < qa[2] and qa[0] < qb[2], f"{key}: the distributions do not overlap"
    # P waves: found in as many records of either kind (fibrillation and flutter have none)
    p_real = np.mean([np.isfinite(r.intervals["pr_ms"]) for r in real])
    p_syn = np.mean([np.isfinite(r.intervals["pr_ms"]) for r in synthetic])
    assert abs(p_real - p_syn) < 0.06


@pytest.mark.timeout(150)
def test_lead_amplitudes_match(real: list[Measured], synthetic: list[Measured]) -> None:
    print("\nmedian per lead (mV): real / synthetic")
    for key, norm_only in (("r", False), ("s", False), ("t", True), ("range", False)):
        a = np.nanmedian(np.stack([r.leads[key] for r in real if r.norm or not norm_only]), axis=0)
        b = np.nanmedian(np.stack([r.leads[key] for r in synthetic if r.norm or not norm_only]), axis=0)
        print(
            f"  {key:5s} "
            + " ".join(f"{n}:{x:+.2f}/{y:+.2f}" for n, x, y in zip(CANONICAL_LEADS, a, b, strict=True))
        )
        off = [
            n for n, x, y in zip(CANONICAL_LEADS, a, b, strict=True) if abs(x - y) > max(0.15, 0.35 * abs(x))
        ]
        assert not off, f"{key}: leads {off} differ by more than 0.15 mV and 35%"


def test_label_frequencies_are_ptbxls(shared_data: Path) -> None:
    """The shipped calibration against the full PTB-XL table: every statement's frequency matches,
    apart from what making each record coherent moves (a primary rhythm for every record; findings
    a rhythm rules out)."""
    with open(shared_data / "ptbxl-meta" / "ptbxl_database.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    raw: Counter[str] = Counter()
    coherent: Counter[str] = Counter()
    for row in rows:
        codes = set(ast.literal_eval(row["scp_codes"]))
        raw.update(codes)
        coherent.update(resolve(codes))
    shipped = label_prevalence()
    n = len(rows)
    print("\nlabel  PTB-XL  shipped  (%)")
    for code in sorted(CATALOGUE, key=lambda c: -raw[c]):
        print(f"  {code:7s} {100 * raw[code] / n:6.3f} {100 * shipped.get(code, 0.0):6.3f}")
        # the 89 ECGs without an age have no stratum and are left out of the shipped strata
        assert abs(shipped.get(code, 0.0) - coherent[code] / n) <= 0.05 * coherent[code] / n + 1e-4, code
    # making records coherent moves only rhythm statements and what a rhythm or a finding rules out
    moved = {c for c in CATALOGUE if abs(coherent[c] - raw[c]) > 0.03 * raw[c]}
    ruled_out = {c for _, losers in EXCLUSIONS for c in losers} | set(NEEDS_SINUS_P) | set(HIDDEN_BY_PACING)
    assert moved <= ruled_out | set(PRIMARY_RHYTHMS), moved - ruled_out - set(PRIMARY_RHYTHMS)
    rare = [c for c, p in shipped.items() if p < 0.01]
    assert len(rare) >= 35  # the long tail: more than half of the statements are under 1%
