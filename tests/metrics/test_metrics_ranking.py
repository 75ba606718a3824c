"""Ranking metrics against scikit-learn and hand-computed cases, including ties and missing classes."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from rare_ecg.metrics.ranking import (
    auprc,
    auroc,
    auroc_columns,
    sensitivity_at_specificity,
    sensitivity_at_specificity_columns,
)


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    cases = []
    for n, prevalence in ((50, 0.5), (300, 0.05), (1000, 0.01)):
        y = rng.random(n) < prevalence
        y[0], y[1] = True, False
        cases.append((y, rng.normal(size=n) + 1.2 * y))
        # Heavy ties: scores on a coarse grid.
        cases.append((y, np.round(rng.random(n) + 0.5 * y, 1)))
    return cases


@pytest.mark.parametrize("case", range(6))
def test_auroc_and_auprc_match_sklearn(case: int) -> None:
    y, s = _cases()[case]
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auprc(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_hand_computed_auroc_and_auprc() -> None:
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.4, 0.1])
    # Pairs (pos, neg): (0.9 > 0.8), (0.9 > 0.1), (0.4 < 0.8), (0.4 > 0.1) -> 3 of 4.
    assert auroc(y, s) == 0.75
    # Ranked 1, 0, 1, 0: precision 1 at recall 0.5, precision 2/3 at recall 1.
    assert auprc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # A tie between a positive and a negative counts one half.
    assert auroc([1, 0], [0.5, 0.5]) == 0.5


def test_missing_class_gives_nan_not_an_error() -> None:
    for y in (np.zeros(5), np.ones(5)):
        assert np.isnan(auroc(y, np.arange(5.0)))
        assert np.isnan(auprc(y, np.arange(5.0)))
        assert np.isnan(sensitivity_at_specificity(y, np.arange(5.0)))


def test_columns_match_the_single_label_functions() -> None:
    rng = np.random.default_rng(1)
    y = rng.random((400, 6)) < np.array([0.5, 0.1, 0.02, 0.0, 1.0, 0.3])
    s = rng.normal(size=y.shape) + y
    s[:, 5] = np.round(s[:, 5])  # ties
    au = auroc_columns(y, s)
    se = sensitivity_at_specificity_columns(y, s, 0.9)
    for j in range(y.shape[1]):
        np.testing.assert_equal(au[j], auroc(y[:, j], s[:, j]))
        np.testing.assert_equal(se[j], sensitivity_at_specificity(y[:, j], s[:, j], 0.9))
    assert np.isnan(au[3]) and np.isnan(au[4])


@pytest.mark.parametrize("case", range(6))
def test_sensitivity_at_specificity_is_the_best_roc_point_with_fpr_at_most_10_percent(case: int) -> None:
    y, s = _cases()[case]
    fpr, tpr, _ = roc_curve(y, s)
    assert sensitivity_at_specificity(y, s, 0.9) == pytest.approx(tpr[fpr <= 0.1 + 1e-12].max())


def test_hand_computed_sensitivity_at_specificity() -> None:
    # 10 negatives 0..9, positives 8.5, 9.5, 3: at 90% specificity 9 negatives must fall below the
    # threshold, so it sits just above 8: positives 8.5 and 9.5 pass (2 of 3).
    s = np.r_[np.arange(10.0), [8.5, 9.5, 3.0]]
    y = np.r_[np.zeros(10), np.ones(3)]
    assert sensitivity_at_specificity(y, s, 0.9) == pytest.approx(2 / 3)
    assert sensitivity_at_specificity(y, s, 1.0) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="specificity"):
        sensitivity_at_specificity(y, s, 0.0)
