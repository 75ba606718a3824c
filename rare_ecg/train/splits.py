"""The one split of the lake by patient, used by pretraining, fine-tuning, evaluation and scoring.

PTB-XL's own `strat_fold` (ecg_records.split_fold) where present: folds 1-8 train, 9 validation, 10 test,
as its authors recommend (folds are by patient). Elsewhere a stable hash of `patient_key` (a record
without one is its own patient): SHA-256 of the key modulo 10, with the same 8 / 1 / 1 shares. Either
way every ECG of a patient lands in one split, on every machine, in every run.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import polars as pl

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS: tuple[str, ...] = (TRAIN, VALIDATION, TEST)
Split = Literal["train", "validation", "test"]
N_BUCKETS = 10  # bucket 1-8 train, 9 validation, 10 test (PTB-XL's fold numbering)


def patient_bucket(key: str) -> int:
    """1..10, stable across processes and versions (unlike Python's or polars' own hashes)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % N_BUCKETS + 1


def split_of_bucket(bucket: int) -> Split:
    if not 1 <= bucket <= N_BUCKETS:
        raise ValueError(f"fold {bucket} is outside 1-{N_BUCKETS}")
    if bucket <= 8:
        return "train"
    return "validation" if bucket == 9 else "test"


def assign_splits(records: pl.DataFrame) -> pl.DataFrame:
    """``records`` (record_id, patient_key, split_fold; as in ecg_records) with a `split` column added."""
    keys = records.select(pl.coalesce("patient_key", "record_id")).to_series().to_list()
    hashed = pl.Series("hash_fold", [patient_bucket(k) for k in keys], dtype=pl.Int8)
    fold = pl.coalesce(pl.col("split_fold").cast(pl.Int8), pl.lit(hashed))
    return records.with_columns(
        pl.when(fold <= 8)
        .then(pl.lit(TRAIN))
        .when(fold == 9)
        .then(pl.lit(VALIDATION))
        .otherwise(pl.lit(TEST))
        .alias("split")
    )
