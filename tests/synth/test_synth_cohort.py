"""The cohort plan: PTB-XL's label frequencies, ages and sexes; prevalence overrides; longitudinal
visits with chronic findings that persist and sometimes start at a later visit."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from rare_ecg.synth.calibration import label_prevalence, load_calibration
from rare_ecg.synth.cohort import LabelSampler, Patient, age_cdfs, plan_patient, visit_counts
from rare_ecg.synth.labels import CATALOGUE, resolve

N_PATIENTS = 4000


def _plan(seed: int, n: int, targets: dict | None = None) -> list[Patient]:
    cal = load_calibration()
    sampler = LabelSampler(targets)
    cdfs = age_cdfs(cal)
    counts = visit_counts(seed, n)
    first = np.concatenate([[1], 1 + np.cumsum(counts)[:-1]])
    return [
        plan_patient(seed, i, int(counts[i]), int(first[i]), sampler, cal["female_fraction"], cdfs)
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def cohort() -> list[Patient]:
    return _plan(5, N_PATIENTS)


def _frequencies(patients: list[Patient], sex: str | None = None) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    n = 0
    for p in patients:
        if sex is not None and p.sex != sex:
            continue
        for v in p.visits:
            counts.update(v.labels)
            n += 1
    return counts, n


def test_label_frequencies_follow_ptbxl(cohort: list[Patient]) -> None:
    """Each of the 71 labels within 4.5 binomial SDs plus 10% of PTB-XL's frequency (the plan carries
    chronic findings across visits, which moves frequencies a little)."""
    counts, n = _frequencies(cohort)
    off = []
    for code, p in label_prevalence().items():
        tolerance = 4.5 * np.sqrt(p * (1 - p) / n) + 0.1 * p
        if abs(counts[code] / n - p) > tolerance:
            off.append((code, round(counts[code] / n, 4), round(p, 4)))
    assert not off, f"labels off their PTB-XL frequency (code, generated, target): {off}"
    assert {code for code in counts if counts[code]} >= {
        c for c, p in label_prevalence().items() if p > 0.003
    }


def test_demographics_follow_ptbxl(cohort: list[Patient]) -> None:
    female = np.mean([p.sex == "female" for p in cohort])
    assert abs(female - load_calibration()["female_fraction"]) < 0.03
    ages = np.array([p.visits[0].age for p in cohort])
    assert 58 <= np.median(ages) <= 66  # PTB-XL: 62
    assert ages.min() >= 0 and ages.max() <= 100
    visits = np.array([len(p.visits) for p in cohort])
    assert 1.1 <= visits.mean() <= 1.25 and visits.max() > 2  # PTB-XL: 21,837 ECGs / 18,885 patients


def test_prevalence_overrides_hit_their_targets() -> None:
    patients = _plan(6, 2500, {"WPW": 0.05, "LNGQT": {"female": 0.06, "male": 0.0}})
    counts, n = _frequencies(patients)
    assert abs(counts["WPW"] / n - 0.05) < 0.012
    f_counts, f_n = _frequencies(patients, "female")
    m_counts, _ = _frequencies(patients, "male")
    assert abs(f_counts["LNGQT"] / f_n - 0.06) < 0.018
    assert m_counts["LNGQT"] == 0


def test_visits_advance_in_time_and_age(cohort: list[Patient]) -> None:
    expected_id = 1
    for p in cohort:
        first = p.visits[0]
        for v in p.visits:
            assert v.ecg_id == expected_id
            expected_id += 1
            assert v.age == min(100, first.age + v.recorded_at.year - first.recorded_at.year)
        dates = [v.recorded_at for v in p.visits]
        assert dates == sorted(dates)
        assert 1 <= p.fold <= 10


def test_chronic_findings_persist_and_some_start_later(cohort: list[Patient]) -> None:
    onsets = 0
    for p in cohort:
        for before, after in zip(p.visits[:-1], p.visits[1:], strict=True):
            for code in before.labels:
                if CATALOGUE[code].chronic and code not in after.labels:
                    # only a later finding that excludes it (pacing, fibrillation, ...) may hide it
                    assert code not in resolve(after.labels | {code}), (p.index, code, before, after)
            onsets += len({c for c in after.labels - before.labels if CATALOGUE[c].chronic})
    assert onsets >= 20


def test_the_plan_is_reproducible() -> None:
    a, b = _plan(9, 50), _plan(9, 50)
    assert a == b
    assert a != _plan(10, 50)
