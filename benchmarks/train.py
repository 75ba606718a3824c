"""Pretraining throughput: the library's plain loop vs the Ray Train job with 1 and 2 workers.

Same data (a synthetic cohort ingested into a fresh lake, its training split), same network, same
cores, in one run: (a) the single-process loop of `rare_ecg.model.training.pretrain_step` over batches
held in memory, with all cores as torch threads; (b) the Ray Train job, 1 worker reserving 1 CPU with
2 torch threads; (c) 2 workers of 0.5 CPU and 1 thread each (the rest stays for Ray Data's readers). The
first epoch of each is a warm-up; samples/s is over the others. Where the time goes: for the plain
loop, batch inputs / forward / backward+step per batch; for Ray Train, the share of the epoch workers
spend waiting on the data stream (the rest is inputs, forward, backward and DDP's all-reduce).

    python -m benchmarks.train [--quick]

Last line JSON: samples_per_s_plain, samples_per_s_1, samples_per_s_2, scaling_1_to_2,
ratio_vs_plain_loop (2 workers / plain loop), peak_rss_mb, plus the profile and the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as pads
import torch

from benchmarks._common import PeakMemory, emit, machine
from rare_ecg.config import IngestConfig, PretrainConfig, Settings
from rare_ecg.lake.schema import ECG_WAVEFORMS
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel
from rare_ecg.model.training import PretrainWeights, make_optimizer, pretrain_losses, pretrain_objective
from rare_ecg.train.data import (
    WAVEFORM_COLUMNS,
    open_snapshot,
    split_attributes,
    split_plan,
    windows_of_block,
)
from rare_ecg.train.job import run_pretrain_job
from rare_ecg.train.loop import step_seed, to_batch
from rare_ecg.train.splits import TRAIN

BATCH = 16


def build_lake(root: Path, patients: int) -> Path:
    from rare_ecg.ingest.job import run_ingest_job
    from rare_ecg.synth.archive import generate_archive
    from rare_ecg.synth.config import SynthConfig

    archive = root / "archive"
    generate_archive(
        SynthConfig(out=archive, patients=patients, seed=3, fs_hz=100, layout="ptbxl", workers=2)
    )
    lake = root / "lake"
    run_ingest_job(
        IngestConfig(archive=archive, layout="ptbxl", fs_hz=100, lake=str(lake), source="synthetic"),
        Settings.model_validate({"RARE_ECG_LAKE": str(lake)}),
    )
    return lake


def training_windows(lake: Path, cfg: ModelConfig) -> dict[str, np.ndarray]:
    """The training split's windows in memory (what the plain loop iterates)."""
    snapshot = open_snapshot(str(lake))
    table = pads.dataset(snapshot.files(ECG_WAVEFORMS), format="parquet").to_table(
        columns=WAVEFORM_COLUMNS, use_threads=False
    )
    return windows_of_block(table, split_attributes(split_plan(snapshot), TRAIN), cfg.n_leads, cfg.n_samples)


def plain_loop(arrays: dict[str, np.ndarray], cfg: ModelConfig, epochs: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = EcgModel(cfg)
    optimizer = make_optimizer(model)
    weights = PretrainWeights()
    n = len(arrays["signal"])
    times = {"inputs": 0.0, "forward": 0.0, "backward_step": 0.0}
    rates = []
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(n)
        started = time.perf_counter()
        for step, lo in enumerate(range(0, n, BATCH)):
            idx = order[lo : lo + BATCH]
            batch = to_batch({k: v[idx] for k, v in arrays.items()})
            t0 = time.perf_counter()
            batch.inputs(cfg, np.random.default_rng(step))  # measured alone: pretrain_losses rebuilds them
            t1 = time.perf_counter()
            model.train()
            terms = pretrain_losses(model, batch, torch.Generator().manual_seed(step_seed(0, epoch, step, 0)))
            loss = pretrain_objective(terms, weights)
            t2 = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            t3 = time.perf_counter()
            if epoch > 0:
                times["inputs"] += t1 - t0
                times["forward"] += t2 - t1 - (t1 - t0)  # pretrain_losses includes building the inputs
                times["backward_step"] += t3 - t2
        elapsed = time.perf_counter() - started
        if epoch > 0:
            rates.append(n / elapsed)
    total = sum(times.values())
    return {
        "samples_per_s": statistics.mean(rates),
        "profile_share": {k: round(v / total, 3) for k, v in times.items()},
    }


def ray_train(lake: Path, root: Path, cfg: ModelConfig, workers: int, epochs: int) -> dict[str, Any]:
    cpus = (
        1.0 if workers == 1 else 0.5
    )  # with 1.5 for one worker, no epoch ended in 11 min on a loaded machine
    seen: list[dict[str, Any]] = []
    job = PretrainConfig(
        lake=str(lake),
        storage_path=str(root / "runs"),
        run_name=f"bench-{workers}",
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        epochs=epochs,
        batch_size=BATCH,
        workers=workers,
        cpus_per_worker=cpus,
        threads_per_worker=2 // workers,
        validation_split=None,
        register_model=False,
    )
    settings = Settings.model_validate({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
    started = time.perf_counter()
    run_pretrain_job(job, settings, on_epoch=seen.append)
    measured = seen[1:] or seen
    return {
        "samples_per_s": statistics.mean(m["samples_per_s"] for m in measured),
        "data_wait_share": round(
            statistics.mean(m["data_wait_seconds"] / m["train_seconds"] for m in measured), 3
        ),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smaller cohort and network, 2 epochs")
    args = parser.parse_args()
    import ray

    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    patients, epochs = (30, 2) if args.quick else (100, 3)
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4) if args.quick else ModelConfig()
    ray.init(address="local", num_cpus=os.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
    with tempfile.TemporaryDirectory(prefix="rare-ecg-bench-train-") as tmp:
        root = Path(tmp)
        lake = build_lake(root, patients)
        arrays = training_windows(lake, cfg)
        plain = plain_loop(arrays, cfg, epochs, threads=os.cpu_count() or 2)
        with PeakMemory() as memory:
            one = ray_train(lake, root / "w1", cfg, 1, epochs)
            two = ray_train(lake, root / "w2", cfg, 2, epochs)
    ray.shutdown()
    emit(
        {
            "train_windows": len(arrays["signal"]),
            "epochs": epochs,
            "d_model": cfg.d_model,
            "n_layers": cfg.n_layers,
            "batch_size": BATCH,
            "samples_per_s_plain": round(plain["samples_per_s"], 2),
            "samples_per_s_1": round(one["samples_per_s"], 2),
            "samples_per_s_2": round(two["samples_per_s"], 2),
            "scaling_1_to_2": round(two["samples_per_s"] / one["samples_per_s"], 3),
            "ratio_vs_plain_loop": round(two["samples_per_s"] / plain["samples_per_s"], 3),
            "plain_profile_share": plain["profile_share"],
            "data_wait_share_1": one["data_wait_share"],
            "data_wait_share_2": two["data_wait_share"],
            "wall_s_1": one["wall_s"],
            "wall_s_2": two["wall_s"],
            "peak_rss_mb": round(memory.peak_tree_mb),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
