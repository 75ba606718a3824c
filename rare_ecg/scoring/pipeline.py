"""The scoring job on Ray Data: a cohort of ecg_records, its waveforms read straight from the Delta table's
Parquet files at a pinned version, ONNX Runtime on an actor pool, and one commit per table per run.

Flow: the driver resolves the cohort (ecg_records at pinned versions), drops the records this model
version already scored, and hands each actor the cohort's keys once -> Ray Data reads ecg_waveforms'
files -> each actor (one ORT session, ``intra_op_num_threads`` = its CPU share) keeps its cohort's rows,
skips records with rejecting quality flags (counted by reason, never scored as zeros), scores each 10 s
window, aggregates windows per record and writes Parquet part files of ecg_scores -> the driver commits
them in one transaction, then recomputes patient_findings of the model version (one partition replaced
in one transaction) and, where the cohort has labels, writes subgroup_metrics.

Exactly once: a batch's files count only when its outcome reaches the driver; an actor killed mid-batch
leaves orphan files (never in the log) and Ray Data retries the batch on a restarted actor. A re-run of a
committed run id, or any run over records this version already scored, adds nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import polars as pl
import pyarrow as pa

from rare_ecg.evaluation import Predictions, label_matrix, metric_rows, metrics_table
from rare_ecg.lake import commit
from rare_ecg.lake.files import parquet_files_dataset
from rare_ecg.lake.paths import normalize_lake, storage_options, table_uri
from rare_ecg.lake.schema import (
    ECG_LABELS,
    ECG_SCORES,
    ECG_WAVEFORMS,
    PATIENT_FINDINGS,
    SCHEMAS,
    SUBGROUP_METRICS,
)
from rare_ecg.model.config import ModelConfig
from rare_ecg.scoring.cohort import CohortFilter, already_scored, cohort_records, pin_versions, scan
from rare_ecg.scoring.export import WAVE_COLUMNS, model_label_sets
from rare_ecg.scoring.findings import patient_findings
from rare_ecg.scoring.onnx import open_session
from rare_ecg.scoring.runner import onnx_runner, score_rows
from rare_ecg.scoring.windows import QualityPolicy, skip_reason

log = logging.getLogger(__name__)

JOB = "score"
STATUS_SCORED = "scored"
STATUS_SKIPPED = "skipped"
REASON_NO_WAVEFORM = "no_waveform"  # in ecg_records but not in ecg_waveforms at the pinned version

OUTCOME_SCHEMA = pa.schema(
    [
        ("batch_key", pa.string()),
        ("record_id", pa.string()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("files", pa.string()),  # JSON list of PartFile rows; on the batch's first row only
    ]
)


@dataclass(frozen=True)
class ScoringModel:
    """What an actor needs: the ONNX bytes and the version's facts (no MLflow on the workers)."""

    name: str
    version: str
    cfg: ModelConfig
    thresholds: np.ndarray  # (L,) decision threshold per label
    precision: str  # fp32 | int8
    onnx: bytes
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.cfg.labels


@dataclass(frozen=True)
class ScoreOptions:
    lake: str
    run_id: str
    cohort: CohortFilter = field(default_factory=CohortFilter)
    batch_size: int = 64
    actors: int | None = None  # default: the cluster's CPUs / threads_per_actor
    threads_per_actor: int = 1
    # Ray's reservation per thread: a little under one, so the Parquet readers keep a slot on small
    # machines (two 1-CPU actors plus a reader hang on 2 CPUs: STACK-NOTES.md)
    cpus_per_thread: float = 0.75
    quality: QualityPolicy | None = None  # default: QualityPolicy(model rate)
    subgroup_metrics: bool = True
    n_boot: int = 200


