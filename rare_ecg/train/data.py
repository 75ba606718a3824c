"""Data feeding for training: a pinned snapshot of the lake, the split plan, and the Ray Data stream.

The driver pins `ecg_records` and `ecg_waveforms` to the versions it reads at start (recorded in MLflow),
reads the small per-record columns of `ecg_records` (split, age, sex, machine measurements), and hands
Ray Data the waveform table's Parquet files of that version. Read tasks join each block with the
attributes of the split's records and cut every record into its 10 s windows; each worker streams its
shard in batches (`get_dataset_shard`), so no process ever holds the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from rare_ecg.lake.files import parquet_files_dataset
from rare_ecg.lake.paths import content_id, storage_options, table_uri
from rare_ecg.lake.schema import ECG_RECORDS, ECG_WAVEFORMS
from rare_ecg.model.config import MEASUREMENTS
from rare_ecg.model.inputs import window_beat_positions
from rare_ecg.train.splits import assign_splits

if TYPE_CHECKING:
    import ray.data

TRAINING_TABLES = (ECG_RECORDS, ECG_WAVEFORMS)
ATTRIBUTE_COLUMNS = ("age", "sex_female", *MEASUREMENTS)
WAVEFORM_COLUMNS = ["record_id", "n_windows", "n_samples", "signal", "lead_mask", "beat_positions"]


class LakeInputError(ValueError):
    """The lake cannot feed this training run (missing table, unknown version, empty split, ...)."""


@dataclass(frozen=True)
class LakeSnapshot:
    lake: str
    versions: dict[str, int]  # table name -> pinned Delta version

    def uri(self, table: str) -> str:
        return table_uri(self.lake, table)

    def files(self, table: str) -> list[str]:
        from deltalake import DeltaTable

        return list(DeltaTable(self.uri(table), self.versions[table], storage_options()).file_uris())

    def content_id(self) -> str:
        """A digest of the data files the pinned versions hold (rare_ecg.lake.paths.content_id)."""
        return content_id(self.lake, self.versions)

    def read(self, table: str, columns: list[str]) -> pl.DataFrame:
        return pl.read_delta(
            self.uri(table), version=self.versions[table], columns=columns, storage_options=storage_options()
        )


def open_snapshot(lake: str, versions: dict[str, int] | None = None) -> LakeSnapshot:
    """Pin each training table to ``versions[table]`` or, where not given, its latest version."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    pinned: dict[str, int] = {}
    for table in TRAINING_TABLES:
        uri = table_uri(lake, table)
        try:
            latest = DeltaTable(uri, storage_options=storage_options()).version()
        except TableNotFoundError:
            raise LakeInputError(
                f"the lake {lake} has no {table} table at {uri} (run `rare-ecg ingest` first)"
            ) from None
        wanted = (versions or {}).get(table, latest)
        if not 0 <= wanted <= latest:
            raise LakeInputError(f"{table} has no version {wanted}; versions 0-{latest} exist")
        pinned[table] = wanted
    return LakeSnapshot(lake=lake, versions=pinned)


def waveform_rates(snapshot: LakeSnapshot) -> list[int]:
    return sorted(snapshot.read(ECG_WAVEFORMS, ["fs_hz"])["fs_hz"].unique().to_list())


def split_plan(snapshot: LakeSnapshot) -> pl.DataFrame:
    """One row per record that has a waveform: record_id, split, n_windows and the attribute targets
    (age in years, sex_female 1/0, machine measurements; null where unknown)."""
    records = snapshot.read(
        ECG_RECORDS, ["record_id", "patient_key", "split_fold", "age", "sex", *MEASUREMENTS]
    )
    waves = snapshot.read(ECG_WAVEFORMS, ["record_id", "n_windows"])
    return (
        assign_splits(records)
        .join(waves, on="record_id", how="inner")
        .with_columns(
            pl.when(pl.col("sex") == "female")
            .then(1.0)
            .when(pl.col("sex") == "male")
            .then(0.0)
            .otherwise(None)
            .cast(pl.Float32)
            .alias("sex_female"),
            *(pl.col(c).cast(pl.Float32) for c in ("age", *MEASUREMENTS)),
        )
        .select("record_id", "split", "n_windows", *ATTRIBUTE_COLUMNS)
    )


