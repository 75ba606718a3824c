"""Generate a synthetic cohort as an archive on disk: in parallel, streamed, byte-identical per seed.

Patients are cut into fixed chunks of ``patients_per_task`` (independent of the worker count); a
worker plans its patients, synthesises and writes their WFDB records, and returns the index-table and
annotation lines, which the driver appends in chunk order. Every random draw is keyed by (seed,
patient, ...), and every ecg_id is fixed before any worker starts (visit_counts), so the archive is
the same bytes whatever the number of workers. Nothing cohort-sized is held in memory.

Ground truth: ``annotations.csv`` at the root, columns ``source_path,label,lead,start_sample,end_sample``
(record path relative to the root without extension, SCP code, canonical lead name, samples at that
record's own rate, end exclusive; one row per contiguous span; spans described in labels.py).
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from rare_ecg.archive.annotations import ANNOTATIONS_PARQUET, write_annotations_parquet
from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.synth.calibration import SEXES, label_prevalence, load_calibration
from rare_ecg.synth.cohort import LabelSampler, Patient, age_cdfs, plan_patient, visit_counts
from rare_ecg.synth.config import SynthConfig
from rare_ecg.synth.ecg import RecordSpec, SynthEcg, synthesize
from rare_ecg.synth.layouts import (
    ANNOTATION_COLUMNS,
    ANNOTATIONS_CSV,
    PTBXL_STATEMENTS_CSV,
    SUMMARY_JSON,
    Layout,
    csv_line,
    make_layout,
)
from rare_ecg.synth.wfdb_write import quantize, write_record

RARE_THRESHOLD = 0.01  # METHOD.md: a label under 1% prevalence is rare
_MAINS_HZ = {"ptbxl": 50.0, "mimic": 60.0}  # Germany (PTB-XL) and the US (MIMIC)


@dataclass(frozen=True)
class _Task:
    seed: int
    layout: str
    fs_hz: int
    out: str
    prevalence_json: str
    first_patient: int
    last_patient: int  # exclusive
    first_ecg_id: int
    visits: tuple[int, ...]  # ECGs of each patient of the chunk


@dataclass
class _ChunkResult:
    lines: dict[str, str]  # file name -> text to append
    label_counts: Counter[str]
    records: int
    annotation_rows: int
    bytes_written: int
    files: int
    examples: dict[str, list[tuple[str, RecordSpec]]] = field(default_factory=dict)  # label -> (path, spec)


@cache
def _sampler(prevalence_json: str) -> LabelSampler:
    return LabelSampler(json.loads(prevalence_json))


def record_spec(seed: int, patient: Patient, visit_index: int, layout: str) -> RecordSpec:
    visit = patient.visits[visit_index]
    return RecordSpec(
        seed, patient.index, visit.visit, patient.sex, visit.age, visit.labels, _MAINS_HZ[layout]
    )


def _annotation_lines(source_path: str, ecg: SynthEcg, fs_hz: int) -> list[str]:
    masks = ecg.masks_at(fs_hz)
    columns = (masks.label.tolist(), masks.lead.tolist(), masks.start.tolist(), masks.end.tolist())
    return [
        f"{source_path},{label},{CANONICAL_LEADS[lead]},{start},{end}\n"
        for label, lead, start, end in zip(*columns, strict=True)
    ]


def _run_chunk(task: _Task, examples_per_label: int) -> _ChunkResult:
    cal = load_calibration()
    layout = make_layout(task.layout, task.fs_hz)
    sampler = _sampler(task.prevalence_json)
    cdfs = age_cdfs(cal)
    root = Path(task.out)
    lines: dict[str, list[str]] = {name: [] for name in (*layout.index_files, ANNOTATIONS_CSV)}
    result = _ChunkResult({}, Counter(), 0, 0, 0, 0)
    made: set[Path] = set()
    ecg_id = task.first_ecg_id
    for offset, index in enumerate(range(task.first_patient, task.last_patient)):
        n_visits = task.visits[offset]
        patient = plan_patient(task.seed, index, n_visits, ecg_id, sampler, cal["female_fraction"], cdfs)
        ecg_id += n_visits
        for name, line in layout.patient_rows(patient).items():
            lines[name].append(line)
        for k, visit in enumerate(patient.visits):
            spec = record_spec(task.seed, patient, k, task.layout)
            ecg = synthesize(spec)
            for record in layout.record_files(patient, visit):
                path = root / record.source_path
                if path.parent not in made:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    made.add(path.parent)
                digital = quantize(ecg.signal_at(record.fs_hz)[record.lead_order], record.gain)
                result.bytes_written += write_record(
                    path, digital, record.fs_hz, record.gain, record.lead_names, record.base
                )
                result.files += 2
                ann = _annotation_lines(record.source_path, ecg, record.fs_hz)
                lines[ANNOTATIONS_CSV].extend(ann)
                result.annotation_rows += len(ann)
            for name, line in layout.visit_rows(patient, visit, ecg).items():
                lines[name].append(line)
            result.label_counts.update(visit.labels)
            result.records += 1
            first_path = layout.record_files(patient, visit)[0].source_path
            for code in sorted(visit.labels):
                bucket = result.examples.setdefault(code, [])
                if len(bucket) < examples_per_label:
                    bucket.append((first_path, spec))
    result.lines = {name: "".join(text) for name, text in lines.items()}
    return result


_LIMITER: Any = None


def _init_worker() -> None:
    """Single-threaded BLAS per worker: the processes are the parallelism (and small multithreaded
    matrix products are 100x slower on a busy 2-core machine)."""
    global _LIMITER
    _LIMITER = threadpool_limits(1)


def _tasks(config: SynthConfig) -> Iterator[_Task]:
    counts = visit_counts(config.seed, config.patients)
    first_ids = np.concatenate([[1], 1 + np.cumsum(counts)[:-1]])
    prevalence_json = json.dumps(config.prevalence, sort_keys=True)
    step = config.patients_per_task
    for a in range(0, config.patients, step):
        b = min(config.patients, a + step)
        yield _Task(config.seed, config.layout, config.fs_hz, str(config.out), prevalence_json, a, b,
                    int(first_ids[a]), tuple(int(c) for c in counts[a:b]))  # fmt: skip


def _results(config: SynthConfig) -> Iterator[_ChunkResult]:
    """Chunk results in chunk order; at most a few chunks per worker in flight."""
    tasks = _tasks(config)
    if config.workers == 1:
        with threadpool_limits(1):
            for task in tasks:
                yield _run_chunk(task, config.preview_per_label)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a driver that may hold Ray threads
    with ProcessPoolExecutor(config.workers, mp_context=context, initializer=_init_worker) as pool:
        pending: deque[Future[_ChunkResult]] = deque()
        for task in tasks:
            pending.append(pool.submit(_run_chunk, task, config.preview_per_label))
            if len(pending) >= 3 * config.workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def target_frequencies(prevalence: dict[str, float | dict[str, float]]) -> dict[str, float]:
    """The label frequencies the generator aims at: PTB-XL's, with the overrides (a per-sex override
    weighted by PTB-XL's sex ratio)."""
    cal = load_calibration()
    out = label_prevalence(cal)
    female = float(cal["female_fraction"])
    for code, target in prevalence.items():
        if isinstance(target, dict):
            by_sex = {
                sex: target.get(
                    sex,
                    label_prevalence({"strata": [s for s in cal["strata"] if s["sex"] == sex]}).get(
                        code, 0.0
                    ),
                )
                for sex in SEXES
            }
            out[code] = female * by_sex["female"] + (1.0 - female) * by_sex["male"]
        else:
            out[code] = target
    return out


