"""Ground-truth localization of synthetic cohorts: ``annotations.parquet`` (or ``annotations.csv``) at an
archive's root.

Columns ``source_path,label,lead,start_sample,end_sample`` (samples at the record's native rate, end
exclusive), written by the synthetic cohort generator. The Parquet sidecar is what scales (the CSV is
about 7 KB per record: 7 GB at a million records): a worker reads its footer once (min/max source_path
per row group) and then only the row groups that can hold the records it reads, one at a time, so no
process ever loads the whole file. The CSV (small archives, hand-made ones) is loaded once per process
and file version.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rare_ecg.archive.record import REASON_BAD_METADATA, Annotation, Annotations, RecordError
from rare_ecg.archive.safety import inside_root
from rare_ecg.signals.leads import normalize_lead_name

ANNOTATIONS_FILE = "annotations.csv"
ANNOTATIONS_PARQUET = "annotations.parquet"
ANNOTATION_COLUMNS = ("source_path", "label", "lead", "start_sample", "end_sample")


@lru_cache(maxsize=64)
def _sidecars(folder: str, folder_mtime_ns: int) -> tuple[str | None, str | None]:
    """Which annotation files the archive root holds (Parquet, CSV), looked up once per state of the
    root folder (adding or removing a file changes its mtime): most archives have neither, and
    checking both for every record was a twentieth of reading one."""
    names = set(os.listdir(folder))
    return (
        ANNOTATIONS_PARQUET if ANNOTATIONS_PARQUET in names else None,
        ANNOTATIONS_FILE if ANNOTATIONS_FILE in names else None,
    )


def annotations_for(root: Path, source_path: str) -> Sequence[Annotation]:
    """The annotations of one record; empty when the archive has no annotations.csv.

    Raises RecordError(bad_metadata) when the file is malformed: ground truth is never half-attached.
    """
    folder = os.fspath(root)
    parquet_name, csv_name = _sidecars(folder, os.stat(folder).st_mtime_ns)
    if parquet_name is not None:
        parquet = inside_root(root, os.path.join(root, parquet_name), source_path)
        try:
            stat = os.stat(parquet)
        except FileNotFoundError:
            pass
        else:
            try:
                return _from_parquet(parquet, stat.st_mtime_ns, stat.st_size, source_path)
            except (ValueError, OSError) as exc:
                raise RecordError(REASON_BAD_METADATA, f"{parquet}: {exc}") from exc
    if csv_name is None:
        return []
    path = inside_root(root, os.path.join(root, csv_name), source_path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return []
    try:
        loaded = _load(path, stat.st_mtime_ns, stat.st_size)
    except ValueError as exc:
        # Not a crash: every record of the archive lands in ecg_rejects, naming the broken line.
        raise RecordError(REASON_BAD_METADATA, str(exc)) from exc
    return list(loaded.get(source_path, ()))


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> dict[str, tuple[Annotation, ...]]:
    """Parse the whole file; mtime and size are part of the cache key so a rewritten file is re-read."""
    by_record: dict[str, list[Annotation]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ANNOTATION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(ANNOTATION_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = int(row["start_sample"]), int(row["end_sample"])
            except ValueError:
                raise ValueError(
                    f"{path} line {line}: start/end samples {row['start_sample']!r}, {row['end_sample']!r} "
                    "are not integers"
                ) from None
            lead = normalize_lead_name(row["lead"]) or row["lead"].strip()
            by_record.setdefault(row["source_path"], []).append(
                Annotation(label=row["label"], lead=lead, start_sample=start, end_sample=end)
            )
    return {k: tuple(v) for k, v in by_record.items()}


@lru_cache(maxsize=4)
def _row_group_ranges(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) source_path of every row group, from the footer alone."""
    meta = pq.ParquetFile(path).metadata
    names = meta.schema.to_arrow_schema().names
    missing = [c for c in ANNOTATION_COLUMNS if c not in names]
    if missing:
        raise ValueError(f"missing columns {missing}; expected {list(ANNOTATION_COLUMNS)}")
    col = names.index("source_path")
    lo, hi = [], []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(col).statistics
        if stats is None or not stats.has_min_max:
            lo.append("")  # no statistics: the group may hold anything
            hi.append("\U0010ffff")
        else:
            lo.append(stats.min)
            hi.append(stats.max)
    return np.array(lo, dtype=object), np.array(hi, dtype=object)


