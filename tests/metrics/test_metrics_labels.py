"""Rare/common sets from training prevalence, per-label metrics, macro means, gap and gap reduction."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from rare_ecg.metrics.labels import (
    STATUS_NO_NEGATIVES,
    STATUS_NO_POSITIVES,
    STATUS_OK,
    gap_reduction,
    label_report,
    label_sets,
    macro_metric,
    per_label_metrics,
)


def test_label_sets_follow_training_prevalence_and_threshold() -> None:
    n = 2000
    y = np.zeros((n, 5), dtype=bool)
    y[:400, 0] = True  # 20%: common
    y[:19, 1] = True  # 0.95%: rare at 1%
    y[:20, 2] = True  # exactly 1%: common (20 >= 10 positives)
    y[:1, 3] = True  # one positive: rare
    # label 4 has no training positive: neither set
    sets = label_sets(y, ["A", "B", "C", "D", "E"])
    assert sets.rare == ("B", "D")
    assert sets.common == ("A", "C")
    assert sets.excluded == ("E",)
    assert sets.prevalence["B"] == pytest.approx(0.0095)
    # A higher threshold moves C (1%) to rare; too few positives keeps a label out of "common".
    assert label_sets(y, ["A", "B", "C", "D", "E"], threshold=0.05).rare == ("B", "C", "D")
    assert label_sets(y, list("ABCDE"), min_common_positives=21).common == ("A",)
    with pytest.raises(ValueError, match="does not match"):
        label_sets(y, ["A"])


def test_per_label_metrics_match_sklearn_and_report_labels_without_positives() -> None:
    rng = np.random.default_rng(0)
    y = rng.random((300, 4)) < 0.2
    y[:, 2] = False  # no positives in this split
    y[:, 3] = True  # no negatives
    s = rng.random((300, 4)) + 0.5 * y
    metrics = per_label_metrics(y, s, ["A", "B", "C", "D"])
    for j in (0, 1):
        assert metrics[j].status == STATUS_OK
        assert metrics[j].auroc == pytest.approx(roc_auc_score(y[:, j], s[:, j]))
        assert metrics[j].auprc == pytest.approx(average_precision_score(y[:, j], s[:, j]))
        assert metrics[j].n_pos == int(y[:, j].sum())
    assert metrics[2].status == STATUS_NO_POSITIVES and np.isnan(metrics[2].auroc)
    assert metrics[3].status == STATUS_NO_NEGATIVES and np.isnan(metrics[3].auroc)
    # Macro means leave the NaN labels out instead of turning NaN.
    expected = np.mean([metrics[0].auroc, metrics[1].auroc])
    assert macro_metric(metrics, None) == pytest.approx(expected)
    assert np.isnan(macro_metric(metrics, ["C", "D"]))


def test_report_gap_and_gap_reduction_hand_computed() -> None:
    # Common label A perfectly ranked (AUROC 1), rare label B at AUROC 0.75, rare C never positive in test.
    y = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.9, 0.1], [0.8, 0.8, 0.1], [0.1, 0.4, 0.1], [0.2, 0.5, 0.1], [0.3, 0.1, 0.1]])
    train = np.zeros((1000, 3), dtype=bool)
    train[:300, 0] = True
    train[:5, 1] = True
    train[:2, 2] = True
    report = label_report(y, s, ["A", "B", "C"], train)
    assert report.sets.common == ("A",) and report.sets.rare == ("B", "C")
    # B: positives 0.9, 0.4 vs negatives 0.8, 0.5, 0.1 -> 0.9 beats 3, 0.4 beats 1 -> 4/6.
    assert report.macro_auroc["rare"] == pytest.approx(4 / 6)
    assert report.macro_auroc["common"] == pytest.approx(1.0)
    assert report.macro_auroc["all"] == pytest.approx((1 + 4 / 6) / 2)
    assert report.gap == pytest.approx(1 - 4 / 6)
    assert gap_reduction(0.05, 0.2) == pytest.approx(0.75)
    assert np.isnan(gap_reduction(0.05, 0.0))
    assert np.isnan(gap_reduction(float("nan"), 0.2))
