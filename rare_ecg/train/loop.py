"""The per-worker loop Ray Train runs: the library's step functions over this worker's shard, DDP,
per-epoch metrics all-reduced over workers, a checkpoint every epoch, restore on (re)start.

One loop for every mode: pretraining today (`rare_ecg.model.training.pretrain_step`); fine-tuning is
another `mode` of the same spec, with its own step and metrics, and the same data feeding, checkpoints,
resume and registry.
"""

from __future__ import annotations

import pickle
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from rare_ecg.model.config import MEASUREMENTS, ModelConfig
from rare_ecg.model.network import EcgModel
from rare_ecg.model.skill import SKILL_SEED, inpainting_skill
from rare_ecg.model.training import (
    Batch,
    PretrainWeights,
    make_optimizer,
    pretrain_losses,
    pretrain_objective,
    pretrain_step,
)

CHECKPOINT_FILE = "checkpoint.pt"
TRAIN_DATASET, VALIDATION_DATASET = "train", "validation"
ATTRIBUTE_TERMS = ("age", "sex", "measurements")
VALIDATION_SEED = 1_000_003  # fixed masks on validation: epochs are compared on the same problem


@dataclass(frozen=True)
class LoopSpec:
    """Everything a worker needs, as plain data (it travels to the workers and into the checkpoint)."""

    mode: str  # "pretrain"
    model: dict[str, Any]  # ModelConfig.to_dict()
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    weights: dict[str, float]  # PretrainWeights fields
    threads: int
    validate: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _DDP(DistributedDataParallel):
    """DDP that still answers `.cfg`, so the library's step functions take it as they take the model."""

    @property
    def cfg(self) -> ModelConfig:
        return self.module.cfg


def to_batch(arrays: dict[str, np.ndarray]) -> Batch:
    """A numpy batch of the training stream (rare_ecg.train.data) -> the library's Batch."""
    measurements = np.stack([arrays[m] for m in MEASUREMENTS], axis=1).astype(np.float32)
    return Batch(
        signal=arrays["signal"],
        lead_mask=arrays["lead_mask"],
        beat_positions=list(arrays["beat_positions"]),
        age=arrays["age"],
        sex=arrays["sex_female"],
        measurements=measurements,
    )


def step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    """Masks and beat windows of one step: a function of where the step is, so a resumed run draws
    exactly what the uninterrupted run would have."""
    return int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1)[0])


def _with_totals(terms: dict[str, float], total: float) -> dict[str, float]:
    out = {k: v for k, v in terms.items() if k != "loss"}
    out["attributes"] = sum(out[k] for k in ATTRIBUTE_TERMS)
    out["total"] = total
    return out


def _all_reduce(values: dict[str, float], world: int, op: str = "sum") -> dict[str, float]:
    if world == 1:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist(), strict=True))


def _means(sums: dict[str, float], n: int, world: int) -> tuple[dict[str, float], int]:
    totals = _all_reduce({**sums, "__n": float(n)}, world)
    count = int(totals.pop("__n"))
    return {k: v / max(count, 1) for k, v in totals.items()}, count


def _batches(shard: Any, spec: LoopSpec, epoch: int, shuffle: bool) -> Iterable[dict[str, np.ndarray]]:
    return shard.iter_batches(
        batch_size=spec.batch_size,
        batch_format="numpy",
        local_shuffle_buffer_size=4 * spec.batch_size if shuffle else None,
        local_shuffle_seed=spec.seed + epoch if shuffle else None,
    )


def validation_losses(model: EcgModel, shard: Any, spec: LoopSpec, world: int) -> dict[str, float]:
    """Every loss term on the validation shard (fixed masks), and the inpainting skill: hidden-point
    MSE over that of the R-aligned neighbouring-beat copy (rare_ecg.model.skill; below 1 beats it)."""
    weights = PretrainWeights(**spec.weights)
    model.eval()
    sums: dict[str, float] = defaultdict(float)
    skill = {"net": 0.0, "copy": 0.0, "zero": 0.0, "points": 0.0}
    n = 0
    with torch.no_grad():
        for i, arrays in enumerate(_batches(shard, spec, 0, shuffle=False)):
            batch = to_batch(arrays)
            terms = pretrain_losses(model, batch, torch.Generator().manual_seed(VALIDATION_SEED + i))
            total = float(pretrain_objective(terms, weights))
            size = len(batch.signal)
            for k, v in _with_totals({k: float(t) for k, t in terms.items()}, total).items():
                sums[k] += v * size
            n += size
            s = inpainting_skill(model, [batch], seed=SKILL_SEED + i)
            for key, name in (("net", "hidden_mse"), ("copy", "copy_mse"), ("zero", "zero_mse")):
                skill[key] += s[name] * s["n_points"]
            skill["points"] += s["n_points"]
    means, _ = _means(dict(sums), n, world)
    skill = _all_reduce(skill, world)
    if skill["copy"] > 0 and skill["zero"] > 0:
        means["inpainting_skill"] = skill["net"] / skill["copy"]
        means["inpainting_vs_zero"] = skill["net"] / skill["zero"]
    return means


def _restore(model: EcgModel, optimizer: torch.optim.Optimizer) -> tuple[int, list[dict[str, Any]]]:
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0, []
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return int(state["epoch"]), list(state["history"])


