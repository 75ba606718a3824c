"""Ingestion throughput and memory against a naive baseline, in the same run.

    python -m benchmarks.ingest [--quick] [--worker-cost] [--memory --sizes 20000 100000]

--worker-cost: a worker batch's per-record cost without Ray, in one process and in one process per CPU at
once (their median, and the records per second they make together: what the machine can reach at all).

Builds PTB-XL-layout archives of N records (the 250 real records of ../shared/data under new names, each
changed in one sample so every copy is its own ECG), then for each rate (100 and 500 Hz) and N:
- baseline: one process, `wfdb.rdsamp` per record, signals appended to one Parquet file;
- ours: `rare-ecg ingest`'s pipeline (Ray Data tasks: read, validate, preprocess, write all tables,
  one Delta commit per table) on a local Ray with all of the machine's CPUs.
Timings are whole-job wall times (ours includes listing, Ray worker start-up and the Delta commits).
Memory: the baseline's is its process's peak RSS; ours is the peak summed RSS of the driver and every
Ray process (raylet, GCS, workers; shared object-store pages counted once per process, so it overstates).
--memory: synthetic cohorts of about --sizes records (rare_ecg.synth, PTB-XL layout, 100 Hz, generated
once with 2 workers into benchmarks/.work and reused), each ingested into a fresh lake on a fresh local
Ray; peak RSS of the driver and of the largest single Ray worker process, sampled apart.
Last line: one JSON object. records_per_s_100hz / _500hz are the steady rates, measured as the marginal
rate between the smallest and the largest archive ((n2 - n1) / (t2 - t1): the fixed start-up drops out),
ratio_vs_baseline_* the same for the naive loop; whole_job_* and startup_s_* report the rest; pandas is
the version the baseline's wfdb ran with (its header parsing depends on it).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks._common import SHARED_DATA, WORK, PeakMemory, emit, machine

SAMPLE = SHARED_DATA / "ptbxl-sample"


def build_archive(dst: Path, n: int, rates: tuple[int, ...] = (100, 500)) -> Path:
    """A PTB-XL-layout archive of n records, made of the real sample's records under new names: real
    files inside the archive (a symlink out of it is rejected as unsafe_path), each signal changed in
    one sample so every copy is its own ECG (byte copies are rejected as duplicates)."""
    if (dst / "ptbxl_database.csv").exists():
        return dst
    tmp = dst.with_suffix(".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with open(SAMPLE / "ptbxl_database.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0].keys())
    shutil.copy(SAMPLE / "scp_statements.csv", tmp / "scp_statements.csv")
    columns = {100: ("filename_lr", "lr", "records100"), 500: ("filename_hr", "hr", "records500")}
    signals: dict[str, np.ndarray] = {}
    with open(tmp / "ptbxl_database.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for ecg_id in range(1, n + 1):
            src = rows[(ecg_id - 1) % len(rows)]
            row = dict(src, ecg_id=str(ecg_id), patient_id=f"{100000 + ecg_id}.0")
            for rate, (col, suffix, folder) in columns.items():
                rel = f"{folder}/{(ecg_id // 1000) * 1000:05d}/{ecg_id:05d}_{suffix}"
                row[col] = rel if rate in rates else ""
                if rate not in rates:
                    continue
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                src_path = SAMPLE / src[col]
                header = src_path.with_suffix(".hea").read_text()
                (tmp / f"{rel}.hea").write_text(header.replace(src_path.name, Path(rel).name))
                if src[col] not in signals:
                    signals[src[col]] = np.fromfile(src_path.with_suffix(".dat"), dtype="<i2")
                data = signals[src[col]].copy()
                data[(ecg_id * 7919) % data.size] += 1 + ecg_id // len(rows)  # its own ECG
                data.tofile(tmp / f"{rel}.dat")
            writer.writerow(row)
    tmp.rename(dst)
    return dst


def baseline(archive: Path, fs_hz: int, out_file: Path) -> dict[str, float]:
    """The naive loop: wfdb.rdsamp each record, append its signal to one Parquet file."""
    import wfdb

    with open(archive / "ptbxl_database.csv", newline="") as fh:
        paths = [r["filename_lr" if fs_hz == 100 else "filename_hr"] for r in csv.DictReader(fh)]
    schema = pa.schema([("path", pa.string()), ("signal", pa.list_(pa.float32()))])
    t0 = time.perf_counter()
    with PeakMemory() as mem, pq.ParquetWriter(out_file, schema) as writer:
        names: list[str] = []
        sigs: list[np.ndarray] = []
        for rel in paths:
            signal, _ = wfdb.rdsamp(str(archive / rel))
            names.append(rel)
            sigs.append(signal.T.astype(np.float32).reshape(-1))
            if len(names) == 256:
                writer.write_table(pa.table({"path": names, "signal": sigs}, schema=schema))
                names, sigs = [], []
        if names:
            writer.write_table(pa.table({"path": names, "signal": sigs}, schema=schema))
    seconds = time.perf_counter() - t0
    # the loop runs in this process alone: its memory is the driver's (the idle Ray cluster is not its own)
    return {"records_per_s": len(paths) / seconds, "seconds": seconds, "peak_rss_mb": mem.peak_driver_mb}


def ours(archive: Path, fs_hz: int, lake: Path) -> dict[str, Any]:
    from rare_ecg.ingest.pipeline import IngestOptions, run_ingest

    opts = IngestOptions(
        archive=archive, layout="ptbxl", lake=str(lake), run_id=f"bench-{fs_hz}", fs_hz=fs_hz
    )
    with PeakMemory() as mem:
        summary = run_ingest(opts)
    if summary.rejected:
        raise RuntimeError(f"benchmark archive had rejects: {summary.rejects_by_reason}")
    return {
        "records_per_s": summary.records_per_s,
        "seconds": summary.seconds,
        "ingested": summary.ingested,
        "peak_rss_mb": mem.peak_tree_mb,
        "peak_driver_rss_mb": mem.peak_driver_mb,
    }


def synth_cohort(n: int, seed: int = 0) -> Path:
    """A synthetic PTB-XL-layout cohort at 100 Hz of about n records (the fewest patients whose ECGs
    reach n), generated once with 2 workers and reused from benchmarks/.work afterwards."""
    from rare_ecg.synth.archive import generate_archive
    from rare_ecg.synth.cohort import visit_counts
    from rare_ecg.synth.config import SynthConfig
    from rare_ecg.synth.layouts import SUMMARY_JSON

    out = WORK / f"synth-ptbxl-100hz-{n}"
    if (out / SUMMARY_JSON).exists():
        return out
    patients = int(np.searchsorted(np.cumsum(visit_counts(seed, n)), n)) + 1
    config = SynthConfig(out=out, patients=patients, seed=seed, fs_hz=100, workers=2)
    generate_archive(config, overwrite=True)
    return out


def memory_at_scale(sizes: list[int]) -> dict[str, Any]:
    """Ingest synthetic cohorts of each size into a fresh lake (100 Hz), each in a fresh Python process
    with its own local Ray, so neither the driver nor a worker carries memory from the last size (in one
    process, the 100,000 run's driver started where the 20,000 run's allocator had left it);
    driver and per-worker peak RSS, whole-job rate."""
    rows = []
    for n in sizes:
        synth_cohort(n)  # generated here, not inside the measured process
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.ingest", "--memory-one", str(n)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(row, flush=True)
        rows.append(row)
    return {"memory": rows, "machine": machine()}


def memory_one(n: int) -> dict[str, Any]:
    """One size of memory_at_scale, in this (fresh) process."""
    import ray

    from rare_ecg.ingest.pipeline import IngestOptions, run_ingest

    archive = synth_cohort(n)
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(dir=WORK) as tmp, PeakMemory() as peaks:
        opts = IngestOptions(archive, "ptbxl", str(Path(tmp) / "lake"), f"memory-{n}", fs_hz=100)
        summary = run_ingest(opts)
    ray.shutdown()
    return {
        "n": summary.records_in,
        "ingested": summary.ingested,
        "rejected": summary.rejected,
        "seconds": round(summary.seconds, 1),
        "records_per_s": round(summary.records_per_s, 1),
        "peak_driver_rss_mb": round(peaks.peak_driver_mb),
        # the kernel's high-water mark of this process: exact, where 0.25 s sampling can miss the short
        # peak of the end of a run (duplicates, rejects and counts over the spooled outcomes)
        "driver_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "peak_worker_rss_mb": round(peaks.peak_worker_mb),
        "worker_processes": peaks.workers_seen,
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def worker_cost(
    archive: Path, fs_hz: int, batches: int = 6, batch_size: int = 64, barrier: Any = None
) -> dict[str, float]:
    """Per-record cost of one worker batch in this process (no Ray): read, validate, preprocess, beat
    positions, rows and Parquet part files, as a Ray Data task does it. Median and best over batches.
    ``barrier``: waited on after the warm-up batch, so that processes measured together overlap."""
    from datetime import UTC, datetime

    from rare_ecg.archive import open_archive
    from rare_ecg.ingest import pipeline
    from rare_ecg.lake import identity

    reader = open_archive(archive, "ptbxl", fs_hz=fs_hz)
    chunks = list(itertools.islice(pipeline._ref_chunks(reader, batch_size), batches + 1))
    with tempfile.TemporaryDirectory(dir=WORK) as lake:
        proc = pipeline.BatchProcessor(
            reader, "ptbxl", lake, "worker-cost", 100, None, pipeline.load_known_state(lake),
            datetime.now(UTC), identity.Secret(b"benchmark"),
        )  # fmt: skip
        proc(chunks[0])  # warm: imports, caches
        if barrier is not None:
            barrier.wait()
        per_record = []
        for chunk in chunks[1:]:
            t0 = time.perf_counter()
            proc(chunk)
            per_record.append((time.perf_counter() - t0) / chunk.num_rows)
    per_record.sort()
    return {"median_ms": 1000 * per_record[len(per_record) // 2], "best_ms": 1000 * per_record[0]}


def _worker_cost_child(archive: Path, fs_hz: int, batches: int, barrier: Any, out: Any) -> None:
    out.put(worker_cost(archive, fs_hz, batches=batches, barrier=barrier))


def worker_ceiling(archive: Path, fs_hz: int, processes: int, batches: int = 12) -> dict[str, float]:
    """The machine's ceiling for this per-record work: ``processes`` processes (one per CPU) each run
    worker batches at the same time, as Ray Data's tasks do; every process's median per-record cost,
    and the records per second all of them together manage (processes / cost), with no Ray overhead."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(processes), ctx.Queue()
    children = [
        ctx.Process(target=_worker_cost_child, args=(archive, fs_hz, batches, barrier, out))
        for _ in range(processes)
    ]
    for child in children:
        child.start()
    costs = [out.get(timeout=600)["median_ms"] for _ in children]
    for child in children:
        child.join(timeout=60)
    together = float(np.median(costs))
    return {
        "processes": processes,
        "together_median_ms": round(together, 3),
        "ceiling_records_per_s": round(processes * 1000 / together, 1),
    }


