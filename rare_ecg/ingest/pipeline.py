"""The ingestion job on Ray Data: list an archive, read/validate/preprocess on workers, commit once.

Flow: the driver lists record refs from the archive's index (no signal reads) -> Ray Data tasks read
each record, preprocess it with the canonical function and write Parquet part files for every table
into the lake -> the driver resolves duplicates (deterministically: the smallest source path wins),
writes the rejects, and commits each table in one Delta transaction carrying the run id.
Nothing is lost: every listed record ends up ingested, rejected (with reason and detail) or skipped
because the lake already holds the same record with the same checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from rare_ecg.archive.base import ArchiveReader
from rare_ecg.archive.record import (
    REASON_DUPLICATE,
    REASON_READ_ERROR,
    REASON_UNUSABLE_SIGNAL,
    Annotation,
    EcgRecord,
    RecordError,
    RecordRef,
)
from rare_ecg.config import Settings
from rare_ecg.ingest.rows import annotations_table, build_rows, signal_sha256
from rare_ecg.lake import commit, identity
from rare_ecg.lake.paths import filesystem, normalize_lake, storage_options, table_uri
from rare_ecg.lake.schema import (
    ECG_ANNOTATIONS,
    ECG_LABELS,
    ECG_RECORDS,
    ECG_REJECTS,
    ECG_WAVEFORMS,
    SCHEMAS,
)
from rare_ecg.runtime import init_ray, tune_allocator
from rare_ecg.signals.preprocess import preprocess_many

log = logging.getLogger(__name__)

JOB = "ingest"
# Commit order: the records table last, so a record visible there has its labels and waveform.
COMMIT_ORDER = (ECG_REJECTS, ECG_LABELS, ECG_ANNOTATIONS, ECG_WAVEFORMS, ECG_RECORDS)
WORKER_TABLES = (ECG_RECORDS, ECG_WAVEFORMS, ECG_LABELS, ECG_ANNOTATIONS)

# The listing is spooled to Parquet under the lake (readable wherever workers can write part files), one
# run-scoped folder removed after the run: the driver holds one file's refs at a time, never the archive's.
STAGING_PREFIX = "_ingest_listing-"
# Worker batches per staged listing file: the first files hold one batch each (a small archive still
# spreads over every worker), later ones SPOOL_BATCHES (a million records make ~4,000 files).
SPOOL_BATCHES = 4
# Refs per Ray task at most (about 6 s of a worker at 100 Hz). Tasks are equal shares of the staged
# files, a multiple of the workers: Ray Data leaves a worker idle ~0.15 s between one task and its next,
# so the fewer tasks the better, and equal ones started together finish together (benchmarks/README.md:
# 12 tasks of 136-1,024 refs took 4.7 s for 5,000 records, 2 tasks 4.1 s). The cap keeps progress and
# part files (one per task and table: ~90 MB of ecg_records at 100 Hz, ~300 MB at 500 Hz) bounded.
MAX_TASK_REFS = 4096

STATUS_INGESTED = "ingested"
STATUS_REJECTED = "rejected"
STATUS_SKIPPED = "skipped"

OUTCOME_SCHEMA = pa.schema(
    [
        ("batch_key", pa.string()),  # the Ray task that wrote the record's part files
        ("record_id", pa.string()),
        ("source_path", pa.string()),
        ("checksum", pa.string()),
        ("signal_sha256", pa.string()),
        ("content_key", pa.uint64()),  # the first 64 bits of signal_sha256: in-run duplicates by number
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("labels", pa.list_(pa.string())),  # canonical codes, "?<source_code>" for unmapped ones
        ("n_annotations", pa.int32()),
        ("dup_in_lake", pa.bool_()),  # a duplicate of a record already in the lake (named by the driver)
        ("files", pa.string()),  # JSON {table: [PartFile rows]}; set on the task's first row only
    ]
)


@dataclass(frozen=True)
class IngestOptions:
    archive: Path
    layout: str
    lake: str
    run_id: str
    fs_hz: int | None = None  # native rate to read where an archive offers several (PTB-XL)
    source: str | None = None  # the archive's name in the lake (record ids derive from it); default: layout
    model_fs_hz: int = 100
    notch_hz: float | None = None
    batch_size: int = 64
    workers: int | None = None  # concurrent worker tasks; default: one per CPU of the Ray cluster
    cpus_per_worker: float = 0.5  # fractional: 1-CPU workers starve Ray Data on small machines


@dataclass
class IngestSummary:
    run_id: str
    lake: str
    archive: str
    layout: str
    records_in: int = 0
    ingested: int = 0
    rejected: int = 0
    skipped_existing: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    labels: int = 0
    unmapped_labels: dict[str, int] = field(default_factory=dict)
    label_counts: dict[str, int] = field(default_factory=dict)
    annotations: int = 0
    committed_tables: list[str] = field(default_factory=list)
    already_committed: bool = False
    seconds: float = 0.0
    records_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hash64(*parts: str) -> np.uint64:
    return np.frombuffer(hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest(), "<u8")[0]


@dataclass(frozen=True)
class KnownState:
    """What the lake already holds, as sorted 64-bit hashes (compact enough for millions of records)."""

    pairs: np.ndarray  # hash(record_id, checksum): the same record already ingested -> skip
    contents: np.ndarray  # hash(signal_sha256): the same signal under another record id -> duplicate
    record_ids: np.ndarray  # hash(record_id): the same path with other bytes -> rejected, never a 2nd row
    version: int | None = None  # the ecg_records version these were read at (None: no table yet)

    @staticmethod
    def _contains(arr: np.ndarray, value: np.uint64) -> bool:
        i = int(np.searchsorted(arr, value))
        return i < len(arr) and arr[i] == value

    def has_record(self, record_id: str, checksum: str) -> bool:
        return self._contains(self.pairs, _hash64(record_id, checksum))

    def has_content(self, content_sha256: str) -> bool:
        return self._contains(self.contents, _hash64(content_sha256))

    def has_record_id(self, record_id: str) -> bool:
        return self._contains(self.record_ids, _hash64(record_id))


def load_known_state(lake: str) -> KnownState:
    version = commit.table_version(lake, ECG_RECORDS)
    empty = np.zeros(0, dtype=np.uint64)
    if version is None:
        return KnownState(empty, empty, empty)
    df = _lake_records(lake, version).select("record_id", "checksum", "signal_sha256").collect()
    pairs = np.array([_hash64(r, c) for r, c in df.select("record_id", "checksum").iter_rows()], np.uint64)
    sums = np.array([_hash64(c) for c in df["signal_sha256"]], dtype=np.uint64)
    ids = np.array([_hash64(r) for r in df["record_id"]], dtype=np.uint64)
    return KnownState(np.sort(pairs), np.unique(sums), np.unique(ids), version)


def _lake_records(lake: str, version: int) -> pl.LazyFrame:
    uri = table_uri(lake, ECG_RECORDS)
    return pl.scan_delta(uri, version=version, storage_options=storage_options())


def _known_rejects(lake: str) -> pl.LazyFrame:
    """(source_path, reason, checksum) of rejects already in the lake: a re-run does not repeat them."""
    uri = table_uri(lake, ECG_REJECTS)
    if not commit.DeltaTable.is_deltatable(uri, storage_options=storage_options()):
        return pl.LazyFrame(schema={"source_path": pl.String, "reason": pl.String, "checksum_key": pl.String})
    return pl.scan_delta(uri, storage_options=storage_options()).select(
        "source_path", "reason", pl.col("checksum").fill_null("").alias("checksum_key")
    )


def _rows_table(table_name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = SCHEMAS[table_name]
    if table_name == ECG_WAVEFORMS and rows:
        # numpy signals -> list<float32> without a round trip through Python floats
        arrays = {"signal": np.float32, "beat_positions": np.int32}
        cols = {
            name: pa.array([r[name] for r in rows], type=schema.field(name).type)
            for name in schema.names
            if name not in arrays
        }
        for name, dtype in arrays.items():
            parts = [r[name] for r in rows]
            offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int32)
            values = pa.array(np.concatenate(parts).astype(dtype, copy=False))
            cols[name] = pa.ListArray.from_arrays(pa.array(offsets), values)
        return pa.table({n: cols[n] for n in schema.names}, schema=schema)
    return pa.Table.from_pylist(rows, schema=schema)


class BatchProcessor:
    """Reads, validates and preprocesses a batch of refs, and writes its part files (one per table)."""

    def __init__(
        self,
        reader: ArchiveReader,
        source: str,
        lake: str,
        run_id: str,
        model_fs_hz: int,
        notch_hz: float | None,
        known: KnownState,
        ingested_at: datetime,
        secret: identity.Secret,
        storage: identity.Secret | None = None,
    ) -> None:
        self.reader = reader
        self.source = source
        self.lake = lake
        self.run_id = run_id
        self.model_fs_hz = model_fs_hz
        self.notch_hz = notch_hz
        self.known = known
        self.ingested_at = ingested_at
        self.secret = secret
        # the driver's object-store options (credentials: never in a repr), not the worker's environment
        self.storage: dict[str, str] | None = json.loads(storage.reveal()) if storage is not None else None
        tune_allocator()  # the filters' temporaries stay in the heap (benchmarks/README.md)

    def _one(self, ref: RecordRef) -> tuple[dict[str, Any], EcgRecord | None]:
        """Read and check one record: its outcome, and the record when it is to be preprocessed."""
        out: dict[str, Any] = {
            "record_id": identity.record_id(self.source, ref.record_key),
            "source_path": ref.source_path,
            "checksum": None,
            "status": STATUS_REJECTED,
            "reason": None,
            "detail": None,
            "labels": [],
            "n_annotations": 0,
            "dup_in_lake": False,
        }
        try:
            rec = self.reader.read(ref)
        except RecordError as err:
            out.update(reason=err.reason, detail=err.detail)
            return out, None
        except Exception as err:  # a reader bug or an unforeseen file must not sink the whole run
            out.update(reason=REASON_READ_ERROR, detail=f"{type(err).__name__}: {err}")
            return out, None
        out["checksum"] = rec.checksum
        out["signal_sha256"] = content = signal_sha256(rec)
        out["content_key"] = int(content[:16], 16)
        rec.source = self.source
        if self.known.has_record(out["record_id"], rec.checksum):
            out["status"] = STATUS_SKIPPED
            return out, None
        if self.known.has_record_id(out["record_id"]):
            out.update(
                reason=REASON_DUPLICATE,
                detail=f"{ref.source_path} is already in {ECG_RECORDS} with other file contents "
                f"(checksum now {rec.checksum[:16]}): a changed record is not overwritten",
            )
            return out, None
        if self.known.has_content(content):
            out.update(
                reason=REASON_DUPLICATE,
                detail=f"the same signal (signal_sha256 {content[:16]}) is already in {ECG_RECORDS}",
                dup_in_lake=True,
            )
            return out, None
        return out, rec

    def process(self, batch: pa.Table) -> tuple[list[dict[str, Any]], dict[str, pa.Table]]:
        """One batch of refs: each ref's outcome, and the batch's rows of every worker table."""
        outcomes: list[dict[str, Any]] = []
        read: list[tuple[dict[str, Any], EcgRecord]] = []
        for path, meta, key in zip(
            batch.column("source_path").to_pylist(),
            batch.column("meta").to_pylist(),
            batch.column("key").to_pylist(),
            strict=True,
        ):
            outcome, rec = self._one(RecordRef(path, json.loads(meta), key))
            outcomes.append(outcome)
            if rec is not None:
                read.append((outcome, rec))
        # the batch's records filtered together (R peaks included): the bulk of a worker's time
        pres = preprocess_many(
            [(rec.physical_mv(np.float32), rec.fs_hz, rec.lead_names) for _, rec in read],
            self.model_fs_hz,
            self.notch_hz,
        )
        per_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        annotated: list[tuple[str, Sequence[Annotation]]] = []
        for (outcome, rec), pre in zip(read, pres, strict=True):
            if isinstance(pre, ValueError):
                outcome.update(reason=REASON_UNUSABLE_SIGNAL, detail=str(pre))
                continue
            outcome["status"] = STATUS_INGESTED
            outcome["labels"] = [lab.code or f"?{lab.source_code}" for lab in rec.labels]
            outcome["n_annotations"] = len(rec.annotations)
            rows = build_rows(
                rec,
                pre,
                record_id=outcome["record_id"],
                run_id=self.run_id,
                secret=self.secret,
                ingested_at=self.ingested_at,
                content_sha256=outcome["signal_sha256"],
            )
            per_table[ECG_RECORDS].append(rows.record)
            per_table[ECG_WAVEFORMS].append(rows.waveform)
            per_table[ECG_LABELS].extend(rows.labels)
            if rec.annotations:
                annotated.append((outcome["record_id"], rec.annotations))
        tables = {name: _rows_table(name, rows) for name, rows in per_table.items() if rows}
        if annotated:
            tables[ECG_ANNOTATIONS] = annotations_table(annotated, self.run_id)
        return outcomes, tables

    def run_task(self, ref_tables: Iterator[pa.Table]) -> pa.Table:
        """A Ray task's batches: one part file per table for all of them (row groups of one batch), and
        the outcome of every ref, the task's part files on its first row."""
        task_key = uuid.uuid4().hex
        writers = {
            name: commit.PartFileWriter(self.lake, name, self.run_id, self.storage) for name in WORKER_TABLES
        }
        outcomes: list[dict[str, Any]] = []
        try:
            for refs in ref_tables:
                batch_outcomes, tables = self.process(refs)
                outcomes.extend(batch_outcomes)
                for name, table in tables.items():
                    writers[name].write(table)
        finally:
            files = {name: [f.to_row() for f in w.close()] for name, w in writers.items()}
        for i, o in enumerate(outcomes):
            o["batch_key"] = task_key
            o["files"] = json.dumps({k: v for k, v in files.items() if v}) if i == 0 else None
        return pa.Table.from_pylist(outcomes, schema=OUTCOME_SCHEMA)

    def __call__(self, batch: pa.Table) -> pa.Table:
        """One batch as a task of its own (benchmarks and tests)."""
        return self.run_task(iter([batch]))