def windows_of_block(
    block: pa.Table, attributes: pa.Table, n_leads: int, window: int
) -> dict[str, np.ndarray]:
    """Waveform rows joined with their records' attributes (rows without any are dropped), cut into
    10 s windows: signal (M, 12, window), lead_mask (M, 12), beat_positions (M,) object arrays of R
    peaks in each window's samples, and one float32 column per attribute (NaN where unknown)."""
    # (Arrow's hash join does not carry list columns)
    where = pc.index_in(block["record_id"], value_set=attributes["record_id"])
    keep = pc.is_valid(where)
    joined = block.filter(keep)
    targets = attributes.take(pc.filter(where, keep))
    n_windows = joined["n_windows"].to_numpy().astype(np.int64)
    total = int(n_windows.sum())
    signal = np.empty((total, n_leads, window), dtype=np.float32)
    beats = np.empty(total, dtype=object)
    row_of_window = np.repeat(np.arange(joined.num_rows), n_windows)
    flat = pc.list_flatten(joined["signal"]).to_numpy().astype(np.float32, copy=False)
    offsets = np.concatenate([[0], np.cumsum(joined["n_samples"].to_numpy().astype(np.int64) * n_leads)])
    positions = joined["beat_positions"].to_pylist()
    out = 0
    for i in range(joined.num_rows):
        record = flat[offsets[i] : offsets[i + 1]].reshape(n_leads, -1)
        peaks = np.asarray(positions[i], dtype=np.int64)
        for w in range(n_windows[i]):
            signal[out] = record[:, w * window : (w + 1) * window]
            beats[out] = window_beat_positions(peaks, w, window).astype(np.int32)
            out += 1
    lead_mask = pc.list_flatten(joined["lead_mask"]).to_numpy(zero_copy_only=False).reshape(-1, n_leads)
    batch: dict[str, np.ndarray] = {
        "signal": signal,
        "lead_mask": lead_mask[row_of_window],
        "beat_positions": beats,
    }
    for column in ATTRIBUTE_COLUMNS:
        values = targets[column].to_numpy(zero_copy_only=False).astype(np.float32)
        batch[column] = values[row_of_window]
    return batch


def _windows_task(
    block: pa.Table, attributes_ref: Any, n_leads: int, window: int
) -> dict[str, np.ndarray]:  # runs in Ray Data tasks
    import ray

    return windows_of_block(block, ray.get(attributes_ref), n_leads, window)


def split_attributes(plan: pl.DataFrame, split: str) -> pa.Table:
    """record_id and the attribute targets of ``split``'s records (what `windows_of_block` joins)."""
    attributes = plan.filter(pl.col("split") == split).select("record_id", *ATTRIBUTE_COLUMNS).to_arrow()
    return attributes.set_column(0, "record_id", pc.cast(attributes["record_id"], pa.string()))


def split_dataset(
    snapshot: LakeSnapshot,
    plan: pl.DataFrame,
    split: str,
    n_leads: int,
    window: int,
    read_cpus: float = 0.25,
) -> ray.data.Dataset:
    """The windows of ``split``'s records as a streaming Ray dataset (each epoch re-reads the files)."""
    import ray

    attributes = split_attributes(plan, split)
    return parquet_files_dataset(
        snapshot.files(ECG_WAVEFORMS), WAVEFORM_COLUMNS, num_cpus=read_cpus
    ).map_batches(
        partial(_windows_task, attributes_ref=ray.put(attributes), n_leads=n_leads, window=window),
        batch_format="pyarrow",
        num_cpus=read_cpus,
    )