def _marginal(runs: list[dict[str, Any]], key: str) -> float:
    """Records per second between the smallest and the largest archive: (n2 - n1) / (t2 - t1), so the
    fixed start-up of a run drops out."""
    lo, hi = runs[0], runs[-1]
    return (hi["n"] - lo["n"]) / (hi[key] - lo[key]) if hi[key] > lo[key] else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1,000 and 5,000 (a few minutes)")
    parser.add_argument("--sizes", type=int, nargs="*", help="archive sizes (default 1000 5000 20000)")
    parser.add_argument("--rates", type=int, nargs="*", default=[100, 500], help="PTB-XL rates to read")
    parser.add_argument(
        "--worker-cost",
        action="store_true",
        help="only the per-record cost of a worker batch (no Ray): in one process, then in one per CPU at once",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="driver and per-worker peak memory ingesting synthetic cohorts of --sizes records (100 Hz)",
    )
    parser.add_argument("--memory-one", type=int, help=argparse.SUPPRESS)  # one --memory size, in a child
    args = parser.parse_args()
    if args.memory_one:
        logging.basicConfig(level=logging.WARNING)
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        emit(memory_one(args.memory_one))
        return
    if args.memory:
        logging.basicConfig(level=logging.WARNING)
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        emit(memory_at_scale(sorted(args.sizes or [20000, 100000])))
        return
    if args.worker_cost:
        archive = build_archive(WORK / "ptbxl-v2-1000", 1000)
        cpus = os.cpu_count() or 1
        emit(
            {
                f"{fs}hz": {k: round(v, 3) for k, v in worker_cost(archive, fs, batches=12).items()}
                | worker_ceiling(archive, fs, cpus)
                for fs in args.rates
            }
            | {"machine": machine()}
        )
        return
    sizes = sorted(args.sizes or ([1000, 5000] if args.quick else [1000, 5000, 20000]))
    if not SAMPLE.exists():
        raise SystemExit(f"benchmark needs the real sample at {SAMPLE}")
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import pandas
    import ray

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    ray_init_s = time.perf_counter() - t0
    results: list[dict[str, Any]] = []
    WORK.mkdir(parents=True, exist_ok=True)
    # One untimed run first: Ray starts its worker processes and they import numpy, scipy, pyarrow on the
    # first tasks of a session. Left in, that cost lands on the smallest archive only and inflates the
    # marginal rate (2026-12-01: 1,149 rec/s "steady" from runs whose whole-job rate was 425 rec/s).
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        ours(build_archive(WORK / f"ptbxl-v2-{sizes[0]}", sizes[0]), args.rates[0], Path(tmp) / "lake")
    warmup_s = time.perf_counter() - t0
    for n in sizes:
        archive = build_archive(WORK / f"ptbxl-v2-{n}", n)
        for fs_hz in args.rates:
            with tempfile.TemporaryDirectory(dir=WORK) as tmp:
                base = baseline(archive, fs_hz, Path(tmp) / "baseline.parquet")
                mine = ours(archive, fs_hz, Path(tmp) / "lake")
            row = {
                "n": n,
                "fs_hz": fs_hz,
                "baseline_seconds": round(base["seconds"], 2),
                "seconds": round(mine["seconds"], 2),
                "baseline_records_per_s": round(base["records_per_s"], 1),
                "records_per_s": round(mine["records_per_s"], 1),  # whole job, start-up included
                "ratio_vs_baseline": round(mine["records_per_s"] / base["records_per_s"], 2),
                "baseline_peak_rss_mb": round(base["peak_rss_mb"]),
                "peak_rss_mb": round(mine["peak_rss_mb"]),
                "peak_driver_rss_mb": round(mine["peak_driver_rss_mb"]),
            }
            results.append(row)
            print(row, flush=True)
    ray.shutdown()
    summary: dict[str, Any] = {}
    for fs_hz in args.rates:
        runs = [r for r in results if r["fs_hz"] == fs_hz]
        if len(runs) < 2:
            continue
        rate = _marginal(runs, "seconds")
        base_rate = _marginal(runs, "baseline_seconds")
        summary[f"records_per_s_{fs_hz}hz"] = round(rate, 1)
        summary[f"baseline_records_per_s_{fs_hz}hz"] = round(base_rate, 1)
        summary[f"ratio_vs_baseline_{fs_hz}hz"] = round(rate / base_rate, 2)
        summary[f"whole_job_records_per_s_{fs_hz}hz"] = runs[-1]["records_per_s"]
        # the fixed part of a run: its time minus what its records take at the steady rate
        summary[f"startup_s_{fs_hz}hz"] = round(runs[-1]["seconds"] - runs[-1]["n"] / rate, 2)
    head = results[-1]
    emit(
        {
            **summary,
            "records_per_s": head["records_per_s"],
            "ratio_vs_baseline": head["ratio_vs_baseline"],
            "peak_rss_mb": head["peak_rss_mb"],
            "n": head["n"],
            "fs_hz": head["fs_hz"],
            "sizes": sizes,
            "ray_init_s": round(ray_init_s, 2),
            "warmup_run_s": round(warmup_s, 2),
            "pandas": pandas.__version__,
            "runs": results,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
