"""The split by patient: PTB-XL folds where present, a stable hash elsewhere, never a patient in two splits."""

from __future__ import annotations

import polars as pl
import pytest

from rare_ecg.train.splits import SPLITS, assign_splits, patient_bucket, split_of_bucket


def test_ptbxl_folds_map_to_train_validation_test() -> None:
    records = pl.DataFrame(
        {"record_id": [f"r{i}" for i in range(1, 11)], "patient_key": [f"p{i}" for i in range(1, 11)],
         "split_fold": list(range(1, 11))},
        schema_overrides={"split_fold": pl.Int8},
    )  # fmt: skip
    assert assign_splits(records)["split"].to_list() == ["train"] * 8 + ["validation", "test"]
    with pytest.raises(ValueError, match="outside 1-10"):
        split_of_bucket(11)


def test_hash_split_keeps_each_patient_whole_is_stable_and_has_about_the_ptbxl_shares() -> None:
    n_patients = 3000
    records = pl.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(3 * n_patients)],
            "patient_key": [f"patient-{i % n_patients}" for i in range(3 * n_patients)],
            "split_fold": [None] * (3 * n_patients),
        },
        schema_overrides={"split_fold": pl.Int8},
    )
    out = assign_splits(records)
    per_patient = out.group_by("patient_key").agg(pl.col("split").n_unique().alias("n"))
    assert per_patient["n"].max() == 1
    shares = out.group_by("split").len().with_columns(pl.col("len") / out.height)
    share = dict(shares.rows())
    assert set(share) == set(SPLITS)
    assert share["train"] == pytest.approx(0.8, abs=0.03)
    assert share["validation"] == pytest.approx(0.1, abs=0.02)
    # a fixed value: the hash must never change between versions, or evaluation patients leak into training
    assert [patient_bucket(k) for k in ("a", "patient-1", "")] == [1, 9, 3]
    # a record without a patient key is its own patient: the split follows its record_id
    alone = assign_splits(
        pl.DataFrame({"record_id": ["x"], "patient_key": [None], "split_fold": [None]},
                     schema={"record_id": pl.String, "patient_key": pl.String, "split_fold": pl.Int8})
    )  # fmt: skip
    assert alone["split"].item() == split_of_bucket(patient_bucket("x"))
