"""patient_findings: the serial comparison of each patient's scored ECGs, the way a cardiologist reads a
new ECG against the patient's previous one. A pure function of the scored rows of one model version.

One row per (patient, label) that the model ever flagged in the patient's ECGs:
- first_flagged_record_id / first_flagged_at: the earliest ECG flagging it; n_flagged of n_scored ECGs;
- latest_record_id / latest_score: the patient's latest scored ECG and the label's probability there;
- new_finding: flagged in the latest ECG and not in the one before it (True); not flagged in the latest,
  or flagged in both (False); flagged in the patient's only ECG (null: nothing to compare with).
ECGs are ordered by recorded_at (an unknown date counts as the earliest), then record_id. Records
without a patient_key have no history and are left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

SCORE_COLUMNS = ("record_id", "patient_key", "recorded_at", "labels_predicted", "label_probs")


def patient_findings(scores: pl.DataFrame | pl.LazyFrame, labels: Sequence[str]) -> pl.DataFrame:
    """``scores``: the ecg_scores rows of one model version (at least SCORE_COLUMNS); ``labels``: its
    vocabulary, in label_probs order. Returns the findings columns (without model and run columns)."""
    index = {label: i for i, label in enumerate(labels)}
    ordered = (
        scores.lazy()
        .select(SCORE_COLUMNS)
        .filter(pl.col("patient_key").is_not_null())
        .sort(["patient_key", "recorded_at", "record_id"], nulls_last=False)
        .with_columns(
            rank=pl.int_range(pl.len()).over("patient_key"),
            n_scored=pl.len().over("patient_key").cast(pl.Int32),
        )
    )
    latest = ordered.filter(pl.col("rank") == pl.col("n_scored") - 1).select(
        "patient_key",
        "n_scored",
        pl.col("record_id").alias("latest_record_id"),
        pl.col("labels_predicted").alias("latest_labels"),
        pl.col("label_probs").alias("latest_probs"),
    )
    previous = ordered.filter(pl.col("rank") == pl.col("n_scored") - 2).select(
        "patient_key", pl.col("labels_predicted").alias("previous_labels")
    )
    flagged = (
        ordered.select(
            "patient_key", "record_id", "recorded_at", "rank", pl.col("labels_predicted").alias("label")
        )
        .explode("label")
        .filter(pl.col("label").is_not_null())
        .group_by("patient_key", "label")
        .agg(
            pl.col("record_id").sort_by("rank").first().alias("first_flagged_record_id"),
            pl.col("recorded_at").sort_by("rank").first().alias("first_flagged_at"),
            pl.len().cast(pl.Int32).alias("n_flagged"),
        )
    )
    in_latest = pl.col("latest_labels").list.contains(pl.col("label"))
    in_previous = pl.col("previous_labels").list.contains(pl.col("label"))
    out = (
        flagged.join(latest, on="patient_key", how="left")
        .join(previous, on="patient_key", how="left")
        .with_columns(
            latest_score=pl.col("latest_probs")
            .list.get(pl.col("label").replace_strict(index, return_dtype=pl.Int64))
            .cast(pl.Float32),
            new_finding=pl.when(pl.col("n_scored") >= 2).then(in_latest & ~in_previous),
        )
        .select(
            "patient_key",
            "label",
            "first_flagged_record_id",
            "first_flagged_at",
            "n_flagged",
            "n_scored",
            "latest_record_id",
            "latest_score",
            "new_finding",
        )
        .sort("patient_key", "label")
    )
    return out.collect()