def _prepare(out: Path, overwrite: bool, layout: Layout) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(
                f"output folder {out} is not empty; choose an empty or new folder (or overwrite=True)"
            )
        for name in ("records100", "records500", "files", "preview"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (
            *layout.index_files,
            ANNOTATIONS_CSV,
            ANNOTATIONS_PARQUET,
            PTBXL_STATEMENTS_CSV,
            SUMMARY_JSON,
        ):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def generate_archive(config: SynthConfig, overwrite: bool = False) -> dict[str, Any]:
    """Write the cohort of ``config`` under ``config.out``; returns the summary (also written to
    synth_summary.json, without the timings, so the archive stays byte-identical per seed)."""
    started = time.perf_counter()
    out = Path(config.out)
    layout = make_layout(config.layout, config.fs_hz)
    _prepare(out, overwrite, layout)
    handles = {
        name: open(out / name, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in finally
        for name in (*layout.index_files, ANNOTATIONS_CSV)
    }
    counts: Counter[str] = Counter()
    records = rows = written = n_files = 0
    examples: dict[str, list[tuple[str, RecordSpec]]] = {}
    try:
        for name, header in layout.headers().items():
            handles[name].write(header)
        handles[ANNOTATIONS_CSV].write(csv_line(ANNOTATION_COLUMNS))
        for result in _results(config):
            for name, text in result.lines.items():
                handles[name].write(text)
            counts.update(result.label_counts)
            records += result.records
            rows += result.annotation_rows
            written += result.bytes_written
            n_files += result.files
            for code, found in result.examples.items():
                bucket = examples.setdefault(code, [])
                bucket.extend(found[: config.preview_per_label - len(bucket)])
    finally:
        for handle in handles.values():
            handle.close()
    # what ingestion workers read: only the row groups of the records they ingest
    write_annotations_parquet(out / ANNOTATIONS_CSV, out / ANNOTATIONS_PARQUET)
    if config.layout == "ptbxl":
        statements = files("rare_ecg") / "resources" / "labels" / PTBXL_STATEMENTS_CSV
        (out / PTBXL_STATEMENTS_CSV).write_bytes(statements.read_bytes())
    targets = target_frequencies(config.prevalence)
    summary: dict[str, Any] = {
        "layout": config.layout,
        "fs_hz": config.fs_hz,
        "rates_hz": list(layout.rates),
        "seed": config.seed,
        "patients": config.patients,
        "records": records,
        "annotation_rows": rows,
        "files": n_files + len(layout.index_files) + 3 + (config.layout == "ptbxl"),
        "bytes_written": written,
        "label_counts": dict(sorted(counts.items())),
        "label_frequency": {code: round(n / records, 6) for code, n in sorted(counts.items())},
        "target_frequency": {code: round(p, 6) for code, p in sorted(targets.items())},
        "rare_labels": sorted(code for code, p in targets.items() if p < RARE_THRESHOLD),
        "prevalence_overrides": config.prevalence,
    }
    (out / SUMMARY_JSON).write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    if config.preview:
        from rare_ecg.synth.preview import write_previews  # matplotlib only when asked for

        summary["previews"] = write_previews(out / "preview", examples, config.layout)
    seconds = time.perf_counter() - started
    summary["seconds"] = round(seconds, 3)
    summary["records_per_s"] = round(records / seconds, 2)
    summary["bytes_per_s"] = round(written / seconds, 1)
    return summary