_PROCESSORS: dict[str, BatchProcessor] = {}


def process_staged(tasks: pa.Table, *, run_key: str, batch_size: int, **kwargs: Any) -> pa.Table:
    """The Ray Data task function: one task's staged listing files (URIs in ``uris``), read here on the
    worker and processed in batches of ``batch_size`` refs. Ray tasks reuse worker processes, so each
    process builds its BatchProcessor (and its reader's lazy caches) once per run; an actor pool would do
    the same but costs about 8 s of start-up per run on a small machine."""
    proc = _PROCESSORS.get(run_key)
    if proc is None:
        _PROCESSORS.clear()
        proc = _PROCESSORS[run_key] = BatchProcessor(**kwargs)

    def ref_tables(uris: list[str]) -> Iterator[pa.Table]:
        for uri in uris:
            fs, path = filesystem(uri, proc.storage)
            refs = pq.read_table(path, filesystem=fs)
            yield from (refs.slice(i, batch_size) for i in range(0, refs.num_rows, batch_size))

    outs = [proc.run_task(ref_tables(uris)) for uris in tasks.column("uris").to_pylist()]
    return pa.concat_tables(outs) if outs else OUTCOME_SCHEMA.empty_table()


def _ref_chunks(reader: ArchiveReader, chunk: int) -> Iterator[pa.Table]:
    """Refs as Arrow tables of ``chunk`` rows (one worker batch each), as list_refs streams them."""
    paths: list[str] = []
    metas: list[str] = []
    keys: list[str | None] = []
    for ref in reader.list_refs():
        paths.append(ref.source_path)
        metas.append(json.dumps(ref.meta, default=str))
        keys.append(ref.key)
        if len(paths) >= chunk:
            yield pa.table({"source_path": paths, "meta": metas, "key": pa.array(keys, pa.string())})
            paths, metas, keys = [], [], []
    if paths:
        yield pa.table({"source_path": paths, "meta": metas, "key": pa.array(keys, pa.string())})


