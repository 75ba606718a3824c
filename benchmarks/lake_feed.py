"""Streaming the lake into training and scoring: ``ray.data.read_parquet`` vs ``rare_ecg.lake.files``.

One run, one Ray session, one lake (a synthetic cohort ingested at 100 Hz): the training split's
dataset (`rare_ecg.train.data.split_dataset`, the same window task after the read) built both ways and
iterated as an epoch does, several passes each, alternating. Ray 2.60's read_parquet starts FooterReader
actors in its listing task on every execution; the files reader is one fractional-CPU task per file.
The first pass of each is a warm-up (worker processes start); the medians are over the rest.

    python -m benchmarks.lake_feed [--patients 24] [--passes 5]

Last line JSON: seconds_per_pass_read_parquet, seconds_per_pass_files, ratio (read_parquet / files),
rows per pass, the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmarks._common import emit, machine
from rare_ecg.config import IngestConfig, Settings
from rare_ecg.lake.schema import ECG_WAVEFORMS
from rare_ecg.train import data


def _read_parquet_dataset(snapshot: data.LakeSnapshot, plan: Any, split: str) -> Any:
    """What split_dataset built before rare_ecg.lake.files (the baseline)."""
    import ray

    attributes = data.split_attributes(plan, split)
    return ray.data.read_parquet(
        snapshot.files(ECG_WAVEFORMS), columns=data.WAVEFORM_COLUMNS, partitioning=None, num_cpus=0.25
    ).map_batches(
        partial(data._windows_task, attributes_ref=ray.put(attributes), n_leads=12, window=1000),
        batch_format="pyarrow",
        num_cpus=0.25,
    )


def _one_pass(ds: Any) -> tuple[float, int]:
    started = time.perf_counter()
    rows = 0
    for batch in ds.iter_batches(batch_size=8, batch_format="numpy"):
        rows += len(batch["signal"])
    return time.perf_counter() - started, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import logging

    import ray

    from rare_ecg.ingest.job import run_ingest_job
    from rare_ecg.synth.archive import generate_archive
    from rare_ecg.synth.config import SynthConfig

    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # a line per execution otherwise
    with tempfile.TemporaryDirectory(prefix="rare-ecg-feed-") as tmp:
        root = Path(tmp)
        generate_archive(
            SynthConfig(
                out=root / "archive", patients=args.patients, seed=7, fs_hz=100, layout="ptbxl", workers=1
            )
        )
        lake = str(root / "lake")
        run_ingest_job(
            IngestConfig(archive=root / "archive", layout="ptbxl", fs_hz=100, lake=lake, source="synthetic"),
            Settings.model_validate({"RARE_ECG_LAKE": lake}),
        )
        snapshot = data.open_snapshot(lake)
        plan = data.split_plan(snapshot)
        builds = {
            "read_parquet": lambda: _read_parquet_dataset(snapshot, plan, "train"),
            "files": lambda: data.split_dataset(snapshot, plan, "train", 12, 1000),
        }
        seconds: dict[str, list[float]] = {k: [] for k in builds}
        rows: dict[str, int] = {}
        datasets = {k: build() for k, build in builds.items()}
        for i in range(args.passes + 1):
            for name, ds in datasets.items():  # alternating: the machine's noise hits both alike
                s, n = _one_pass(ds)
                rows[name] = n
                if i > 0:
                    seconds[name].append(s)
                print(f"pass {i} {name}: {n} rows in {s:.2f} s", flush=True)
    ray.shutdown()
    assert rows["read_parquet"] == rows["files"], rows
    old, new = (statistics.median(seconds[k]) for k in ("read_parquet", "files"))
    emit(
        {
            "seconds_per_pass_read_parquet": round(old, 3),
            "seconds_per_pass_files": round(new, 3),
            "ratio": round(old / new, 2),
            "rows_per_pass": rows["files"],
            "passes": args.passes,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
