"""The atomic, idempotent Delta commit: workers write Parquet files, the driver commits them once.

Ray Data's `write_delta` is alpha and not idempotent, so every job here works in two phases:
1. workers write immutable Parquet files straight into the table folder (`write_part_files`); until a
   commit names them they are invisible to every Delta reader, so a killed run leaves no partial rows
   (only orphan files, which `vacuum` removes);
2. the driver commits all of a run's files of one table in ONE Delta transaction that carries the run id
   as an application transaction (`commit_files`); `is_committed` tells a retried run what is done.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Transaction
from deltalake.exceptions import CommitFailedError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

from rare_ecg.lake.paths import filesystem, storage_options, table_uri
from rare_ecg.lake.schema import PARTITION_BY, SCHEMAS, STATS_COLUMNS


@dataclass(frozen=True)
class PartFile:
    """A Parquet file written into a table folder, not yet committed."""

    path: str  # relative to the table root
    size: int
    partition_values: dict[str, str | None]
    modification_time: int  # ms since epoch
    stats: str  # Delta per-file statistics (JSON)
    num_rows: int

    def to_row(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "partition_values": json.dumps(self.partition_values),
            "modification_time": self.modification_time,
            "stats": self.stats,
            "num_rows": self.num_rows,
        }

    @staticmethod
    def from_row(row: Mapping[str, Any]) -> PartFile:
        return PartFile(
            path=row["path"],
            size=int(row["size"]),
            partition_values=json.loads(row["partition_values"]),
            modification_time=int(row["modification_time"]),
            stats=row["stats"],
            num_rows=int(row["num_rows"]),
        )


def app_id(job: str, run_id: str) -> str:
    return f"rare-ecg/{job}/{run_id}"


class CommitConflict(Exception):
    """Another writer committed to the table since the version a pinned commit was prepared against."""


def _open_table(uri: str, version: int | None = None) -> DeltaTable | None:
    opts = storage_options()
    if not DeltaTable.is_deltatable(uri, storage_options=opts):
        return None
    return DeltaTable(uri, version=version, storage_options=opts)


def table_version(lake: str, table_name: str) -> int | None:
    """The table's latest version, None when it does not exist yet."""
    dt = _open_table(table_uri(lake, table_name))
    return None if dt is None else dt.version()


def is_committed(lake: str, table_name: str, job: str, run_id: str) -> bool:
    """Whether this run already committed to this table (its application transaction is in the log)."""
    dt = _open_table(table_uri(lake, table_name))
    return dt is not None and dt.transaction_version(app_id(job, run_id)) is not None


def _json_scalar(value: Any) -> Any:
    if isinstance(value, float) and value != value:  # NaN is not valid JSON
        return None
    return value