def _checkpoint_state(
    model: EcgModel,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    spec: LoopSpec,
) -> dict[str, Any]:
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": epoch,
        "history": history,
        "spec": spec.to_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's entry point on every worker. ``config``: {"spec": LoopSpec.to_dict(), "progress":
    an optional ray.util.queue.Queue the driver reads the epoch metrics from}."""
    import ray.train

    spec = LoopSpec(**config["spec"])
    if spec.mode != "pretrain":
        raise ValueError(f"unknown training mode {spec.mode!r}; this loop runs: pretrain")
    progress = config.get("progress")
    torch.set_num_threads(spec.threads)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()

    torch.manual_seed(spec.seed)  # the same initial weights on every worker
    model = EcgModel(ModelConfig.from_dict(spec.model))
    optimizer = make_optimizer(model, lr=spec.lr, weight_decay=spec.weight_decay)
    start_epoch, history = _restore(model, optimizer)
    net: EcgModel = _DDP(model) if world > 1 else model  # type: ignore[assignment]
    weights = PretrainWeights(**spec.weights)
    train_shard = ray.train.get_dataset_shard(TRAIN_DATASET)
    val_shard = ray.train.get_dataset_shard(VALIDATION_DATASET) if spec.validate else None

    for epoch in range(start_epoch, spec.epochs):
        started = time.perf_counter()
        sums: dict[str, float] = defaultdict(float)
        n = 0
        waited = 0.0  # time spent waiting for the data stream (the rest is inputs, forward, backward, sync)
        batches = iter(_batches(train_shard, spec, epoch, shuffle=True))
        step = 0
        while True:
            asked = time.perf_counter()
            arrays = next(batches, None)
            waited += time.perf_counter() - asked
            if arrays is None:
                break
            batch = to_batch(arrays)
            terms = pretrain_step(net, optimizer, batch, step_seed(spec.seed, epoch, step, rank), weights)
            size = len(batch.signal)
            for k, v in _with_totals(terms, terms["loss"]).items():
                sums[k] += v * size
            n += size
            step += 1
        timing = _all_reduce({"s": time.perf_counter() - started, "wait": waited}, world, op="max")
        train_s = timing["s"]
        train, samples = _means(dict(sums), n, world)
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "epochs": spec.epochs,
            "resumed_from_epoch": start_epoch,
            "samples": samples,
            "samples_per_s": samples / train_s if train_s > 0 else 0.0,
            "train_seconds": train_s,
            "data_wait_seconds": timing["wait"],  # the slowest worker's
            **{f"train_{k}": v for k, v in train.items()},
        }
        if val_shard is not None:
            metrics.update(
                {f"val_{k}": v for k, v in validation_losses(model, val_shard, spec, world).items()}
            )
        metrics["epoch_seconds"] = time.perf_counter() - started
        history.append(metrics)
        _report(metrics, model, optimizer, epoch + 1, history, spec, rank, progress)


def _report(
    metrics: dict[str, Any],
    model: EcgModel,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    spec: LoopSpec,
    rank: int,
    progress: Any,
) -> None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="rare-ecg-ckpt-") as folder:
        torch.save(_checkpoint_state(model, optimizer, epoch, history, spec), Path(folder) / CHECKPOINT_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    if progress is not None:
        progress.put(metrics)


def read_checkpoint(folder: str | Path) -> dict[str, Any]:
    """A checkpoint written by this loop (model state, optimizer state, epoch, history, spec, RNG)."""
    return torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)


@dataclass(frozen=True)
class FinishedRun:
    """The last checkpoint of a run that has trained every epoch it was asked for."""

    path: str
    state: dict[str, Any]


def finished_run(storage_path: str | Path, run_name: str, epochs: int) -> FinishedRun | None:
    """The newest readable checkpoint of ``run_name`` under ``storage_path`` when it holds exactly
    ``epochs`` epochs, else None. A re-run of a finished run needs no Ray Train workers: all they would
    do is restore this checkpoint and stop."""
    folders = sorted((Path(storage_path) / run_name).glob("checkpoint_*"), reverse=True)
    for folder in folders:  # Ray Train names them checkpoint_<timestamp>: newest first
        try:
            state = read_checkpoint(folder)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
            continue  # a checkpoint cut short (a killed run): Ray Train restores the one before
        return FinishedRun(str(folder), state) if int(state["epoch"]) == epochs else None
    return None


def trained_or_finished(
    storage_path: str, run_name: str, epochs: int, resumed: bool, fit: Callable[[], Any]
) -> tuple[str, dict[str, Any]]:
    """(checkpoint path, checkpoint state) of a run once it has trained every epoch: read from disk
    when a resumed run is found finished (`finished_run`), else from what ``fit`` (the job's Ray Train
    fit, training or resuming) returns."""
    finished = finished_run(storage_path, run_name, epochs) if resumed else None
    if finished is not None:
        return finished.path, finished.state
    result = fit()
    if result.checkpoint is None:
        raise RuntimeError(f"run {run_name} finished without a checkpoint under {storage_path}")
    with result.checkpoint.as_directory() as folder:
        return str(result.checkpoint.path), read_checkpoint(folder)