def _spool_listing(reader: ArchiveReader, staging: str, batch_size: int) -> tuple[int, list[tuple[str, int]]]:
    """Write the archive's refs as Parquet files under the ``staging`` URI while list_refs streams them;
    returns how many refs there were and each file's URI and ref count."""
    fs, folder = filesystem(staging)
    fs.create_dir(folder, recursive=True)
    total = 0
    staged: list[tuple[str, int]] = []
    pending: list[pa.Table] = []

    def flush() -> None:
        nonlocal total, pending
        table = pa.concat_tables(pending)
        name = f"refs-{len(staged):08d}.parquet"
        pq.write_table(table, f"{folder}/{name}", filesystem=fs)
        staged.append((f"{staging}/{name}", table.num_rows))
        total, pending = total + table.num_rows, []

    for chunk in _ref_chunks(reader, batch_size):
        pending.append(chunk)
        if len(pending) >= (1 if len(staged) < 16 else SPOOL_BATCHES):
            flush()
    if pending:
        flush()
    return total, staged


def _task_groups(
    staged: list[tuple[str, int]], workers: int, max_refs: int = MAX_TASK_REFS
) -> list[list[str]]:
    """The staged files cut into Ray tasks in listing order: a multiple of ``workers`` tasks of about
    equal size, at most ``max_refs`` refs each unless one file holds more (files are never split)."""
    workers = max(1, workers)
    total = sum(n for _, n in staged)
    n_tasks = min(len(staged), workers * max(1, -(-total // (workers * max_refs))))
    groups: list[list[str]] = []
    group: list[str] = []
    done = 0
    for uri, n in staged:
        group.append(uri)
        done += n
        # close the task at the next of n_tasks equal shares of the listing
        if done * n_tasks >= (len(groups) + 1) * total:
            groups.append(group)
            group = []
    if group:
        groups.append(group)
    return groups


def _process(
    opts: IngestOptions,
    reader: ArchiveReader,
    lake: str,
    known: KnownState,
    staged: list[tuple[str, int]],
    total: int,
    t0: float,
    progress: Callable[[int, int, float], None] | None,
    spool: Path,
) -> tuple[list[str], dict[str, str]]:
    """Run the worker tasks over the staged listing. The outcomes go to Parquet files in the local
    ``spool`` folder as they arrive (the driver never holds more than one result block of them), and
    each task's part files are kept as JSON. Returns the outcome files and {task key: part files}."""
    import ray

    settings = Settings()
    if not ray.is_initialized():  # never a bare ray.init(): it may join someone else's cluster
        init_ray(settings)
    # joined by address, or more than one node: workers may not share the driver's environment
    secret = identity.patient_secret(on_cluster=bool(settings.ray_address) or len(ray.nodes()) > 1)
    n_workers = opts.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    tasks = _task_groups(staged, n_workers)
    # one block per task, read by the task that processes it (Ray's own Parquet reader may merge small
    # files into one block, which one task would then process serially)
    with _scheduling_for_small_outputs():  # the dataset takes a copy of the context when it is made
        ds = _ingest_dataset(opts, reader, lake, known, tasks, secret, n_workers)
        files, blobs = _run_tasks(ds, spool, total, t0, progress)
    return files, blobs


def _ingest_dataset(
    opts: IngestOptions,
    reader: ArchiveReader,
    lake: str,
    known: KnownState,
    tasks: list[list[str]],
    secret: identity.Secret,
    n_workers: int,
) -> Any:
    import ray

    return ray.data.from_items(
        [{"uris": uris} for uris in tasks], override_num_blocks=len(tasks)
    ).map_batches(
        cast(Any, process_staged),  # Ray's stub does not model keyword-only fn_kwargs
        batch_size=1,
        batch_format="pyarrow",
        compute=ray.data.TaskPoolStrategy(size=n_workers),
        num_cpus=opts.cpus_per_worker,
        fn_kwargs={
            "run_key": f"{opts.run_id}-{uuid.uuid4().hex}",
            "batch_size": opts.batch_size,
            "reader": reader,
            "source": opts.source or opts.layout,
            "lake": lake,
            "run_id": opts.run_id,
            "model_fs_hz": opts.model_fs_hz,
            "notch_hz": opts.notch_hz,
            "known": known,
            "ingested_at": datetime.now(UTC),
            "secret": secret,
            "storage": identity.Secret(json.dumps(storage_options() or {}).encode()),
        },
    )


def _run_tasks(
    ds: Any, spool: Path, total: int, t0: float, progress: Callable[[int, int, float], None] | None
) -> tuple[list[str], dict[str, str]]:
    files: list[str] = []
    blobs: dict[str, str] = {}
    done = 0
    for out in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        done = _spool_block(out, spool, files, blobs, done)
        if progress is not None:
            progress(done, total, time.perf_counter() - t0)
    return files, blobs


@contextlib.contextmanager
def _scheduling_for_small_outputs() -> Iterator[None]:
    """Ray Data's defaults hold back the one operator here, whose outputs are small outcome tables the
    driver spools at once (benchmarks/README.md): a per-operator resource reservation made it start one
    task and add the second only when the first had finished, and downstream-capacity backpressure ran
    the last tasks one at a time. Both off (documented DataContext settings) while the ingest dataset
    is made and run, then restored."""
    import ray

    ctx = ray.data.DataContext.get_current()
    saved = (ctx.op_resource_reservation_enabled, ctx.downstream_capacity_backpressure_ratio)
    ctx.op_resource_reservation_enabled = False
    ctx.downstream_capacity_backpressure_ratio = None
    try:
        yield
    finally:
        ctx.op_resource_reservation_enabled, ctx.downstream_capacity_backpressure_ratio = saved


def _spool_block(out: pa.Table, spool: Path, files: list[str], blobs: dict[str, str], done: int) -> int:
    """One result block to the local outcome spool; returns the outcomes seen so far."""
    assert isinstance(out, pa.Table)
    # a result block may hold several tasks' outcomes: one part-file blob per task key
    for key, blob in zip(out.column("batch_key").to_pylist(), out.column("files").to_pylist(), strict=True):
        if blob is not None:
            blobs[key] = blob
    path = spool / f"outcomes-{len(files):06d}.parquet"
    pq.write_table(out.drop_columns(["files"]), path)
    files.append(str(path))
    return done + out.num_rows


def _drop_records_from_files(
    lake: str,
    table_name: str,
    files: list[commit.PartFile],
    drop_ids: set[str],
    run_id: str,
    delete: bool = True,
) -> list[commit.PartFile]:
    """Rewrite part files without the given record ids (duplicates found after the workers wrote), a
    row group at a time."""
    fs, base = filesystem(table_uri(lake, table_name))
    drop = pa.array(sorted(drop_ids), pa.string())
    kept: list[commit.PartFile] = []
    for f in files:
        writer = commit.PartFileWriter(lake, table_name, run_id)
        with fs.open_input_file(f"{base}/{f.path}") as handle:
            parquet = pq.ParquetFile(handle)
            for i in range(parquet.num_row_groups):
                t = parquet.read_row_group(i)
                filtered = t.filter(pa.compute.invert(pa.compute.is_in(t.column("record_id"), drop)))
                for col, value in f.partition_values.items():
                    filtered = filtered.append_column(col, pa.array([value] * filtered.num_rows, pa.string()))
                writer.write(filtered)
        kept.extend(writer.close())
        if delete:  # committed files stay: the table's log removes them
            fs.delete_file(f"{base}/{f.path}")
    return kept


def new_run_id() -> str:
    return f"{JOB}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_ingest(
    opts: IngestOptions,
    *,
    before_commit: Callable[[str], None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> IngestSummary:
    """Ingest an archive into the lake. Idempotent: re-running a committed run id changes nothing, and a
    new run over the same archive adds only records whose (record_id, checksum) the lake lacks.

    ``before_commit(table_name)`` runs just before each table's commit (tests kill runs there).
    ``progress(done, total, seconds)`` is called as record outcomes arrive.
    """
    from rare_ecg.archive import open_archive

    t0 = time.perf_counter()
    lake = normalize_lake(opts.lake)
    reader = open_archive(opts.archive, opts.layout, fs_hz=opts.fs_hz)
    summary = IngestSummary(run_id=opts.run_id, lake=lake, archive=str(opts.archive), layout=opts.layout)
    if all(commit.is_committed(lake, t, JOB, opts.run_id) for t in (ECG_RECORDS, ECG_REJECTS)):
        summary.already_committed = True
        summary.seconds = time.perf_counter() - t0
        log.info("run %s already committed to %s: nothing to do", opts.run_id, lake)
        return summary

    staging = f"{lake}/{STAGING_PREFIX}{opts.run_id}-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="rare-ecg-ingest-") as spool:
        try:
            total, staged = _spool_listing(reader, staging, opts.batch_size)
            summary.records_in = total
            log.info("listed %d records in %s (%s layout)", total, opts.archive, opts.layout)
            known = load_known_state(lake)
            outcome_files, blobs = (
                _process(opts, reader, lake, known, staged, total, t0, progress, Path(spool))
                if total
                else ([], {})
            )
        finally:
            fs, folder = filesystem(staging)
            with contextlib.suppress(FileNotFoundError):
                fs.delete_dir(folder)
        _finish(_scan_outcomes(outcome_files), blobs, opts, lake, known, summary, before_commit)
    summary.seconds = time.perf_counter() - t0
    summary.records_per_s = total / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def _scan_outcomes(files: list[str]) -> pl.LazyFrame:
    """Every record's outcome, lazily, from the spooled Parquet files: the driver's later steps stream
    over them and collect only what they need (duplicates, rejects, counts), so its memory does not grow
    with the archive."""
    if not files:
        empty = pl.from_arrow(OUTCOME_SCHEMA.empty_table().drop_columns(["files"]))
        assert isinstance(empty, pl.DataFrame)
        return empty.lazy()
    return pl.scan_parquet(files)


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    return frame.collect(engine="streaming")


def _resolve_duplicates(outcomes: pl.LazyFrame) -> tuple[pl.DataFrame, dict[str, set[str]]]:
    """In-run duplicates (the same signal under several paths) become rejects. The smallest path wins,
    whatever order the workers finished in, so a re-run makes the same choice. Returns the updated
    outcome rows of the losers and, per task, the record ids whose rows must leave its part files.
    Streams: the driver holds the 64-bit content keys (8 bytes a record) and the rows whose key repeats."""
    ingested = outcomes.filter(pl.col("status") == STATUS_INGESTED)
    keys = np.sort(_collect(ingested.select("content_key"))["content_key"].to_numpy())  # 8 bytes a record
    repeated = np.unique(keys[1:][keys[1:] == keys[:-1]])
    del keys
    candidates = _collect(
        ingested.filter(pl.col("content_key").is_in(pl.Series(repeated, dtype=pl.UInt64).implode()))
    )
    if candidates.is_empty():
        return candidates, {}
    firsts = candidates.group_by("signal_sha256").agg(
        pl.col("source_path").min().alias("first_path"), pl.len().alias("copies")
    )
    losers = (
        candidates.join(firsts.filter(pl.col("copies") > 1), on="signal_sha256")
        .filter(pl.col("source_path") != pl.col("first_path"))
        .with_columns(
            status=pl.lit(STATUS_REJECTED),
            reason=pl.lit(REASON_DUPLICATE),
            detail=pl.format("the same signal as {} in this archive", pl.col("first_path")),
        )
    )
    by_batch: dict[str, set[str]] = defaultdict(set)
    for rid, key in losers.select("record_id", "batch_key").iter_rows():
        by_batch[key].add(rid)
    return losers.select(candidates.columns), by_batch


COMMIT_ATTEMPTS = 20  # concurrent runs on one lake: how often a run re-checks and retries its commit


# An ecg_records row as the late-conflict checks compare it with this run's outcomes.
_LAKE_ROW = [
    pl.col("record_id").alias("lake_record_id"),
    pl.col("checksum").alias("lake_checksum"),
    pl.col("signal_sha256"),
    pl.format("{}/{}", pl.col("source").cast(pl.String), "source_path").alias("lake_name"),
]


def _lake_rows_since(lake: str, version: int, since: int | None) -> pl.DataFrame:
    """(record_id, checksum, signal_sha256, lake_name) of the ecg_records rows committed after version
    ``since`` up to ``version`` (concurrent runs'), read from the files those commits added only."""
    uri = table_uri(lake, ECG_RECORDS)
    now = commit.DeltaTable(uri, version=version, storage_options=storage_options())
    new = set(now.file_uris())
    if since is not None:
        new -= set(commit.DeltaTable(uri, version=since, storage_options=storage_options()).file_uris())
    columns = ["record_id", "checksum", "signal_sha256", "source_path", "source"]
    if not new:
        return pl.DataFrame(
            schema={c: pl.String for c in ["lake_record_id", "lake_checksum", "signal_sha256", "lake_name"]}
        )
    fs, base = filesystem(uri)
    paths = [filesystem(u)[1] for u in sorted(new)]
    dataset = pads.dataset(
        paths, filesystem=fs, format="parquet", partitioning="hive", partition_base_dir=base
    )
    table = dataset.to_table(columns=columns)
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame.select(_LAKE_ROW)


def _late_conflicts(
    outcomes: pl.LazyFrame, lake: str, version: int | None, since: int | None
) -> pl.DataFrame:
    """Ingested outcomes that the lake at ``version`` already holds (a concurrent run committed them
    after this run's snapshot at ``since``), with their new status, reason and detail; and the names of
    the lake records that worker-side duplicates (dup_in_lake) repeat. Collects only rows that match."""
    schema = outcomes.collect_schema()
    empty = pl.DataFrame(schema=schema)
    if version is None:
        return empty
    named = _collect(outcomes.filter(pl.col("dup_in_lake")))
    lake_rows = (
        _lake_records(lake, version)
        .filter(pl.col("signal_sha256").is_in(named["signal_sha256"].implode()))
        .select(_LAKE_ROW)
        .collect()
        if not named.is_empty()
        else None
    )
    ingested = named
    if version != since:
        new_rows = _lake_rows_since(lake, version, since)
        late = _collect(
            outcomes.filter(
                (pl.col("status") == STATUS_INGESTED)
                & (
                    pl.col("record_id").is_in(new_rows["lake_record_id"].implode())
                    | pl.col("signal_sha256").is_in(new_rows["signal_sha256"].implode())
                )
            )
        )
        ingested = pl.concat([named, late])
        lake_rows = new_rows if lake_rows is None else pl.concat([lake_rows, new_rows]).unique()
    if ingested.is_empty() or lake_rows is None:
        return empty
    by_id = ingested.join(lake_rows, left_on="record_id", right_on="lake_record_id", how="inner")
    by_content = (
        ingested.join(by_id.select("record_id"), on="record_id", how="anti")
        .join(
            lake_rows.sort("lake_name").unique("signal_sha256", keep="first"),
            on="signal_sha256",
            how="inner",
        )
        .select(*schema.names(), "lake_checksum", "lake_name")
    )
    same = pl.col("lake_checksum") == pl.col("checksum")
    by_id = by_id.select(*schema.names(), "lake_checksum", "lake_name").with_columns(
        status=pl.when(same).then(pl.lit(STATUS_SKIPPED)).otherwise(pl.lit(STATUS_REJECTED)),
        reason=pl.when(same).then(pl.lit(None, pl.String)).otherwise(pl.lit(REASON_DUPLICATE)),
        detail=pl.when(same)
        .then(pl.lit(None, pl.String))
        .otherwise(
            pl.format(
                "{} is already in {} with other file contents (committed by a concurrent run)",
                "source_path",
                pl.lit(ECG_RECORDS),
            )
        ),
    )
    by_content = by_content.with_columns(
        status=pl.lit(STATUS_REJECTED),
        reason=pl.lit(REASON_DUPLICATE),
        detail=pl.format("the same signal as {} already in {}", "lake_name", pl.lit(ECG_RECORDS)),
    )
    return pl.concat([by_id, by_content]).select(schema.names()).unique("record_id", keep="first")


def _merge_updates(updates: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Outcome rows changed after the workers (small): the newest change of a record wins."""
    if new.is_empty():
        return updates
    return pl.concat([updates.join(new.select("record_id"), on="record_id", how="anti"), new])


def _apply_updates(outcomes: pl.LazyFrame, updates: pl.DataFrame) -> pl.LazyFrame:
    if updates.is_empty():
        return outcomes
    return pl.concat(
        [outcomes.join(updates.lazy().select("record_id"), on="record_id", how="anti"), updates.lazy()]
    )


def _commit_all(
    outcomes: pl.LazyFrame,
    updates: pl.DataFrame,
    files: dict[str, list[commit.PartFile]],
    opts: IngestOptions,
    lake: str,
    known: KnownState,
    summary: IngestSummary,
    before_commit: Callable[[str], None] | None,
) -> pl.DataFrame:
    """Commit every table, records last, safely against concurrent runs on the same lake.

    The records commit is pinned to the records version this run last checked: when another run
    committed records in between, the commit fails, the run re-checks what that run added (record ids
    and signal contents), drops those records from its own part files (already committed side tables
    get one swap transaction) and tries again. So every record lands exactly once whatever the overlap.
    Returns the final updates (outcome rows whose status changed after the workers)."""
    metadata = {"rare_ecg.archive": str(opts.archive), "rare_ecg.layout": opts.layout}
    committed: set[str] = set()
    rejects_written: pl.DataFrame | None = None
    checked = known.version
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        version = commit.table_version(lake, ECG_RECORDS)
        late = _late_conflicts(_apply_updates(outcomes, updates), lake, version, known.version)
        updates = _merge_updates(updates, late)
        if version != checked or attempt == 1:
            drop: dict[str, set[str]] = defaultdict(set)
            for rid, key in (
                late.filter(pl.col("dup_in_lake").not_()).select("record_id", "batch_key").iter_rows()
            ):
                drop[key].add(rid)
            if drop:
                files = _drop_late(files, drop, lake, opts.run_id, committed, attempt)
        checked = version

        rejected = _apply_updates(outcomes, updates).filter(pl.col("status") == STATUS_REJECTED)
        new_rejects = _collect(
            rejected.with_columns(checksum_key=pl.col("checksum").fill_null("")).join(
                _known_rejects(lake), on=["source_path", "reason", "checksum_key"], how="anti"
            )
        )
        if rejects_written is not None:
            new_rejects = new_rejects.join(rejects_written, on="record_id", how="anti")
        reject_table = new_rejects.select(
            "record_id",
            pl.lit(opts.source or opts.layout).alias("source"),
            "source_path",
            "reason",
            "detail",
            "checksum",
            pl.lit(opts.run_id).alias("run_id"),
            pl.lit(datetime.now(UTC)).alias("rejected_at"),
        ).to_arrow()
        reject_files = commit.write_part_files(reject_table, lake, ECG_REJECTS, opts.run_id)
        if ECG_REJECTS in committed:
            if reject_files:
                commit.replace_run_files(
                    lake, ECG_REJECTS, [], reject_files, job=JOB, run_id=opts.run_id, attempt=attempt
                )
        else:
            files[ECG_REJECTS] = reject_files
        rejects_written = pl.concat(
            [rejects_written, new_rejects.select("record_id")]
            if rejects_written is not None
            else [new_rejects.select("record_id")]
        )

        for table_name in COMMIT_ORDER[:-1]:
            if table_name in committed:
                continue
            if not files.get(table_name) and (
                table_name != ECG_REJECTS or commit.is_committed(lake, table_name, JOB, opts.run_id)
            ):
                continue  # nothing new for a side table: no empty commit
            if before_commit is not None:
                before_commit(table_name)
            if commit.commit_files(
                lake, table_name, files.get(table_name, []), job=JOB, run_id=opts.run_id, metadata=metadata
            ):
                summary.committed_tables.append(table_name)
            committed.add(table_name)

        if before_commit is not None:
            before_commit(ECG_RECORDS)
        try:
            if commit.commit_files(
                lake,
                ECG_RECORDS,
                files.get(ECG_RECORDS, []),
                job=JOB,
                run_id=opts.run_id,
                metadata=metadata,
                read_version=version,
                pinned=True,
            ):
                summary.committed_tables.append(ECG_RECORDS)
            return updates
        except commit.CommitConflict as conflict:
            log.info("attempt %d: %s; re-checking what the other run committed", attempt, conflict)
    raise RuntimeError(
        f"{ECG_RECORDS} kept changing under {COMMIT_ATTEMPTS} commit attempts of run {opts.run_id}; "
        "the run can be retried with the same run id"
    )


def _drop_late(
    files: dict[str, list[commit.PartFile]],
    drop: dict[str, set[str]],
    lake: str,
    run_id: str,
    committed: set[str],
    attempt: int,
) -> dict[str, list[commit.PartFile]]:
    """Remove late-conflicting record ids from the part files of the batches holding them; in tables
    this run already committed, swap the files in one transaction."""
    ids = set().union(*drop.values())
    out: dict[str, list[commit.PartFile]] = {}
    for table_name, part_files in files.items():
        if table_name == ECG_REJECTS:
            out[table_name] = part_files
            continue
        old = [f for f in part_files if _file_has_records(lake, table_name, f, ids)]
        if not old:
            out[table_name] = part_files
            continue
        new = _drop_records_from_files(lake, table_name, old, ids, run_id, delete=table_name not in committed)
        if table_name in committed:
            commit.replace_run_files(lake, table_name, old, new, job=JOB, run_id=run_id, attempt=attempt)
        out[table_name] = [f for f in part_files if f not in old] + new
    return out


def _file_has_records(lake: str, table_name: str, f: commit.PartFile, ids: set[str]) -> bool:
    fs, base = filesystem(table_uri(lake, table_name))
    col = pq.read_table(f"{base}/{f.path}", filesystem=fs, columns=["record_id"]).column("record_id")
    return bool(pa.compute.any(pa.compute.is_in(col, pa.array(sorted(ids)))).as_py())


def _finish(
    outcomes: pl.LazyFrame,
    blobs: dict[str, str],
    opts: IngestOptions,
    lake: str,
    known: KnownState,
    summary: IngestSummary,
    before_commit: Callable[[str], None] | None,
) -> None:
    """Driver side, after every worker task: duplicates, rejects, the commits, then the summary. Streams
    over the spooled outcomes with polars: what it collects is the part-file list (one entry per task
    and table), the changed outcomes and the rejects, not a row per record."""
    files: dict[str, list[commit.PartFile]] = defaultdict(list)
    updates, losers = _resolve_duplicates(outcomes)
    for key, blob in blobs.items():
        for table_name, rows in json.loads(blob).items():
            part_files = [commit.PartFile.from_row(r) for r in rows]
            if key in losers:
                part_files = _drop_records_from_files(lake, table_name, part_files, losers[key], opts.run_id)
            files[table_name].extend(part_files)

    updates = _commit_all(outcomes, updates, files, opts, lake, known, summary, before_commit)
    final = _apply_updates(outcomes, updates)

    status = dict(_collect(final.group_by("status").len()).iter_rows())
    summary.ingested = status.get(STATUS_INGESTED, 0)
    summary.rejected = status.get(STATUS_REJECTED, 0)
    summary.skipped_existing = status.get(STATUS_SKIPPED, 0)
    summary.rejects_by_reason = dict(
        _collect(final.filter(pl.col("status") == STATUS_REJECTED).group_by("reason").len())
        .sort(["len", "reason"], descending=[True, False])
        .iter_rows()
    )
    ingested = final.filter(pl.col("status") == STATUS_INGESTED)
    summary.annotations = int(_collect(ingested.select(pl.col("n_annotations").sum())).item() or 0)
    counts = _collect(ingested.select(pl.col("labels").explode().drop_nulls()).group_by("labels").len()).sort(
        ["len", "labels"], descending=[True, False]
    )
    label_counts = dict(counts.iter_rows())
    summary.labels = sum(label_counts.values())
    summary.unmapped_labels = {k[1:]: v for k, v in label_counts.items() if k.startswith("?")}
    summary.label_counts = {k: v for k, v in label_counts.items() if not k.startswith("?")}