def _delta_timestamp(value: datetime, tz: str | None, round_up: bool) -> str:
    """A timestamp as delta-rs writes it in statistics (millisecond precision: a max is rounded up, so a
    file is never skipped for a row in its last partial millisecond)."""
    if round_up and value.microsecond % 1000:
        value = value + timedelta(microseconds=1000 - value.microsecond % 1000)
    if tz is None:
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class StatsAccumulator:
    """Delta per-file statistics of a file written in pieces (row groups): row count, and min/max/null
    count of string, numeric and timestamp columns, merged over every piece."""

    def __init__(self, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self.num_rows = 0
        self.nulls: dict[str, int] = {}
        self.types: dict[str, pa.DataType] = {}
        self.mins: dict[str, Any] = {}
        self.maxs: dict[str, Any] = {}

    def update(self, table: pa.Table) -> StatsAccumulator:
        self.num_rows += table.num_rows
        for name in self.columns:
            if name not in table.column_names:
                continue
            col = table.column(name)
            self.types[name] = col.type
            self.nulls[name] = self.nulls.get(name, 0) + col.null_count
            if not (
                pa.types.is_timestamp(col.type)
                or pa.types.is_string(col.type)
                or pa.types.is_integer(col.type)
                or pa.types.is_floating(col.type)
            ) or col.null_count == len(col):
                continue
            mm = pc.min_max(col)
            lo, hi = mm["min"].as_py(), mm["max"].as_py()
            if pa.types.is_floating(col.type) and (lo != lo or hi != hi):
                self.mins[name] = self.maxs[name] = float("nan")  # NaN anywhere: no bounds for the file
                continue
            if name in self.mins:
                old_lo, old_hi = self.mins[name], self.maxs[name]
                if old_lo != old_lo:  # an earlier piece had NaN
                    continue
                lo, hi = min(lo, old_lo), max(hi, old_hi)
            self.mins[name], self.maxs[name] = lo, hi
        return self

    def json(self) -> str:
        mins: dict[str, Any] = {}
        maxs: dict[str, Any] = {}
        for name, lo in self.mins.items():
            hi = self.maxs[name]
            if isinstance(lo, float) and lo != lo:
                continue
            col_type = self.types[name]
            if pa.types.is_timestamp(col_type):
                tz = cast(pa.TimestampType, col_type).tz
                mins[name] = _delta_timestamp(lo, tz, round_up=False)
                maxs[name] = _delta_timestamp(hi, tz, round_up=True)
            else:
                mins[name], maxs[name] = _json_scalar(lo), _json_scalar(hi)
        return json.dumps(
            {"numRecords": self.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": self.nulls}
        )


def file_stats(table: pa.Table, columns: Sequence[str]) -> str:
    """Delta statistics: row count, and min/max/null count of string, numeric and timestamp columns."""
    return StatsAccumulator(columns).update(table).json()


# Codec of every part file: lz4 (Parquet's LZ4_RAW, read by polars, pyarrow, delta-rs, DuckDB, Spark
# 3.3+). zstd level 1 made files a quarter smaller (the raw 500 Hz signal: 53 vs 71 KB a record) at about
# 0.2 ms more CPU a record at 500 Hz, a tenth of an ingest worker's time (benchmarks/README.md).
PARQUET_COMPRESSION = "lz4"


def _float_list_encoding(schema: pa.Schema) -> dict[str, str] | None:
    cols = {
        f"{f.name}.list.element": "BYTE_STREAM_SPLIT"
        for f in schema
        if pa.types.is_list(f.type) and pa.types.is_floating(f.type.value_type)
    }
    return cols or None


def _partitions(
    table: pa.Table, partition_cols: Sequence[str]
) -> list[tuple[dict[str, str | None], pa.Table]]:
    """(partition values, rows without the partition columns) of each partition value in ``table``."""
    if not partition_cols:
        return [({}, table)]
    single = [pc.unique(table.column(c)) for c in partition_cols]
    if all(len(u) == 1 for u in single):  # the usual batch: one source; no copy of its rows
        values = {
            c: None if u[0].as_py() is None else str(u[0].as_py())
            for c, u in zip(partition_cols, single, strict=True)
        }
        return [(values, table.drop_columns(list(partition_cols)))]
    keys = table.select(partition_cols).group_by(partition_cols).aggregate([])
    out = []
    for key in keys.to_pylist():
        mask = None
        for col, value in key.items():
            cond = pc.equal(table.column(col), value)
            mask = cond if mask is None else pc.and_(mask, cond)
        part = table.filter(mask).drop_columns(partition_cols)
        out.append(({c: None if v is None else str(v) for c, v in key.items()}, part))
    return out


@dataclass
class _OpenFile:
    rel: str
    values: dict[str, str | None]
    writer: pq.ParquetWriter
    stats: StatsAccumulator


class PartFileWriter:
    """Streams a table's rows into one Parquet file per partition value, a row group per ``write``,
    under the table folder; ``close`` returns the PartFiles to commit (statistics over all row groups).

    A worker task that processes many batches writes one file per table instead of one per batch:
    fewer, larger files for readers and fewer add actions in the commit, at flat memory. Names carry
    the run id and a random part, so concurrent workers and retried runs never overwrite each other.
    """

    def __init__(
        self, lake: str, table_name: str, run_id: str, options: dict[str, str] | None = None
    ) -> None:
        self.table_name = table_name
        self.run_id = run_id
        self.schema = SCHEMAS[table_name]
        self.partition_cols = PARTITION_BY[table_name]
        # ``options``: a worker gets the driver's object-store options (default: the environment's)
        self.fs, self.base = filesystem(table_uri(lake, table_name), options)
        self.open: dict[tuple[str | None, ...], _OpenFile] = {}
        # Row-group statistics only where a reader can use them (not on signal lists and blobs: they
        # cost a third of writing a waveform and nothing reads them; Delta's own stats are above).
        self.stat_columns = [
            f.name
            for f in self.schema
            if f.name not in self.partition_cols
            and not (pa.types.is_list(f.type) or pa.types.is_binary(f.type))
        ]

    def write(self, table: pa.Table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        if table.num_rows == 0:
            return
        for values, part in _partitions(table, self.partition_cols):
            key = tuple(values[c] for c in self.partition_cols)
            f = self.open.get(key)
            if f is None:
                folder = "/".join(f"{c}={values[c]}" for c in self.partition_cols)
                name = f"part-{self.run_id}-{uuid.uuid4().hex}.parquet"
                rel = f"{folder}/{name}" if folder else name
                self.fs.create_dir(f"{self.base}/{folder}" if folder else self.base, recursive=True)
                writer = pq.ParquetWriter(
                    f"{self.base}/{rel}",
                    part.schema,
                    filesystem=self.fs,
                    compression=PARQUET_COMPRESSION,
                    # dictionary encoding of millions of distinct signal values costs more CPU than all
                    # the rest of a batch's write; float signals compress better split by byte stream
                    use_dictionary=False,
                    column_encoding=_float_list_encoding(part.schema),
                    write_statistics=self.stat_columns,
                )
                f = self.open[key] = _OpenFile(
                    rel, values, writer, StatsAccumulator(STATS_COLUMNS[self.table_name])
                )
            f.writer.write_table(part)
            f.stats.update(part)

    def close(self) -> list[PartFile]:
        out: list[PartFile] = []
        for f in self.open.values():
            f.writer.close()
            info = self.fs.get_file_info(f"{self.base}/{f.rel}")
            out.append(
                PartFile(
                    path=f.rel,
                    size=int(info.size or 0),
                    partition_values=f.values,
                    modification_time=int(time.time() * 1000),
                    stats=f.stats.json(),
                    num_rows=f.stats.num_rows,
                )
            )
        self.open.clear()
        return out


def write_part_files(
    table: pa.Table,
    lake: str,
    table_name: str,
    run_id: str,
    options: dict[str, str] | None = None,
) -> list[PartFile]:
    """Write `table` (already in the table's schema) as Parquet files under the table folder: one file
    per partition value (``PartFileWriter`` in one piece)."""
    writer = PartFileWriter(lake, table_name, run_id, options)
    writer.write(table)
    return writer.close()


def commit_files(
    lake: str,
    table_name: str,
    files: Sequence[PartFile],
    *,
    job: str,
    run_id: str,
    metadata: Mapping[str, Any] | None = None,
    replace_partition: Mapping[str, str] | None = None,
    read_version: int | None = None,
    pinned: bool = False,
) -> bool:
    """Commit a run's files to one table in a single transaction. Returns False if the run had already
    committed (its application transaction is in the log): a retried run never duplicates rows.

    ``replace_partition`` ({column: value}): the same transaction removes every file of that partition,
    so a run that recomputes a partition whole (patient_findings of a model version) replaces it
    atomically: readers see the old rows or the new ones, never both or neither.

    ``pinned``: commit only on top of ``read_version`` (None: the table does not exist yet); raise
    CommitConflict when another writer committed since, so the caller can re-check what it read.
    """
    uri = table_uri(lake, table_name)
    schema = SCHEMAS[table_name]
    partition_by = PARTITION_BY[table_name] or None
    actions = [
        AddAction(f.path, f.size, f.partition_values, f.modification_time, True, f.stats) for f in files
    ]
    props = CommitProperties(
        custom_metadata={"rare_ecg.job": job, "rare_ecg.run_id": run_id, **(metadata or {})},
        app_transactions=[Transaction(app_id=app_id(job, run_id), version=1)],
    )
    if pinned:
        props.max_commit_retries = 0
    dt = _open_table(uri, read_version) if pinned else _open_table(uri)
    if dt is None:
        if pinned and read_version is not None:
            raise CommitConflict(f"{uri} version {read_version} is not readable")
        try:
            create_table_with_add_actions(
                uri,
                _delta_schema(schema),
                actions,
                mode="error",
                partition_by=partition_by,
                name=table_name,
                storage_options=storage_options(),
                commit_properties=props,
            )
            return True
        except Exception as exc:  # delta-rs raises a generic error when another writer created it first
            dt = _open_table(uri)
            if dt is None:
                raise
            if pinned:
                raise CommitConflict(f"{uri} was created by another writer") from exc
    elif pinned and dt.version() != read_version:
        raise CommitConflict(f"{uri} is at version {dt.version()}, not {read_version}")
    if dt.transaction_version(app_id(job, run_id)) is not None:
        return False
    removes = _partition_removes(dt, replace_partition) if replace_partition else []
    try:
        dt.create_write_transaction(
            list[AddAction | RemoveAction]([*actions, *removes]),
            mode="append",
            schema=_delta_schema(schema),
            partition_by=partition_by,
            commit_properties=props,
        )
    except CommitFailedError as exc:
        if pinned:
            raise CommitConflict(f"{uri} moved past version {read_version}: {exc}") from exc
        raise
    return True


def replace_run_files(
    lake: str,
    table_name: str,
    remove: Sequence[PartFile],
    add: Sequence[PartFile],
    *,
    job: str,
    run_id: str,
    attempt: int,
) -> None:
    """One transaction that swaps some of a run's committed files for rewritten ones (a concurrent run
    committed some of the same records first: this run's copies leave the table atomically)."""
    uri = table_uri(lake, table_name)
    dt = _open_table(uri)
    if dt is None:
        raise FileNotFoundError(f"{uri} is not a Delta table")
    now = int(time.time() * 1000)
    actions: list[AddAction | RemoveAction] = [
        RemoveAction(f.path, True, now, f.size, f.partition_values) for f in remove
    ]
    actions += [
        AddAction(f.path, f.size, f.partition_values, f.modification_time, True, f.stats) for f in add
    ]
    dt.create_write_transaction(
        actions,
        mode="append",
        schema=_delta_schema(SCHEMAS[table_name]),
        partition_by=PARTITION_BY[table_name] or None,
        commit_properties=CommitProperties(
            custom_metadata={
                "rare_ecg.job": job,
                "rare_ecg.run_id": run_id,
                "rare_ecg.attempt": str(attempt),
            },
            app_transactions=[Transaction(app_id=app_id(job, run_id), version=attempt)],
        ),
    )


def _partition_removes(dt: DeltaTable, partition: Mapping[str, str]) -> list[RemoveAction]:
    """Remove actions for every live file of one partition."""
    now = int(time.time() * 1000)
    files = pa.table(dt.get_add_actions(flatten=False)).select(["path", "size_bytes", "partition"])
    out = []
    for row in files.to_pylist():
        values = row["partition"] or {}
        if all(values.get(k) == v for k, v in partition.items()):
            out.append(RemoveAction(row["path"], True, now, row["size_bytes"], values))
    return out


def _delta_schema(schema: pa.Schema) -> Any:
    from deltalake import Schema

    return Schema.from_arrow(schema)
