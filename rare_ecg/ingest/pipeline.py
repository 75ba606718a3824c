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
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from rare_ecg.archive.base import ArchiveReader
from rare_ecg.archive.record import (
    REASON_DUPLICATE,
    REASON_READ_ERROR,
    REASON_UNUSABLE_SIGNAL,
    EcgRecord,
    RecordError,
    RecordRef,
)
from rare_ecg.config import Settings
from rare_ecg.ingest.rows import build_rows, signal_sha256
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
from rare_ecg.runtime import init_ray
from rare_ecg.signals.preprocess import Preprocessed, preprocess
from rare_ecg.signals.rpeaks import beat_positions_batch

log = logging.getLogger(__name__)

JOB = "ingest"
# Commit order: the records table last, so a record visible there has its labels and waveform.
COMMIT_ORDER = (ECG_REJECTS, ECG_LABELS, ECG_ANNOTATIONS, ECG_WAVEFORMS, ECG_RECORDS)
WORKER_TABLES = (ECG_RECORDS, ECG_WAVEFORMS, ECG_LABELS, ECG_ANNOTATIONS)

# The listing is spooled to Parquet under the lake (readable wherever workers can write part files), one
# run-scoped folder removed after the run: the driver holds one file's refs at a time, never the archive's.
STAGING_PREFIX = "_ingest_listing-"
# Refs per staged file, in worker batches: one Ray task per file, so the first files are one batch
# each (small archives still spread over every worker) and later ones grow to at most this many batches
# (a million records make ~1,000 files, not 15,000).
MAX_BATCHES_PER_FILE = 16
COMPACT_BLOCKS = 64  # result blocks copied into one contiguous outcome table at a time (driver memory)

STATUS_INGESTED = "ingested"
STATUS_REJECTED = "rejected"
STATUS_SKIPPED = "skipped"

