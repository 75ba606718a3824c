"""The int8 gate: accepts the real int8 graph when validation AUROCs hold, refuses a graph that costs a label
or a subgroup its ranking, and says why."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rare_ecg.evaluation import Predictions
from rare_ecg.metrics import label_sets
from rare_ecg.model.network import EcgModel
from rare_ecg.scoring.export import validation_predictions
from rare_ecg.scoring.gate import int8_gate
from rare_ecg.scoring.onnx import open_session, quantize_int8

from .conftest import LABELS

pytestmark = pytest.mark.timeout(300)


def validation_cohort(n: int = 400, seed: int = 0) -> Predictions:
    """A well-ranked cohort: probabilities separate positives from negatives with some overlap."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < [0.5, 0.2, 0.05, 0.6]).astype(np.uint8)
    prob = 1 / (1 + np.exp(-(2.5 * (2 * y.astype(np.float64) - 1) + rng.normal(0, 1.5, y.shape))))
    return Predictions(
        labels=LABELS,
        y_true=y,
        y_prob=prob,
        y_pred=prob >= 0.5,
        sex=["female" if i % 2 else "male" for i in range(n)],
        age_years=rng.uniform(20, 95, n),
        patient_ids=np.arange(n),
    )


def test_gate_accepts_the_real_int8_graph_on_the_validation_split(
    example_lake: Path, classifier: EcgModel, fp32_onnx: Path, tmp_path: Path
) -> None:
    q8 = quantize_int8(fp32_onnx, tmp_path / "int8.onnx")
    sessions = {"fp32": open_session(fp32_onnx, 1), "int8": open_session(q8, 1)}
    preds, sets = validation_predictions(classifier, {}, sessions, str(example_lake))
    fp32, int8 = preds["fp32"], preds["int8"]
    assert len(fp32.y_true) == 5  # the example archive's strat_fold 9 records, all labelled
    assert 0 < np.abs(int8.y_prob - fp32.y_prob).max() < 0.05
    result = int8_gate(fp32, int8.y_prob, sets)
    assert result.accepted, result.reasons
    assert result.label_drops and max(result.label_drops.values()) <= 0.005


def test_gate_refuses_when_a_label_or_a_subgroup_loses_its_ranking() -> None:
    fp32 = validation_cohort()
    sets = label_sets(fp32.y_true, LABELS, min_common_positives=1)
    close = np.clip(fp32.y_prob + np.random.default_rng(1).normal(0, 1e-4, fp32.y_prob.shape), 0, 1)
    assert int8_gate(fp32, close, sets).accepted  # tiny noise: rankings hold

    damaged = fp32.y_prob.copy()
    damaged[:, 1] = np.random.default_rng(2).permutation(damaged[:, 1])  # AFLT-like label: ranking lost
    result = int8_gate(fp32, damaged, sets)
    assert not result.accepted
    assert any(r.startswith(f"AUROC of {LABELS[1]} drops by") for r in result.reasons)
    assert result.label_drops[LABELS[1]] > 0.1

    women = np.asarray(fp32.sex) == "female"
    one_group = fp32.y_prob.copy()
    rng = np.random.default_rng(3)
    one_group[women] = np.clip(one_group[women] + rng.normal(0, 0.25, one_group[women].shape), 0, 1)
    result = int8_gate(fp32, one_group, sets)
    assert not result.accepted
    assert any("of sex female drops by" in r for r in result.reasons)
    assert not any("of sex male drops by" in r for r in result.reasons)

    no_positives = dataclasses.replace(fp32, y_true=np.zeros_like(fp32.y_true))
    refused = int8_gate(no_positives, fp32.y_prob, sets)
    assert not refused.accepted and "no label has both classes" in refused.reasons[0]
