"""The longitudinal cohort: patients, their visits, and the labels of each visit's ECG.

- Sex and first-visit age follow PTB-XL's distributions; the number of ECGs per patient follows
  PTB-XL's (most patients have one); visits are spread over the years (gaps log-normal with a median
  of one year, ours: PTB-XL's own revisits are mostly days apart), and age advances with the calendar.
- Each visit's labels are one real PTB-XL label combination of the visit's sex and age band, so label
  frequencies, co-occurrence and the age/sex dependence are PTB-XL's (calibration.py).
- Chronic findings (infarcts, bundle-branch blocks, hypertrophy, pacemakers, ...) persist: a patient's
  chronic findings are those of the last visit, each present from the first visit in 60% of patients
  and appearing at a later visit (onset) otherwise; an earlier visit is a real combination whose
  chronic findings the patient already has at that time (drawn again until it is), plus those.
- ``prevalence`` overrides move a label's frequency to a target, overall or per sex (to give
  subgroup metrics something to measure), by adding or removing it at random in each combination.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from rare_ecg.synth.calibration import SEXES, age_band, label_prevalence, load_calibration
from rare_ecg.synth.labels import CATALOGUE, PRIMARY_RHYTHMS, SINUS_RHYTHMS, resolve

FIRST_DATE = datetime(1985, 1, 1)
DATE_SPAN_DAYS = 16 * 365  # first visits fall in 1985-2000, like most of PTB-XL
VISIT_GAP_MEDIAN_DAYS = 365.0
CHRONIC_FROM_FIRST_VISIT = 0.6
MAX_AGE = 100

_EARLIER_TRIES = 20
_PLAN, _VISITS = 100, 101  # random-stream purposes (distinct from ecg.py's)

# a target per label: one number for everybody, or one per sex
PrevalenceTargets = Mapping[str, float | Mapping[str, float]]


@dataclass(frozen=True)
class Visit:
    ecg_id: int
    visit: int
    recorded_at: datetime
    age: float
    labels: frozenset[str]


@dataclass(frozen=True)
class Patient:
    index: int
    sex: str
    fold: int  # 1-10, assigned by patient
    visits: tuple[Visit, ...]


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(key))))


def visit_counts(seed: int, n_patients: int) -> np.ndarray:
    """ECGs per patient for the whole cohort, from one stream: the ecg_id of every record is known
    before any worker starts, whatever the chunking."""
    hist = np.asarray(load_calibration()["visits_hist"], dtype=np.float64)
    rng = _rng(seed, _VISITS)
    return rng.choice(np.arange(1, hist.size + 1), size=n_patients, p=hist / hist.sum())


class LabelSampler:
    """Draws PTB-XL label combinations by sex and age band, with optional prevalence overrides."""

    def __init__(
        self, targets: PrevalenceTargets | None = None, calibration: dict[str, Any] | None = None
    ) -> None:
        cal = calibration or load_calibration()
        self._strata: dict[tuple[str, int], tuple[list[frozenset[str]], np.ndarray]] = {}
        for stratum in cal["strata"]:
            combos = [frozenset(key.split("|")) for key in stratum["combos"]]
            counts = np.array(list(stratum["combos"].values()), dtype=np.float64)
            self._strata[(stratum["sex"], stratum["band"])] = (combos, np.cumsum(counts) / counts.sum())
        self._adjust = self._adjustments(targets or {}, cal)

    @staticmethod
    def _adjustments(targets: PrevalenceTargets, cal: dict[str, Any]) -> dict[str, dict[str, float]]:
        """Per label and sex: probability to add (>0) or to remove (<0) the label in a combination."""
        out: dict[str, dict[str, float]] = {}
        for code, target in targets.items():
            per_sex = target if isinstance(target, Mapping) else dict.fromkeys(SEXES, target)
            out[code] = {}
            for sex, p in per_sex.items():
                base = _prevalence_by_sex(cal, sex).get(code, 0.0)
                if p >= base:
                    out[code][sex] = (p - base) / (1.0 - base) if base < 1.0 else 0.0
                else:
                    out[code][sex] = -(1.0 - p / base)
        return out

    def draw(self, rng: np.random.Generator, sex: str, age: float) -> frozenset[str]:
        combos, cdf = self._strata[(sex, age_band(age))]
        labels = set(combos[int(np.searchsorted(cdf, rng.uniform(), side="right"))])
        for code, by_sex in self._adjust.items():
            q = by_sex.get(sex, 0.0)
            u = rng.uniform()
            if q > 0 and code not in labels and u < q:
                _add(labels, code)
            elif q < 0 and code in labels and u < -q:
                labels.discard(code)
        return resolve(labels)


def _add(labels: set[str], code: str) -> None:
    """Add ``code``; a rhythm replaces the primary rhythm, a finding makes a NORM record abnormal."""
    if code in PRIMARY_RHYTHMS:
        labels.difference_update(PRIMARY_RHYTHMS)
    elif code not in SINUS_RHYTHMS:
        labels.discard("NORM")
    labels.add(code)


def _prevalence_by_sex(cal: dict[str, Any], sex: str) -> dict[str, float]:
    return label_prevalence({"strata": [s for s in cal["strata"] if s["sex"] == sex]})


def _chronic(labels: frozenset[str]) -> set[str]:
    return {code for code in labels if CATALOGUE[code].chronic}


def plan_patient(
    seed: int, index: int, n_visits: int, first_ecg_id: int, sampler: LabelSampler, female_fraction: float,
    age_cdf: dict[str, np.ndarray],
) -> Patient:  # fmt: skip
    rng = _rng(seed, _PLAN, index)
    sex = "female" if rng.uniform() < female_fraction else "male"
    first_age = float(np.searchsorted(age_cdf[sex], rng.uniform(), side="right"))
    fold = int(rng.integers(1, 11))
    first = FIRST_DATE + timedelta(
        days=float(rng.uniform(0, DATE_SPAN_DAYS)), hours=float(rng.uniform(7.5, 18))
    )
    dates = [first.replace(microsecond=0)]
    for _ in range(n_visits - 1):
        gap = float(rng.lognormal(np.log(VISIT_GAP_MEDIAN_DAYS), 1.0))
        dates.append(
            (dates[-1] + timedelta(days=max(1.0, gap), hours=float(rng.uniform(-3, 3)))).replace(
                microsecond=0
            )
        )
    ages = [min(MAX_AGE, first_age + (d.year - first.year)) for d in dates]

    last = sampler.draw(rng, sex, ages[-1])
    chronic = sorted(_chronic(last))
    onset = {
        code: 0
        if rng.uniform() < CHRONIC_FROM_FIRST_VISIT
        else int(rng.integers(1, n_visits))
        if n_visits > 1
        else 0
        for code in chronic
    }
    visits = []
    for k in range(n_visits):
        if k == n_visits - 1:
            labels = last
        else:
            carried = {code for code in chronic if onset[code] <= k}
            # an earlier ECG: a real combination whose chronic findings the patient already has
            for _ in range(_EARLIER_TRIES):
                own = sampler.draw(rng, sex, ages[k])
                if _chronic(own) <= carried:
                    break
            labels_set = (set(own) - _chronic(own)) | carried
            if carried - own:
                labels_set.discard("NORM")
            labels = resolve(labels_set)
        visits.append(Visit(first_ecg_id + k, k, dates[k], float(ages[k]), labels))
    return Patient(index, sex, fold, tuple(visits))


def age_cdfs(calibration: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    cal = calibration or load_calibration()
    out = {}
    for sex in SEXES:
        hist = np.asarray(cal["age_hist"][sex], dtype=np.float64)
        out[sex] = np.cumsum(hist) / hist.sum()
    return out
