"""ECE, age MAE, sex AUROC and point-level localization AUROC: hand-computed cases and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rare_ecg.metrics.attributes import age_mae, sex_auroc
from rare_ecg.metrics.calibration import expected_calibration_error
from rare_ecg.metrics.localization import localization_auroc


def test_ece_hand_computed() -> None:
    # Bin [0.1, 0.2): p = 0.1, 0.1, y = 0, 1 -> |0.5 - 0.1| = 0.4, weight 2/5.
    # Bin [0.9, 1.0]: p = 0.9, 0.95, 1.0, y = 1, 1, 1 -> |1 - 0.95| = 0.05, weight 3/5.
    p = np.array([0.1, 0.1, 0.9, 0.95, 1.0])
    y = np.array([0, 1, 1, 1, 1])
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(2 / 5 * 0.4 + 3 / 5 * 0.05)
    # One bin: |mean(y) - mean(p)|.
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(y.mean() - p.mean()))


def test_ece_is_near_zero_for_calibrated_and_large_for_overconfident_predictions() -> None:
    rng = np.random.default_rng(0)
    p = rng.random((20000, 3))
    y = rng.random(p.shape) < p
    assert expected_calibration_error(y, p) < 0.01
    assert expected_calibration_error(y, np.clip(p * 2, 0, 1)) > 0.15
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error(y, p + 1)


def test_age_mae_ignores_unknown_ages_and_sex_auroc_matches_sklearn() -> None:
    assert age_mae(np.array([50, np.nan, 70]), np.array([55, 10, 60])) == pytest.approx(7.5)
    assert np.isnan(age_mae(np.array([np.nan]), np.array([3.0])))
    rng = np.random.default_rng(1)
    sex = list(np.where(rng.random(200) < 0.5, "female", "male"))
    sex[:5] = [None] * 5
    prob = rng.random(200) + 0.3 * (np.asarray(sex, dtype=object) == "female")
    known = np.asarray([x is not None for x in sex])
    expected = roc_auc_score(np.asarray(sex, dtype=object)[known] == "female", prob[known])
    assert sex_auroc(sex, prob) == pytest.approx(expected)


def test_localization_auroc_pools_points_and_honours_the_valid_mask() -> None:
    rng = np.random.default_rng(2)
    maps = rng.random((4, 12, 100))
    truth = np.zeros(maps.shape, dtype=bool)
    truth[:, 2:4, 40:60] = True
    maps[truth] += 0.5
    assert localization_auroc(maps, truth) == pytest.approx(roc_auc_score(truth.ravel(), maps.ravel()))
    lead_mask = np.ones((4, 12, 1), dtype=bool)
    lead_mask[:, 5] = False
    maps[:, 5] = 10.0  # an absent lead with a huge value must not count
    keep = np.broadcast_to(lead_mask, maps.shape)
    assert localization_auroc(maps, truth, lead_mask) == pytest.approx(roc_auc_score(truth[keep], maps[keep]))
    assert np.isnan(localization_auroc(maps, np.zeros(maps.shape, dtype=bool)))