OUTCOME_SCHEMA = pa.schema(
    [
        ("batch_key", pa.string()),
        ("record_id", pa.string()),
        ("source_path", pa.string()),
        ("checksum", pa.string()),
        ("signal_sha256", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("labels", pa.list_(pa.string())),  # canonical codes, "?<source_code>" for unmapped ones
        ("n_annotations", pa.int32()),
        ("dup_in_lake", pa.bool_()),  # a duplicate of a record already in the lake (named by the driver)
        ("files", pa.string()),  # JSON {table: [PartFile rows]}; set on the batch's first row only
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


def _known_rejects(lake: str) -> pl.DataFrame:
    """(source_path, reason, checksum) of rejects already in the lake: a re-run does not repeat them."""
    uri = table_uri(lake, ECG_REJECTS)
    if not commit.DeltaTable.is_deltatable(uri, storage_options=storage_options()):
        return pl.DataFrame(schema={"source_path": pl.String, "reason": pl.String, "checksum_key": pl.String})
    return (
        pl.scan_delta(uri, storage_options=storage_options())
        .select("source_path", "reason", pl.col("checksum").fill_null("").alias("checksum_key"))
        .unique()
        .collect()
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

    def _one(self, ref: RecordRef) -> tuple[dict[str, Any], tuple[EcgRecord, Preprocessed] | None]:
        """Read, check and preprocess one record: its outcome, and what its rows are built from."""
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
        try:
            pre = preprocess(rec.physical_mv(), rec.fs_hz, rec.lead_names, self.model_fs_hz, self.notch_hz)
        except ValueError as err:
            out.update(reason=REASON_UNUSABLE_SIGNAL, detail=str(err))
            return out, None
        out["status"] = STATUS_INGESTED
        out["labels"] = [lab.code or f"?{lab.source_code}" for lab in rec.labels]
        out["n_annotations"] = len(rec.annotations)
        return out, (rec, pre)

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch_key = uuid.uuid4().hex
        outcomes: list[dict[str, Any]] = []
        kept: list[tuple[dict[str, Any], EcgRecord, Preprocessed]] = []
        for path, meta, key in zip(
            batch.column("source_path").to_pylist(),
            batch.column("meta").to_pylist(),
            batch.column("key").to_pylist(),
            strict=True,
        ):
            outcome, done = self._one(RecordRef(path, json.loads(meta), key))
            outcomes.append(outcome)
            if done is not None:
                kept.append((outcome, *done))
        beats = _batch_beats([pre for _, _, pre in kept])
        per_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (outcome, rec, pre), rec_beats in zip(kept, beats, strict=True):
            rows = build_rows(
                rec,
                pre,
                record_id=outcome["record_id"],
                run_id=self.run_id,
                secret=self.secret,
                ingested_at=self.ingested_at,
                content_sha256=outcome["signal_sha256"],
                beats=rec_beats,
            )
            per_table[ECG_RECORDS].append(rows.record)
            per_table[ECG_WAVEFORMS].append(rows.waveform)
            per_table[ECG_LABELS].extend(rows.labels)
            per_table[ECG_ANNOTATIONS].extend(rows.annotations)
        files = {
            name: [
                f.to_row()
                for f in commit.write_part_files(
                    _rows_table(name, per_table[name]), self.lake, name, self.run_id, self.storage
                )
            ]
            for name in WORKER_TABLES
            if per_table[name]
        }
        for i, o in enumerate(outcomes):
            o["batch_key"] = batch_key
            o["files"] = json.dumps(files) if i == 0 else None
        return pa.Table.from_pylist(outcomes, schema=OUTCOME_SCHEMA)


def _batch_beats(pres: list[Preprocessed]) -> list[np.ndarray]:
    """beat_positions of every preprocessed record, detected together for records of one shape (the
    filters run once over the stack instead of once per record)."""
    out: list[np.ndarray] = [np.zeros(0, np.int32)] * len(pres)
    groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for i, pre in enumerate(pres):
        groups[(pre.signal.shape[0], pre.valid_samples, pre.fs_hz)].append(i)
    for (_, valid, fs_hz), idx in groups.items():
        # (batch, n_windows, 12, win) -> (batch, 12, n_windows * win): the windows side by side
        stack = np.stack([pres[i].signal for i in idx])
        b, w, leads, win = stack.shape
        flat = stack.transpose(0, 2, 1, 3).reshape(b, leads, w * win)
        for i, beats in zip(idx, beat_positions_batch(flat, valid, fs_hz), strict=True):
            out[i] = beats
    return out


_PROCESSORS: dict[str, BatchProcessor] = {}


def process_staged(files: pa.Table, *, run_key: str, batch_size: int, **kwargs: Any) -> pa.Table:
    """The Ray Data task function: staged listing files (URIs in ``files``, one per task), read here on
    the worker and processed in batches of ``batch_size`` refs. Ray tasks reuse worker processes, so each
    process builds its BatchProcessor (and its reader's lazy caches) once per run; an actor pool would do
    the same but costs about 8 s of start-up per run on a small machine."""
    proc = _PROCESSORS.get(run_key)
    if proc is None:
        _PROCESSORS.clear()
        proc = _PROCESSORS[run_key] = BatchProcessor(**kwargs)
    outs: list[pa.Table] = []
    for uri in files.column("uri").to_pylist():
        fs, path = filesystem(uri, proc.storage)
        refs = pq.read_table(path, filesystem=fs)
        outs.extend(proc(refs.slice(i, batch_size)) for i in range(0, refs.num_rows, batch_size))
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


def _spool_listing(reader: ArchiveReader, staging: str, batch_size: int) -> tuple[int, list[str]]:
    """Write the archive's refs as Parquet files under the ``staging`` URI while list_refs streams them;
    returns how many refs there were and the files' URIs (one per ~64-1,024 refs)."""
    fs, folder = filesystem(staging)
    fs.create_dir(folder, recursive=True)
    total = 0
    staged: list[str] = []
    pending: list[pa.Table] = []

    def flush() -> None:
        nonlocal total, pending
        table = pa.concat_tables(pending)
        name = f"refs-{len(staged):08d}.parquet"
        pq.write_table(table, f"{folder}/{name}", filesystem=fs)
        staged.append(f"{staging}/{name}")
        total, pending = total + table.num_rows, []

    for chunk in _ref_chunks(reader, batch_size):
        pending.append(chunk)
        if len(pending) >= min(MAX_BATCHES_PER_FILE, 1 + len(staged) // 16):
            flush()
    if pending:
        flush()
    return total, staged


def _process(
    opts: IngestOptions,
    reader: ArchiveReader,
    lake: str,
    known: KnownState,
    staged: list[str],
    total: int,
    t0: float,
    progress: Callable[[int, int, float], None] | None,
) -> tuple[list[pa.Table], dict[int, str]]:
    """Run the worker batches over the staged listing. Returns the outcome tables (the files column
    dropped, batch keys replaced by small batch numbers) and each batch's part files as JSON."""
    import ray

    settings = Settings()
    if not ray.is_initialized():  # never a bare ray.init(): it may join someone else's cluster
        init_ray(settings)
    # joined by address, or more than one node: workers may not share the driver's environment
    secret = identity.patient_secret(on_cluster=bool(settings.ray_address) or len(ray.nodes()) > 1)
    n_workers = opts.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    # one block per staged file, read by the task that processes it (Ray's own Parquet reader may merge
    # small files into one block, which one task would then process serially)
    ds = ray.data.from_items([{"uri": uri} for uri in staged], override_num_blocks=len(staged)).map_batches(
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
    outcomes: list[pa.Table] = []
    pending: list[pa.Table] = []
    blobs: dict[int, str] = {}
    done = 0

    def compact() -> None:
        # One contiguous copy per COMPACT_BLOCKS result blocks: a block read back from the object store
        # keeps its whole shared buffer alive for as long as any slice of it is held (at 100,000
        # records the driver's peak went 582 -> 493 MB with this; benchmarks/README.md).
        if pending:
            outcomes.append(pa.concat_tables(pending).combine_chunks())
            pending.clear()

    for out in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        assert isinstance(out, pa.Table)
        # a result block may hold several worker batches: one part-file blob per batch key
        keys = out.column("batch_key")
        numbers: dict[str, int] = {}
        for key, blob in zip(keys.to_pylist(), out.column("files").to_pylist(), strict=True):
            if blob is not None:
                numbers[key] = len(blobs)
                blobs[len(blobs)] = blob
        index = pa.array([numbers[k] for k in keys.to_pylist()], pa.int32())
        pending.append(out.drop_columns(["files"]).set_column(0, "batch_key", index))
        if len(pending) >= COMPACT_BLOCKS:
            compact()
        done += out.num_rows
        if progress is not None:
            progress(done, total, time.perf_counter() - t0)
    compact()
    return outcomes, blobs


def _drop_records_from_files(
    lake: str,
    table_name: str,
    files: list[commit.PartFile],
    drop_ids: set[str],
    run_id: str,
    delete: bool = True,
) -> list[commit.PartFile]:
    """Rewrite part files without the given record ids (in-run duplicates found after the workers wrote)."""
    fs, base = filesystem(table_uri(lake, table_name))
    kept: list[commit.PartFile] = []
    for f in files:
        t = pq.read_table(f"{base}/{f.path}", filesystem=fs)
        mask = pa.compute.invert(pa.compute.is_in(t.column("record_id"), pa.array(sorted(drop_ids))))
        filtered = t.filter(mask)
        for col, value in f.partition_values.items():
            filtered = filtered.append_column(col, pa.array([value] * filtered.num_rows, pa.string()))
        kept.extend(commit.write_part_files(filtered, lake, table_name, run_id))
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
    try:
        total, staged = _spool_listing(reader, staging, opts.batch_size)
        summary.records_in = total
        log.info("listed %d records in %s (%s layout)", total, opts.archive, opts.layout)
        known = load_known_state(lake)
        outcomes, blobs = (
            _process(opts, reader, lake, known, staged, total, t0, progress) if total else ([], {})
        )
    finally:
        fs, folder = filesystem(staging)
        with contextlib.suppress(FileNotFoundError):
            fs.delete_dir(folder)
    _finish(outcomes, blobs, opts, lake, known, summary, before_commit)
    summary.seconds = time.perf_counter() - t0
    summary.records_per_s = total / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def _resolve_duplicates(outcomes: pl.DataFrame) -> tuple[pl.DataFrame, dict[int, set[str]]]:
    """In-run duplicates (the same signal under several paths) become rejects. The smallest path wins,
    whatever order the workers finished in, so a re-run makes the same choice. Returns the updated
    outcomes and, per batch, the record ids whose rows must leave that batch's part files."""
    ingested = outcomes.filter(pl.col("status") == STATUS_INGESTED)
    firsts = ingested.group_by("signal_sha256").agg(
        pl.col("source_path").min().alias("first_path"), pl.len().alias("copies")
    )
    losers = (
        ingested.join(firsts.filter(pl.col("copies") > 1), on="signal_sha256")
        .filter(pl.col("source_path") != pl.col("first_path"))
        .select("record_id", "batch_key", "first_path")
    )
    if losers.is_empty():
        return outcomes, {}
    outcomes = (
        outcomes.join(losers.select("record_id", "first_path"), on="record_id", how="left")
        .with_columns(
            status=pl.when(pl.col("first_path").is_not_null())
            .then(pl.lit(STATUS_REJECTED))
            .otherwise(pl.col("status")),
            reason=pl.when(pl.col("first_path").is_not_null())
            .then(pl.lit(REASON_DUPLICATE))
            .otherwise(pl.col("reason")),
            detail=pl.when(pl.col("first_path").is_not_null())
            .then(pl.format("the same signal as {} in this archive", pl.col("first_path")))
            .otherwise(pl.col("detail")),
        )
        .drop("first_path")
    )
    by_batch: dict[int, set[str]] = defaultdict(set)
    for rid, key in losers.select("record_id", "batch_key").iter_rows():
        by_batch[key].add(rid)
    return outcomes, by_batch


COMMIT_ATTEMPTS = 20  # concurrent runs on one lake: how often a run re-checks and retries its commit


def _late_conflicts(outcomes: pl.DataFrame, lake: str, version: int | None) -> pl.DataFrame:
    """Ingested outcomes that the lake at ``version`` already holds (a concurrent run committed them
    after this run's snapshot), with their new status, reason and detail; and the names of the lake
    records that worker-side duplicates (dup_in_lake) repeat."""
    empty = outcomes.head(0)
    if version is None:
        return empty
    ingested = outcomes.filter((pl.col("status") == STATUS_INGESTED) | pl.col("dup_in_lake"))
    if ingested.is_empty():
        return empty
    lake_rows = (
        _lake_records(lake, version)
        .select(
            pl.col("record_id").alias("lake_record_id"),
            pl.col("checksum").alias("lake_checksum"),
            "signal_sha256",
            pl.format("{}/{}", "source", "source_path").alias("lake_name"),
        )
        .filter(
            pl.col("lake_record_id").is_in(ingested["record_id"].implode())
            | pl.col("signal_sha256").is_in(ingested["signal_sha256"].implode())
        )
        .collect()
    )
    by_id = ingested.join(lake_rows, left_on="record_id", right_on="lake_record_id", how="inner")
    by_content = (
        ingested.join(by_id.select("record_id"), on="record_id", how="anti")
        .join(
            lake_rows.sort("lake_name").unique("signal_sha256", keep="first"),
            on="signal_sha256",
            how="inner",
        )
        .select(*outcomes.columns, "lake_checksum", "lake_name")
    )
    same = pl.col("lake_checksum") == pl.col("checksum")
    by_id = by_id.select(*outcomes.columns, "lake_checksum", "lake_name").with_columns(
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
    return pl.concat([by_id, by_content]).select(outcomes.columns)


def _apply_updates(outcomes: pl.DataFrame, updates: pl.DataFrame) -> pl.DataFrame:
    if updates.is_empty():
        return outcomes
    return pl.concat(
        [outcomes.join(updates.select("record_id"), on="record_id", how="anti"), updates]
    ).select(outcomes.columns)


def _commit_all(
    outcomes: pl.DataFrame,
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
    Returns the final outcomes."""
    metadata = {"rare_ecg.archive": str(opts.archive), "rare_ecg.layout": opts.layout}
    committed: set[str] = set()
    rejects_written: pl.DataFrame | None = None
    checked = known.version
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        version = commit.table_version(lake, ECG_RECORDS)
        updates = _late_conflicts(outcomes, lake, version)
        outcomes = _apply_updates(outcomes, updates)
        if version != checked or attempt == 1:
            drop: dict[int, set[str]] = defaultdict(set)
            for rid, key in (
                updates.filter(pl.col("dup_in_lake").not_()).select("record_id", "batch_key").iter_rows()
            ):
                drop[key].add(rid)
            if drop:
                files = _drop_late(files, drop, lake, opts.run_id, committed, attempt)
        checked = version

        rejected = outcomes.filter(pl.col("status") == STATUS_REJECTED)
        new_rejects = rejected.with_columns(checksum_key=pl.col("checksum").fill_null("")).join(
            _known_rejects(lake), on=["source_path", "reason", "checksum_key"], how="anti"
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
            return outcomes
        except commit.CommitConflict as conflict:
            log.info("attempt %d: %s; re-checking what the other run committed", attempt, conflict)
    raise RuntimeError(
        f"{ECG_RECORDS} kept changing under {COMMIT_ATTEMPTS} commit attempts of run {opts.run_id}; "
        "the run can be retried with the same run id"
    )


def _drop_late(
    files: dict[str, list[commit.PartFile]],
    drop: dict[int, set[str]],
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
    results: list[pa.Table],
    blobs: dict[int, str],
    opts: IngestOptions,
    lake: str,
    known: KnownState,
    summary: IngestSummary,
    before_commit: Callable[[str], None] | None,
) -> None:
    """Driver side, after every worker batch: duplicates, rejects, the commits, then the summary.
    Works on the outcome table with polars (no per-record Python objects: millions of rows fit)."""
    files: dict[str, list[commit.PartFile]] = defaultdict(list)
    table = pa.concat_tables(results) if results else OUTCOME_SCHEMA.empty_table().drop_columns(["files"])
    outcomes = pl.from_arrow(table.cast(table.schema.set(0, pa.field("batch_key", pa.int32()))))
    assert isinstance(outcomes, pl.DataFrame)
    del table, results[:]  # the driver holds the outcomes once
    outcomes, losers = _resolve_duplicates(outcomes)
    for key, blob in blobs.items():
        for table_name, rows in json.loads(blob).items():
            part_files = [commit.PartFile.from_row(r) for r in rows]
            if key in losers:
                part_files = _drop_records_from_files(lake, table_name, part_files, losers[key], opts.run_id)
            files[table_name].extend(part_files)

    outcomes = _commit_all(outcomes, files, opts, lake, known, summary, before_commit)

    rejected = outcomes.filter(pl.col("status") == STATUS_REJECTED)
    status = dict(outcomes.group_by("status").len().iter_rows())
    summary.ingested = status.get(STATUS_INGESTED, 0)
    summary.rejected = status.get(STATUS_REJECTED, 0)
    summary.skipped_existing = status.get(STATUS_SKIPPED, 0)
    summary.rejects_by_reason = dict(
        rejected.group_by("reason").len().sort(["len", "reason"], descending=[True, False]).iter_rows()
    )
    ingested = outcomes.filter(pl.col("status") == STATUS_INGESTED)
    summary.annotations = int(ingested["n_annotations"].sum() or 0)
    counts = (
        ingested.select(pl.col("labels").explode().drop_nulls())
        .group_by("labels")
        .len()
        .sort(["len", "labels"], descending=[True, False])
    )
    label_counts = dict(counts.iter_rows())
    summary.labels = sum(label_counts.values())
    summary.unmapped_labels = {k[1:]: v for k, v in label_counts.items() if k.startswith("?")}
    summary.label_counts = {k: v for k, v in label_counts.items() if not k.startswith("?")}