@dataclass(frozen=True)
class _Group:
    """One row group's annotations as columns sorted by record, and each record's slice of them."""

    spans: dict[str, tuple[int, int]]
    labels: list[str]
    leads: list[str]
    starts: list[int]
    ends: list[int]

    def get(self, source_path: str) -> Annotations:
        lo, hi = self.spans.get(source_path, (0, 0))
        return Annotations(self.labels[lo:hi], self.leads[lo:hi], self.starts[lo:hi], self.ends[lo:hi])


@lru_cache(maxsize=2)
def _row_group(path: str, mtime_ns: int, index: int) -> _Group:
    """One row group's annotations, by record (two cached: a batch's records are usually neighbours).
    Columnar: a record's Annotation objects are made when it is read (a synthetic record has ~185), and
    lead names are normalised once per distinct name, not per row."""
    t = pq.ParquetFile(path).read_row_group(index, columns=list(ANNOTATION_COLUMNS))
    t = t.take(pc.sort_indices(t.column("source_path")))  # stable: a record keeps its file order
    paths = t.column("source_path").to_pylist()
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for i in range(1, len(paths) + 1):
        if i == len(paths) or paths[i] != paths[start]:
            spans[paths[start]] = (start, i)
            start = i
    raw_leads = t.column("lead").to_pylist()
    names = {lead: normalize_lead_name(lead) or lead.strip() for lead in set(raw_leads)}
    return _Group(
        spans=spans,
        labels=t.column("label").to_pylist(),
        leads=[names[lead] for lead in raw_leads],
        starts=[int(v) for v in t.column("start_sample").to_pylist()],
        ends=[int(v) for v in t.column("end_sample").to_pylist()],
    )


def _from_parquet(path: str, mtime_ns: int, size: int, source_path: str) -> Annotations:
    lo, hi = _row_group_ranges(path, mtime_ns, size)
    parts = [
        _row_group(path, mtime_ns, int(index)).get(source_path)
        for index in np.flatnonzero((lo <= source_path) & (hi >= source_path))
    ]
    if len(parts) == 1:
        return parts[0]
    return Annotations(
        [v for p in parts for v in p.labels],
        [v for p in parts for v in p.leads],
        [v for p in parts for v in p.starts],
        [v for p in parts for v in p.ends],
    )


def write_annotations_parquet(csv_path: Path, parquet_path: Path, row_group_rows: int = 50_000) -> int:
    """Convert an annotations CSV into the Parquet sidecar, streaming (flat memory whatever its size).
    Returns the number of rows."""
    import pyarrow as pa
    from pyarrow import csv as pacsv

    types = {"source_path": pa.string(), "label": pa.string(), "lead": pa.string(),
             "start_sample": pa.int32(), "end_sample": pa.int32()}  # fmt: skip
    schema = pa.schema([(c, types[c]) for c in ANNOTATION_COLUMNS])
    rows = 0
    reader = pacsv.open_csv(
        csv_path,
        read_options=pacsv.ReadOptions(block_size=8 << 20),
        convert_options=pacsv.ConvertOptions(column_types=types, include_columns=list(ANNOTATION_COLUMNS)),
    )
    with pq.ParquetWriter(parquet_path, schema, compression="zstd") as writer:
        pending: list[pa.RecordBatch] = []
        n_pending = 0
        for batch in reader:
            pending.append(batch)
            n_pending += batch.num_rows
            if n_pending >= row_group_rows:
                writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=row_group_rows)
                rows += n_pending
                pending, n_pending = [], 0
        if pending or rows == 0:
            writer.write_table(pa.Table.from_batches(pending, schema), row_group_size=row_group_rows)
            rows += n_pending
    return rows