@dataclass
class ScoreSummary:
    run_id: str
    lake: str
    model_name: str
    model_version: str
    precision: str
    cohort: str
    table_versions: dict[str, int] = field(default_factory=dict)
    cohort_records: int = 0
    already_scored: int = 0
    scored: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    flagged_records: int = 0
    flagged_by_label: dict[str, int] = field(default_factory=dict)
    patients_with_findings: int = 0
    new_findings: int = 0
    subgroup_metric_rows: int = 0
    committed_tables: list[str] = field(default_factory=list)
    already_committed: bool = False
    seconds: float = 0.0
    ecg_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _hash64(values: Sequence[str]) -> np.ndarray:
    return np.asarray(
        [int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little") for v in values],
        dtype=np.uint64,
    )


def cohort_keys(records: pl.DataFrame) -> pa.Table:
    """The cohort as actors look it up: sorted 64-bit hashes of record_id, with the columns each score
    row carries. Compact (tens of MB for millions of records), shared through Ray's object store."""
    t = records.select("record_id", "patient_key", "recorded_at").to_arrow()
    h = _hash64(t.column("record_id").to_pylist())
    order = np.argsort(h, kind="stable")
    return t.take(pa.array(order)).append_column("hash", pa.array(h[order]))


class ScoreActor:
    """A Ray Data actor: one ONNX Runtime session for its lifetime, a batch of waveform rows per call."""

    def __init__(
        self,
        model: ScoringModel,
        keys: Any,  # pa.Table (cohort_keys) or an ObjectRef to one
        lake: str,
        run_id: str,
        quality: QualityPolicy,
        batch_size: int,
        threads: int,
        scored_at: datetime,
        after_write: Callable[[list[str]], None] | None = None,
    ) -> None:
        import ray

        self.model = model
        self.keys = ray.get(keys) if isinstance(keys, ray.ObjectRef) else keys
        self.hashes = self.keys.column("hash").to_numpy()
        self.lake, self.run_id, self.quality = lake, run_id, quality
        self.batch_size, self.scored_at, self.after_write = batch_size, scored_at, after_write
        self.run = onnx_runner(open_session(model.onnx, threads))

    def _lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(mask of rows in the cohort, their positions in self.keys)."""
        h = _hash64(ids)
        pos = np.clip(np.searchsorted(self.hashes, h), 0, max(0, len(self.hashes) - 1))
        found = (self.hashes[pos] == h) if len(self.hashes) else np.zeros(len(ids), bool)
        cohort_ids = self.keys.column("record_id").take(pa.array(pos)).to_pylist() if len(ids) else []
        found &= np.asarray([a == b for a, b in zip(cohort_ids, ids, strict=True)], dtype=bool)
        return found, pos[found]

    def __call__(self, batch: pa.Table) -> pa.Table:
        batch_key = uuid.uuid4().hex
        found, pos = self._lookup(batch.column("record_id").to_pylist())
        rows = batch.filter(pa.array(found))
        meta = self.keys.take(pa.array(pos))
        reasons = [
            skip_reason(flags, np.asarray(mask, dtype=bool), valid, fs, self.quality)
            for flags, mask, valid, fs in zip(
                rows.column("quality_flags").to_pylist(),
                rows.column("lead_mask").to_pylist(),
                rows.column("valid_samples").to_pylist(),
                rows.column("fs_hz").to_pylist(),
                strict=True,
            )
        ]
        ok = np.asarray([r is None for r in reasons], dtype=bool)
        good, good_meta = rows.filter(pa.array(ok)), meta.filter(pa.array(ok))
        files: list[dict[str, Any]] = []
        if good.num_rows:
            out = score_rows(good, self.model.cfg, self.run, self.batch_size)
            table = self._score_table(good_meta, out)
            files = [f.to_row() for f in commit.write_part_files(table, self.lake, ECG_SCORES, self.run_id)]
        ids = rows.column("record_id").to_pylist()
        if self.after_write is not None:
            self.after_write(ids)
        return pa.Table.from_pylist(
            [
                {
                    "batch_key": batch_key,
                    "record_id": rid,
                    "status": STATUS_SCORED if reason is None else STATUS_SKIPPED,
                    "reason": reason,
                    "files": json.dumps(files) if i == 0 else None,
                }
                for i, (rid, reason) in enumerate(zip(ids, reasons, strict=True))
            ],
            schema=OUTCOME_SCHEMA,
        )

    def _score_table(self, meta: pa.Table, out: Any) -> pa.Table:
        m = self.model
        n = meta.num_rows
        labels = np.asarray(m.labels, dtype=object)
        predicted = [labels[row >= m.thresholds].tolist() for row in out.probs]
        maps = [np.ascontiguousarray(a, dtype=np.float32).reshape(-1) for a in out.anomaly_map]
        return pa.table(
            {
                "record_id": meta.column("record_id"),
                "patient_key": meta.column("patient_key"),
                "recorded_at": meta.column("recorded_at"),
                "model_name": pa.array([m.name] * n, pa.string()),
                "model_version": pa.array([m.version] * n, pa.string()),
                "label_probs": _list_array(list(out.probs.astype(np.float32))),
                "labels_predicted": pa.array(predicted, pa.list_(pa.string())),
                "anomaly_score": pa.array(out.anomaly_score.astype(np.float32)),
                "anomaly_map": _list_array(maps),
                "age_pred": pa.array(out.age.astype(np.float32)),
                "sex_pred": pa.array(out.sex_female_prob.astype(np.float32)),
                "scored_at": pa.array([self.scored_at] * n, pa.timestamp("us", tz="UTC")),
                "run_id": pa.array([self.run_id] * n, pa.string()),
            }
        )


def _list_array(parts: list[np.ndarray]) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int32)
    values = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def new_run_id() -> str:
    return f"{JOB}-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def check_rate(lake: str, records: pl.DataFrame, versions: dict[str, int], model: ScoringModel) -> None:
    """A model trained at one rate cannot score waveforms stored at another: refuse before any work."""
    rates = (
        scan(lake, ECG_WAVEFORMS, versions[ECG_WAVEFORMS])
        .select("record_id", "fs_hz")
        .join(records.lazy().select("record_id"), on="record_id", how="semi")
        .select(pl.col("fs_hz").unique())
        .collect()["fs_hz"]
        .to_list()
    )
    other = sorted(r for r in rates if r != model.cfg.fs_hz)
    if other:
        raise ValueError(
            f"model {model.name} version {model.version} runs at {model.cfg.fs_hz} Hz but the cohort's "
            f"waveforms are stored at {', '.join(map(str, other))} Hz: ingest with --model-fs {model.cfg.fs_hz} "
            "or pick a model "
            "trained at that rate"
        )


def prepare(opts: ScoreOptions, model: ScoringModel) -> tuple[dict[str, int], pl.DataFrame]:
    """Pinned versions and the cohort's records; ValueError (bad input) before any scoring work."""
    lake = normalize_lake(opts.lake)
    versions = pin_versions(lake)
    records = cohort_records(lake, opts.cohort, versions)
    if records.is_empty():
        raise ValueError(
            f"cohort {opts.cohort.canonical()!r} matches no record of ecg_records "
            f"(version {versions['ecg_records']}) in {lake}"
        )
    check_rate(lake, records, versions, model)
    return versions, records


def run_score(
    opts: ScoreOptions,
    model: ScoringModel,
    *,
    versions: dict[str, int] | None = None,
    records: pl.DataFrame | None = None,
    before_commit: Callable[[str], None] | None = None,
    after_write: Callable[[list[str]], None] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> ScoreSummary:
    """Score a cohort with one model version. ``before_commit(table)`` runs just before each table's
    commit and ``after_write(record_ids)`` on an actor after each batch's files are written (tests kill
    runs and actors there)."""
    t0 = time.perf_counter()
    lake = normalize_lake(opts.lake)
    if versions is None or records is None:
        versions, records = prepare(opts, model)
    summary = ScoreSummary(
        run_id=opts.run_id,
        lake=lake,
        model_name=model.name,
        model_version=model.version,
        precision=model.precision,
        cohort=opts.cohort.canonical(),
        table_versions=dict(versions),
        cohort_records=records.height,
    )
    metadata = {
        "rare_ecg.model_name": model.name,
        "rare_ecg.model_version": model.version,
        "rare_ecg.precision": model.precision,
        "rare_ecg.labels": json.dumps(list(model.labels)),
        "rare_ecg.cohort": opts.cohort.to_json(),
        "rare_ecg.table_versions": json.dumps(versions, sort_keys=True),
    }
    if commit.is_committed(lake, ECG_SCORES, JOB, opts.run_id):
        summary.already_committed = True
        log.info("run %s already committed its scores: finishing the other tables", opts.run_id)
    else:
        done = already_scored(lake, model.name, model.version)
        todo = records.join(done, on="record_id", how="anti")
        summary.already_scored = records.height - todo.height
        files, outcomes = (
            _score(opts, model, todo, versions, after_write, progress, t0) if todo.height else ([], [])
        )
        _count(summary, todo, outcomes)
        if files:
            metadata["rare_ecg.skipped_by_reason"] = json.dumps(summary.skipped_by_reason, sort_keys=True)
            if before_commit is not None:
                before_commit(ECG_SCORES)
            if commit.commit_files(lake, ECG_SCORES, files, job=JOB, run_id=opts.run_id, metadata=metadata):
                summary.committed_tables.append(ECG_SCORES)
    _finish(opts, model, lake, records, versions, metadata, summary, before_commit)
    summary.seconds = time.perf_counter() - t0
    summary.ecg_per_s = summary.scored / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def _score(
    opts: ScoreOptions,
    model: ScoringModel,
    todo: pl.DataFrame,
    versions: dict[str, int],
    after_write: Callable[[list[str]], None] | None,
    progress: Callable[[int, int, float], None] | None,
    t0: float,
) -> tuple[list[commit.PartFile], list[pa.Table]]:
    import ray
    from deltalake import DeltaTable

    lake = normalize_lake(opts.lake)
    sources = todo["source"].unique().to_list()
    dt = DeltaTable(
        table_uri(lake, ECG_WAVEFORMS), version=versions[ECG_WAVEFORMS], storage_options=storage_options()
    )
    paths = dt.file_uris(partition_filters=[("source", "in", sources)])
    if not ray.is_initialized():
        ray.init()
    threads = max(1, opts.threads_per_actor)
    actors = opts.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    keys = ray.put(cohort_keys(todo))
    # one read task per Parquet file, a quarter CPU each (not read_parquet: rare_ecg.lake.files)
    ds = parquet_files_dataset(paths, list(WAVE_COLUMNS), num_cpus=0.25).map_batches(
        cast(Any, ScoreActor),  # Ray's stub does not model callable classes with constructor kwargs
        batch_size=opts.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads * opts.cpus_per_thread,
        fn_constructor_kwargs={
            "model": model,
            "keys": keys,
            "lake": lake,
            "run_id": opts.run_id,
            "quality": opts.quality or QualityPolicy(fs_hz=model.cfg.fs_hz),
            "batch_size": opts.batch_size,
            "threads": threads,
            "scored_at": datetime.now(UTC),
            "after_write": after_write,
        },
    )
    outcomes: list[pa.Table] = []
    done = 0
    for out in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        assert isinstance(out, pa.Table)
        if out.num_rows:
            outcomes.append(out)
            done += out.num_rows
            if progress is not None:
                progress(done, todo.height, time.perf_counter() - t0)
    files = _exactly_once(lake, opts.run_id, outcomes)
    return files, outcomes


def _exactly_once(lake: str, run_id: str, outcomes: list[pa.Table]) -> list[commit.PartFile]:
    """The part files of the batches that reached the driver, each record once: should a batch ever be
    delivered twice (a retried task whose first attempt also returned), its later copy's files are left
    uncommitted. Files of attempts that never returned are not here at all."""
    seen: set[str] = set()
    files: list[commit.PartFile] = []
    for out in outcomes:
        for key in dict.fromkeys(out.column("batch_key").to_pylist()):
            part = out.filter(pa.compute.equal(out.column("batch_key"), key))
            ids = part.column("record_id").to_pylist()
            if seen.intersection(ids):
                if not seen.issuperset(ids):
                    raise RuntimeError(f"run {run_id}: a batch partly overlaps earlier ones; retry the run")
                continue
            seen.update(ids)
            blob = next((b for b in part.column("files").to_pylist() if b is not None), None)
            files.extend(commit.PartFile.from_row(r) for r in json.loads(blob or "[]"))
    return files


def _count(summary: ScoreSummary, todo: pl.DataFrame, outcomes: list[pa.Table]) -> None:
    if outcomes:
        df = pl.from_arrow(pa.concat_tables(outcomes).select(["record_id", "status", "reason"]))
        assert isinstance(df, pl.DataFrame)
        df = df.unique("record_id", keep="first")
    else:
        df = pl.DataFrame(schema={"record_id": pl.String, "status": pl.String, "reason": pl.String})
    status = Counter(df["status"].to_list())
    summary.scored = status.get(STATUS_SCORED, 0)
    reasons = Counter(r for r in df.filter(pl.col("status") == STATUS_SKIPPED)["reason"].to_list())
    missing = todo.height - df.height
    if missing:
        reasons[REASON_NO_WAVEFORM] += missing
    summary.skipped = sum(reasons.values())
    summary.skipped_by_reason = dict(sorted(reasons.items()))


def _finish(
    opts: ScoreOptions,
    model: ScoringModel,
    lake: str,
    records: pl.DataFrame,
    versions: dict[str, int],
    metadata: dict[str, str],
    summary: ScoreSummary,
    before_commit: Callable[[str], None] | None,
) -> None:
    """patient_findings and subgroup_metrics, both read back from the committed ecg_scores."""
    if not commit.is_committed(lake, ECG_SCORES, JOB, opts.run_id) and not summary.already_scored:
        return  # nothing scored (every record skipped): no findings or metrics to recompute
    version_scores = scan(lake, ECG_SCORES).filter(
        (pl.col("model_version") == model.version) & (pl.col("model_name") == model.name)
    )
    run_scores = version_scores.filter(pl.col("run_id") == opts.run_id).collect()
    flagged = run_scores.select(pl.col("labels_predicted").explode().drop_nulls().value_counts(sort=True))
    summary.flagged_by_label = {
        r["labels_predicted"]: int(r["count"])
        for r in flagged.unnest("labels_predicted").iter_rows(named=True)
    }
    summary.flagged_records = int((run_scores["labels_predicted"].list.len() > 0).sum())

    findings = patient_findings(version_scores, model.labels)
    summary.patients_with_findings = findings["patient_key"].n_unique()
    summary.new_findings = int(findings["new_finding"].fill_null(False).sum())
    if not commit.is_committed(lake, PATIENT_FINDINGS, JOB, opts.run_id) and not _same_findings(
        lake, model, findings
    ):
        table = findings.with_columns(
            model_name=pl.lit(model.name), model_version=pl.lit(model.version), run_id=pl.lit(opts.run_id)
        ).to_arrow()
        files = commit.write_part_files(table, lake, PATIENT_FINDINGS, opts.run_id)
        if before_commit is not None:
            before_commit(PATIENT_FINDINGS)
        if commit.commit_files(
            lake,
            PATIENT_FINDINGS,
            files,
            job=JOB,
            run_id=opts.run_id,
            metadata=metadata,
            replace_partition={"model_version": model.version},
        ):
            summary.committed_tables.append(PATIENT_FINDINGS)

    if opts.subgroup_metrics and not run_scores.is_empty():
        table = _metrics(opts, model, lake, records, versions, run_scores)
        if table is not None and not commit.is_committed(lake, SUBGROUP_METRICS, JOB, opts.run_id):
            summary.subgroup_metric_rows = table.num_rows
            files = commit.write_part_files(table, lake, SUBGROUP_METRICS, opts.run_id)
            if before_commit is not None:
                before_commit(SUBGROUP_METRICS)
            if commit.commit_files(
                lake, SUBGROUP_METRICS, files, job=JOB, run_id=opts.run_id, metadata=metadata
            ):
                summary.committed_tables.append(SUBGROUP_METRICS)


def _same_findings(lake: str, model: ScoringModel, findings: pl.DataFrame) -> bool:
    """Whether the lake's findings of this version already say exactly this (then a commit adds nothing)."""
    from rare_ecg.scoring.cohort import table_version

    if table_version(lake, PATIENT_FINDINGS) is None:
        return False
    current = (
        scan(lake, PATIENT_FINDINGS)
        .filter(pl.col("model_version") == model.version)
        .select(findings.columns)
        .sort("patient_key", "label")
        .collect()
    )
    return current.equals(findings.sort("patient_key", "label"))


def _metrics(
    opts: ScoreOptions,
    model: ScoringModel,
    lake: str,
    records: pl.DataFrame,
    versions: dict[str, int],
    run_scores: pl.DataFrame,
) -> pa.Table | None:
    """subgroup_metrics of this run's scored records that carry labels (None when none does)."""
    if ECG_LABELS not in versions:
        return None
    scored = run_scores.select("record_id", "label_probs", "labels_predicted").join(
        records.select("record_id", "patient_key", "age", "sex"), on="record_id"
    )
    labels = scan(lake, ECG_LABELS, versions[ECG_LABELS]).select("record_id", "label").collect()
    labelled, y = label_matrix(labels, scored["record_id"].to_list(), model.labels)
    if not labelled.any():
        return None
    scored = scored.filter(pl.Series(labelled))
    y = y[labelled]
    probs = np.asarray(scored["label_probs"].list.to_array(len(model.labels)).to_numpy(), dtype=np.float64)
    index = {label: j for j, label in enumerate(model.labels)}
    pred = np.zeros_like(y, dtype=bool)
    for i, row in enumerate(scored["labels_predicted"].to_list()):
        pred[i, [index[x] for x in row]] = True
    predictions = Predictions(
        labels=model.labels,
        y_true=y,
        y_prob=probs,
        y_pred=pred,
        sex=scored["sex"].to_list(),
        age_years=scored["age"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
        patient_ids=scored["patient_key"].fill_null(scored["record_id"]).to_numpy(),
    )
    rows = metric_rows(predictions, model_label_sets(model.metadata, model.labels, y), n_boot=opts.n_boot)
    table = metrics_table(
        rows, run_id=opts.run_id, model_version=model.version, cohort=opts.cohort.canonical()
    )
    return table.cast(SCHEMAS[SUBGROUP_METRICS])
