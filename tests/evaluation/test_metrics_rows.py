"""subgroup_metrics rows from predictions and lake labels: vocabulary, values, nulls, the table schema."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from rare_ecg.evaluation import METRICS, Predictions, label_matrix, metric_rows, metrics_table
from rare_ecg.lake.schema import SCHEMAS, SUBGROUP_METRICS
from rare_ecg.metrics import auroc, label_sets

LABELS = ("NORM", "AFIB", "WPW", "LNGQT")


def cohort(n: int = 120, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = np.zeros((n, len(LABELS)), dtype=np.uint8)
    y[:, 0] = rng.random(n) < 0.5
    y[:, 1] = rng.random(n) < 0.2
    y[:6, 2] = 1  # rare
    # LNGQT: no positives in this cohort
    prob = np.clip(0.6 * y + rng.random(y.shape) * 0.5, 0, 1)
    return Predictions(
        labels=LABELS,
        y_true=y,
        y_prob=prob,
        y_pred=prob >= 0.5,
        sex=[("male", "female", None)[i % 3] for i in range(n)],
        age_years=rng.uniform(20, 95, n),
        patient_ids=np.arange(n) // 2,
    )


def test_rows_use_the_tables_vocabulary_and_match_the_metrics_library() -> None:
    pred = cohort()
    train = np.vstack([pred.y_true, np.zeros((600, len(LABELS)), np.uint8)])
    train[-100:, 0] = 1
    sets = label_sets(train, LABELS)
    assert "WPW" in sets.rare and "NORM" in sets.common
    rows = metric_rows(pred, sets, n_boot=20)
    table = metrics_table(rows, run_id="r1", model_version="3", cohort="all")
    assert table.schema == SCHEMAS[SUBGROUP_METRICS]
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    assert set(df["group_kind"]) == {"overall", "sex", "age_band"}
    assert set(df["metric"]) <= set(METRICS) and set(df["metric"]) == set(METRICS)
    assert {"all", "rare", "common", *LABELS} == set(df["label_set"])

    afib = df.filter(label_set="AFIB", metric="auroc")
    assert afib.height == 1
    assert afib["value"][0] == pytest.approx(auroc(pred.y_true[:, 1], pred.y_prob[:, 1]))
    assert afib["n_pos"][0] == int(pred.y_true[:, 1].sum())

    no_pos = df.filter(label_set="LNGQT", metric="auroc")
    assert no_pos["value"][0] is None and no_pos["n_pos"][0] == 0  # reported, null, not dropped

    flagged = df.filter(group_kind="sex", group="female", label_set="all", metric="n_flagged")
    female = np.asarray(pred.sex, dtype=object) == "female"
    assert flagged["value"][0] == float(pred.y_pred[female].any(1).sum())
    assert flagged["n"][0] == int(female.sum())

    overall = df.filter(group_kind="overall", label_set="all", metric="auroc")
    assert overall["ci_low"][0] <= overall["value"][0] <= overall["ci_high"][0]
    assert df.filter(pl.col("value").is_nan()).is_empty()


def test_label_matrix_keeps_unlabelled_records_apart_from_negatives() -> None:
    labels = pl.DataFrame(
        {"record_id": ["a", "a", "b", "c"], "label": ["AFIB", "NORM", "XYZ", None]},
    )
    labelled, y = label_matrix(labels, ["c", "a", "b", "d"], LABELS)
    assert labelled.tolist() == [False, True, True, False]  # c has only an unmapped code, d nothing
    assert y.tolist() == [[0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
