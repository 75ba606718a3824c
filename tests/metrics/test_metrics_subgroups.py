"""Age bands, patient bootstrap, subgroup rows (values, gaps, CIs) against direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from rare_ecg.metrics.bootstrap import bootstrap_ci, patient_resamples
from rare_ecg.metrics.labels import label_sets
from rare_ecg.metrics.subgroups import LARGEST_GAP, age_bands, subgroup_metrics


def test_age_bands_edges() -> None:
    bands = age_bands(np.array([0, 39.9, 40, 59.99, 60, 79, 80, 101, np.nan]))
    assert list(bands) == ["<40", "<40", "40-59", "40-59", "60-79", "60-79", "80+", "80+", ""]


def test_patient_resamples_keep_a_patients_records_together() -> None:
    patients = np.array(["a", "a", "a", "b", "c", "c"])
    for idx in patient_resamples(patients, n_boot=50, seed=3):
        counts = {p: int((patients[idx] == p).sum()) for p in "abc"}
        # Each draw of a patient brings all its records: counts are multiples of the record count.
        assert counts["a"] % 3 == 0 and counts["c"] % 2 == 0
        # Three patients drawn in all.
        assert counts["a"] // 3 + counts["b"] + counts["c"] // 2 == 3
    again = patient_resamples(patients, n_boot=50, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(patient_resamples(patients, 50, 3), again, strict=True))


def test_bootstrap_ci_of_a_mean_brackets_it_and_shrinks_with_more_patients() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (50, 2000):
        values = rng.normal(size=n)
        patients = np.arange(n)
        low, high = bootstrap_ci(lambda idx, v=values: np.array([v[idx].mean()]), patients, n_boot=300)
        assert low[0] < values.mean() < high[0]
        # Normal theory: the 95% interval is about 2 * 1.96 / sqrt(n) wide.
        assert high[0] - low[0] == pytest.approx(2 * 1.96 / np.sqrt(n), rel=0.25)
        widths.append(high[0] - low[0])
    assert widths[1] < widths[0] / 4


def _cohort(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n = 600
    patients = rng.integers(0, 300, n)
    sex = np.where(rng.random(300) < 0.5, "male", "female")[patients]
    age = rng.uniform(20, 95, 300)[patients]
    y = rng.random((n, 3)) < np.array([0.3, 0.05, 0.2])
    # Scores worse for women on label 0, so the sex gap is real.
    noise = np.where(sex == "female", 2.0, 0.5)[:, None]
    s = y + noise * rng.normal(size=(n, 3))
    return y, s, sex, age, patients


def test_subgroup_rows_equal_direct_computation_and_gaps_are_max_minus_min() -> None:
    y, s, sex, age, patients = _cohort()
    labels = ["A", "B", "C"]
    train = np.zeros((1000, 3), dtype=bool)
    train[:300, 0], train[:5, 1], train[:200, 2] = True, True, True
    sets = label_sets(train, labels)
    rows = subgroup_metrics(y, s, labels, sets, list(sex), age, patients, n_boot=30, seed=1)
    by_key = {(r.group_kind, r.group, r.label_set, r.metric): r for r in rows}

    female = sex == "female"
    direct = np.mean([roc_auc_score(y[female, j], s[female, j]) for j in (0, 2)])
    row = by_key[("sex", "female", "common", "auroc")]
    assert row.value == pytest.approx(direct)
    assert row.n == female.sum() and row.n_pos == int(y[female][:, [0, 2]].any(1).sum())
    assert row.ci_low <= row.value <= row.ci_high

    fpr, tpr, _ = roc_curve(y[~female, 1], s[~female, 1])
    assert by_key[("sex", "male", "rare", "sens_at_spec90")].value == pytest.approx(tpr[fpr <= 0.1].max())

    male_all = by_key[("sex", "male", "all", "auroc")].value
    female_all = by_key[("sex", "female", "all", "auroc")].value
    assert male_all > female_all + 0.1  # the built-in disparity is visible
    assert by_key[("sex", LARGEST_GAP, "all", "auroc")].value == pytest.approx(male_all - female_all)
    bands = [by_key[("age_band", b, "all", "auroc")].value for b in ("<40", "40-59", "60-79", "80+")]
    assert by_key[("age_band", LARGEST_GAP, "all", "auroc")].value == pytest.approx(max(bands) - min(bands))
    gap = by_key[("sex", LARGEST_GAP, "all", "auroc")]
    assert 0 < gap.ci_low < gap.value < gap.ci_high
    overall = by_key[("overall", "all", "all", "auroc")]
    assert overall.n == len(y)
    assert overall.value == pytest.approx(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(3)]))


def test_groups_without_positives_give_nan_rows_not_errors() -> None:
    y, s, sex, age, patients = _cohort(1)
    y[:, 1] &= age >= 40  # rare label B never positive under 40
    train = np.zeros((1000, 3), dtype=bool)
    train[:300, 0], train[:5, 1], train[:200, 2] = True, True, True
    sets = label_sets(train, ["A", "B", "C"])
    assert sets.rare == ("B",)
    rows = subgroup_metrics(y, s, ["A", "B", "C"], sets, list(sex), age, patients, n_boot=10)
    young_rare = next(r for r in rows if r.group == "<40" and r.label_set == "rare" and r.metric == "auroc")
    assert np.isnan(young_rare.value) and np.isnan(young_rare.ci_low)
