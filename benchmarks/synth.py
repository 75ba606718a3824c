"""Synthetic cohort generation: records/s and bytes/s at 100 and 500 Hz, with 1 and 2 workers.

    python -m benchmarks.synth [--quick] [--patients N]

For each rate (100 Hz: records100 only; 500 Hz: records500 and records100) and worker count, runs
``generate_archive`` on a fresh folder and times the whole job (planning, synthesis, WFDB writing,
index tables, annotations). Worker processes take a second or two to start (spawn, imports): a
2-patient run with the same settings measures that start-up, and the steady rate (records over the
time beyond start-up) is what is extrapolated to a million records. The 1-minute load average before
and after each run is recorded: on a shared machine other jobs change the numbers. Also times our
direct WFDB writer against ``wfdb.wrsamp`` on the same signals (the baseline the writer replaces).
Last line: one JSON object (records_per_s at 100 Hz with 2 workers, the 1->2 worker scaling, hours
for 1M records at 100 Hz, and the writer's speed-up over wrsamp).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from typing import Any

import numpy as np
import wfdb

from benchmarks._common import WORK, PeakMemory, emit, machine
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig
from rare_ecg.synth.ecg import RecordSpec, synthesize
from rare_ecg.synth.labels import resolve
from rare_ecg.synth.layouts import PTBXL_GAIN, PTBXL_LEADS
from rare_ecg.synth.wfdb_write import quantize, write_record

ROOT = WORK / "synth"
MILLION = 1_000_000


def _run(fs: int, workers: int, patients: int, seed: int) -> dict[str, Any]:
    out = ROOT / f"fs{fs}_w{workers}_p{patients}"
    shutil.rmtree(out, ignore_errors=True)
    load_before = os.getloadavg()[0]
    with PeakMemory() as memory:
        summary = generate_archive(
            SynthConfig(out=out, patients=patients, seed=seed, fs_hz=fs, workers=workers)
        )
    annotations_bytes = (out / "annotations.csv").stat().st_size
    shutil.rmtree(out, ignore_errors=True)
    return {
        "records": summary["records"],
        "seconds": summary["seconds"],
        "bytes_written": summary["bytes_written"],
        "annotations_bytes": annotations_bytes,
        "peak_rss_mb": round(memory.peak_tree_mb, 1),
        # the machine is shared: a 1-minute load average above the run's own workers means others ran too
        "load_before": round(load_before, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def _writer_vs_wrsamp(n: int) -> dict[str, float]:
    """Records/s writing the same 500 Hz digital signals with our writer and with wfdb.wrsamp."""
    signals = [
        quantize(synthesize(RecordSpec(1, i, 0, "male", 60.0, resolve({"SR"}))).signal_at(500), PTBXL_GAIN)
        for i in range(n)
    ]
    folder = ROOT / "writer"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    for i, digital in enumerate(signals):
        write_record(folder / f"ours_{i}", digital, 500, PTBXL_GAIN, PTBXL_LEADS)
    ours = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for i, digital in enumerate(signals):
        wfdb.wrsamp(
            f"theirs_{i}", fs=500, units=["mV"] * 12, sig_name=PTBXL_LEADS, d_signal=digital.T.astype(np.int64),
            fmt=["16"] * 12, adc_gain=[PTBXL_GAIN] * 12, baseline=[0] * 12, write_dir=str(folder),
        )  # fmt: skip
    theirs = n / (time.perf_counter() - started)
    shutil.rmtree(folder, ignore_errors=True)
    return {"ours_records_per_s": round(ours, 1), "wrsamp_records_per_s": round(theirs, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small cohorts (well under a minute)")
    parser.add_argument(
        "--patients", type=int, default=None, help="patients per run (default 2000, quick 120)"
    )
    args = parser.parse_args(argv)
    patients = args.patients or (120 if args.quick else 2000)
    print(f"machine: {machine()}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for fs in (100, 500):
        for workers in (1, 2):
            start_up = _run(fs, workers, 2, seed=1)["seconds"]
            run = _run(fs, workers, patients, seed=1)
            steady = run["records"] / max(1e-9, run["seconds"] - start_up)
            per_record = (run["bytes_written"] + run["annotations_bytes"]) / run["records"]
            row = {
                **run,
                "start_up_s": start_up,
                "records_per_s": round(run["records"] / run["seconds"], 1),
                "steady_records_per_s": round(steady, 1),
                "bytes_per_s": round(run["bytes_written"] / run["seconds"]),
                "bytes_per_record": round(per_record),
                "hours_per_million": round(MILLION / steady / 3600, 2),
                "tb_per_million": round(per_record * MILLION / 1e12, 3),
            }
            results[f"{fs}hz_{workers}w"] = row
            print(f"{fs} Hz, {workers} worker(s): {row}", flush=True)
    writer = _writer_vs_wrsamp(20 if args.quick else 60)
    print(f"WFDB writer at 500 Hz: {writer}", flush=True)
    best = results["100hz_2w"]
    emit(
        {
            "records_per_s": best["steady_records_per_s"],
            "records_per_s_500hz": results["500hz_2w"]["steady_records_per_s"],
            "scaling_1_to_2_workers": round(
                best["steady_records_per_s"] / results["100hz_1w"]["steady_records_per_s"], 2
            ),
            "minutes_per_100k_at_100hz": round(100_000 / best["steady_records_per_s"] / 60, 1),
            "hours_per_million_at_100hz": best["hours_per_million"],
            "hours_per_million_at_500hz": results["500hz_2w"]["hours_per_million"],
            "writer_speedup_vs_wrsamp": round(
                writer["ours_records_per_s"] / writer["wrsamp_records_per_s"], 1
            ),
            "patients_per_run": patients,
        }
    )


if __name__ == "__main__":
    main()
