"""Fine-tuning as a mode of the Ray Train harness (rare_ecg.train.loop): the same spec, shards, DDP,
step seeds, per-epoch all-reduced metrics, a checkpoint every epoch and restore on (re)start; the step is
the library's `finetune_step`, and every checkpoint also carries the best weights so far, chosen on the
validation split (macro AUROC over its windows, else the lowest validation loss).
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from rare_ecg.metrics import macro_metric, per_label_metrics
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel
from rare_ecg.model.objectives import ClassifierLoss, classification_loss
from rare_ecg.model.training import FinetuneSettings, finetune_step, make_optimizer
from rare_ecg.train.data import windows_of_block
from rare_ecg.train.loop import (
    _DDP,
    CHECKPOINT_FILE,
    TRAIN_DATASET,
    VALIDATION_DATASET,
    LoopSpec,
    _all_reduce,
    _batches,
    _checkpoint_state,
    _means,
    _restore,
    step_seed,
    to_batch,
)

FINETUNE = "finetune"


def labelled_windows_of_block(
    block: pa.Table, attributes: pa.Table, targets: np.ndarray, n_leads: int, window: int
) -> dict[str, np.ndarray]:
    """`windows_of_block` plus `labels` (M, L) uint8: ``targets`` holds one row per ``attributes`` row."""
    batch = windows_of_block(block, attributes, n_leads, window)
    where = pc.index_in(block["record_id"], value_set=attributes["record_id"])
    keep = pc.is_valid(where)
    rows = pc.filter(where, keep).to_numpy().astype(np.int64)
    n_windows = block.filter(keep)["n_windows"].to_numpy().astype(np.int64)
    batch["labels"] = np.repeat(targets[rows], n_windows, axis=0)
    return batch


def _labelled_task(
    block: pa.Table, attributes_ref: Any, targets_ref: Any, n_leads: int, window: int
) -> dict[str, np.ndarray]:  # runs in Ray Data tasks
    import ray

    return labelled_windows_of_block(block, ray.get(attributes_ref), ray.get(targets_ref), n_leads, window)


def _settings(spec: LoopSpec) -> FinetuneSettings:
    w = spec.weights
    loss = ClassifierLoss(
        kind="bce" if w["bce"] else "asl", gamma_neg=w["gamma_neg"], gamma_pos=w["gamma_pos"], clip=w["clip"]
    )
    return FinetuneSettings(loss=loss, aux_weight=w["aux_weight"])


def _gather(arrays: list[np.ndarray], world: int) -> np.ndarray:
    local = np.concatenate(arrays) if arrays else np.zeros((0,), np.float32)
    if world == 1:
        return local
    import torch.distributed as dist

    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, local)
    return np.concatenate([p for p in parts if p is not None and len(p)])


def validation_scores(
    model: EcgModel, shard: Any, spec: LoopSpec, settings: FinetuneSettings, world: int
) -> dict[str, float]:
    """Validation classification loss and macro AUROC over windows (targets of their record)."""
    model.eval()
    probs: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    loss_sum, n = 0.0, 0
    with torch.no_grad():
        for arrays in _batches(shard, spec, 0, shuffle=False):
            batch = to_batch(arrays)
            x, lead_mask, beat_start, phase, neighbours = batch.inputs(model.cfg).torch()
            logits = model(x, lead_mask, beat_start, phase, beat_neighbours=neighbours).logits
            target = torch.as_tensor(np.asarray(arrays["labels"], dtype=np.float32))
            loss_sum += float(classification_loss(logits, target, settings.loss)) * len(target)
            n += len(target)
            probs.append(torch.sigmoid(logits).numpy())
            targets.append(np.asarray(arrays["labels"]))
    means, _ = _means({"classification": loss_sum}, n, world)
    p, y = _gather(probs, world), _gather(targets, world)
    labels = model.cfg.labels
    auroc = float("nan")
    if len(p):
        auroc = macro_metric(
            per_label_metrics(y.reshape(-1, len(labels)), p.reshape(-1, len(labels)), labels), None
        )
    return {"classification": means["classification"], "macro_auroc": auroc}


def selection_score(val: dict[str, float]) -> float:
    """Higher is better: validation macro AUROC where defined, else minus the validation loss."""
    return val["macro_auroc"] if np.isfinite(val["macro_auroc"]) else -val["classification"]


def _best_so_far() -> dict[str, Any] | None:
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=False)
    return state.get("best")


def finetune_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's entry point for fine-tuning. ``config``: {"spec": LoopSpec.to_dict() (mode finetune,
    weights: aux_weight, bce, gamma_neg, gamma_pos, clip), "init_state": the starting state dict (an
    encoder's weights with a new classifier, or random weights), "progress": optional Queue}."""
    import ray.train

    spec = LoopSpec(**config["spec"])
    if spec.mode != FINETUNE:
        raise ValueError(f"finetune_loop_per_worker runs mode {FINETUNE!r}, not {spec.mode!r}")
    progress = config.get("progress")
    torch.set_num_threads(spec.threads)
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()

    model = EcgModel(ModelConfig.from_dict(spec.model))
    model.load_state_dict(config["init_state"])
    optimizer = make_optimizer(model, lr=spec.lr, weight_decay=spec.weight_decay)
    start_epoch, history = _restore(model, optimizer)
    best = _best_so_far()
    net: EcgModel = _DDP(model) if world > 1 else model  # type: ignore[assignment]
    settings = _settings(spec)
    train_shard = ray.train.get_dataset_shard(TRAIN_DATASET)
    val_shard = ray.train.get_dataset_shard(VALIDATION_DATASET) if spec.validate else None

    for epoch in range(start_epoch, spec.epochs):
        started = time.perf_counter()
        sums: dict[str, float] = defaultdict(float)
        n = 0
        for step, arrays in enumerate(_batches(train_shard, spec, epoch, shuffle=True)):
            batch = to_batch(arrays)
            batch.labels = np.asarray(arrays["labels"], dtype=np.float32)
            terms = finetune_step(net, optimizer, batch, step_seed(spec.seed, epoch, step, rank), settings)
            size = len(batch.signal)
            for k in ("loss", "classification"):
                sums[k] += terms[k] * size
            n += size
        train_s = _all_reduce({"s": time.perf_counter() - started}, world, op="max")["s"]
        train, samples = _means(dict(sums), n, world)
        metrics: dict[str, Any] = {
            "epoch": epoch + 1,
            "epochs": spec.epochs,
            "resumed_from_epoch": start_epoch,
            "samples": samples,
            "samples_per_s": samples / train_s if train_s > 0 else 0.0,
            "train_seconds": train_s,
            "train_total": train["loss"],
            "train_classification": train["classification"],
        }
        score = -train["loss"]
        if val_shard is not None:
            val = validation_scores(model, val_shard, spec, settings, world)
            metrics.update(
                {"val_classification": val["classification"], "val_macro_auroc": val["macro_auroc"]}
            )
            score = selection_score(val)
        if best is None or score > best["score"]:
            best = {
                "epoch": epoch + 1,
                "score": score,
                "model": {k: v.clone() for k, v in model.state_dict().items()},
            }
        metrics["best_epoch"] = best["epoch"]
        metrics["epoch_seconds"] = time.perf_counter() - started
        history.append(metrics)
        _report(metrics, model, optimizer, epoch + 1, history, spec, best, rank, progress)


def _report(
    metrics: dict[str, Any],
    model: EcgModel,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    history: list[dict[str, Any]],
    spec: LoopSpec,
    best: dict[str, Any],
    rank: int,
    progress: Any,
) -> None:
    import ray.train

    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(prefix="rare-ecg-ckpt-") as folder:
        state = {**_checkpoint_state(model, optimizer, epoch, history, spec), "best": best}
        torch.save(state, Path(folder) / CHECKPOINT_FILE)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
    if progress is not None:
        progress.put(metrics)
