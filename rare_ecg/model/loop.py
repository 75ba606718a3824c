"""The single-process pretraining loop: learning-rate warm-up and decay, checkpoint selection on
validation, attribute heads stopped on their validation loss and refitted with a validated ridge.

The distributed job (rare_ecg/train) runs the same steps; this loop is what the library's tests and
benchmarks train with, and what the job's per-epoch checks (inpainting_skill) are measured against.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rare_ecg.model.config import AGE_NORM
from rare_ecg.model.network import EcgModel, with_references
from rare_ecg.model.skill import inpainting_skill
from rare_ecg.model.training import Batch, PretrainWeights, make_optimizer, pretrain_step

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # attribute-head ridge strengths tried on validation


@dataclass(frozen=True)
class LoopSettings:
    max_steps: int = 1000
    max_seconds: float | None = None  # wall-clock budget; whichever comes first
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 50  # linear warm-up, then cosine decay to min_lr_fraction * lr at max_steps
    min_lr_fraction: float = 0.1
    weight_decay: float = 0.01
    eval_every: int = 50  # steps between validation checks (inpainting skill, selection criterion)
    normal_only: bool = False  # pretrain on the records without findings only (Batch.normal)
    attribute_patience: int = 3  # checks without a better validation age MAE before the heads stop
    seed: int = 0
    weights: PretrainWeights = field(default_factory=PretrainWeights)

    def __post_init__(self) -> None:
        if self.max_steps < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError(f"max_steps, batch_size and eval_every must be >= 1; got {self}")
        if not 0.0 <= self.min_lr_fraction <= 1.0:
            raise ValueError(f"min_lr_fraction={self.min_lr_fraction} must be in [0, 1]")


def lr_at(step: int, s: LoopSettings) -> float:
    """Linear warm-up over warmup_steps, then cosine decay to min_lr_fraction * lr at max_steps."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = min(1.0, (step - s.warmup_steps) / max(1, s.max_steps - s.warmup_steps))
    floor = s.min_lr_fraction
    return s.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


@dataclass
class LoopResult:
    model: EcgModel  # the selected checkpoint (attribute head refitted)
    best_step: int
    history: list[dict[str, float]]  # one row per validation check
    steps: int
    seconds: float


def age_mae(model: EcgModel, data: Batch) -> float:
    """Mean absolute error in years of the age head over the records with a known age."""
    if data.age is None or not np.isfinite(data.age).any():
        return float("nan")
    pred = embed(model, data)[1]
    ok = np.isfinite(data.age)
    return float(np.abs(pred[ok] - data.age[ok]).mean())


@torch.no_grad()
def embed(
    model: EcgModel, data: Batch, batch_size: int = 64, knn: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled embeddings (R, 3 * D; with ``knn`` the kNN score's (R, 4 * D)) and predicted ages (R,) of
    clean (unmasked) records."""
    was_training = model.training
    model.eval()
    zs, ages = [], []
    for start in range(0, len(data), batch_size):
        rows = data.subset(np.arange(start, min(len(data), start + batch_size)))
        x, lead_mask, beat_start, phase, neighbours = rows.inputs(model.cfg).torch()
        out = model(x, lead_mask, beat_start, phase, beat_neighbours=neighbours)
        zs.append((out.knn_embedding if knn else out.embedding).numpy())
        ages.append(out.age.numpy())
    model.train(was_training)
    return np.concatenate(zs), np.concatenate(ages)


def refit_age_head(model: EcgModel, train: Batch, validation: Batch) -> dict[str, float]:
    """Ridge regression of age on the frozen embeddings of the training records, its strength chosen
    on the validation records' MAE, written into the attribute head's age row. Returns the validation
    MAE before and after, and that of always predicting the training median."""
    if train.age is None or validation.age is None:
        return {}
    z_tr, _ = embed(model, train)
    z_va, pred_before = embed(model, validation)
    ok_tr, ok_va = np.isfinite(train.age), np.isfinite(validation.age)
    if ok_tr.sum() < 2 or ok_va.sum() < 1:
        return {}
    centre, scale = AGE_NORM
    y = (train.age[ok_tr] - centre) / scale
    x = np.c_[z_tr[ok_tr], np.ones(ok_tr.sum())]
    best: tuple[float, np.ndarray] | None = None
    for alpha in RIDGE_ALPHAS:
        reg = alpha * np.eye(x.shape[1])
        reg[-1, -1] = 0.0  # the intercept is not shrunk
        coef = np.linalg.solve(x.T @ x + reg, x.T @ y)
        pred = centre + scale * (np.c_[z_va[ok_va], np.ones(ok_va.sum())] @ coef)
        mae = float(np.abs(pred - validation.age[ok_va]).mean())
        if best is None or mae < best[0]:
            best = (mae, coef)
    assert best is not None
    before = float(np.abs(pred_before[ok_va] - validation.age[ok_va]).mean())
    median = float(np.abs(np.median(train.age[ok_tr]) - validation.age[ok_va]).mean())
    if best[0] < before:
        with torch.no_grad():
            model.attribute_head.weight[0] = torch.from_numpy(best[1][:-1]).to(torch.float32)
            model.attribute_head.bias[0] = float(best[1][-1])
    return {"age_mae_head": before, "age_mae_ridge": best[0], "age_mae_median": median}


def _val_batches(data: Batch, size: int = 64) -> list[Batch]:
    return [data.subset(np.arange(i, min(len(data), i + size))) for i in range(0, len(data), size)]


def pretrain_loop(
    model: EcgModel,
    train: Batch,
    validation: Batch,
    settings: LoopSettings | None = None,
    criterion: Callable[[EcgModel], float] | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
) -> LoopResult:
    """Pretrain ``model`` on ``train``; every eval_every steps measure the inpainting skill on
    ``validation`` (and once before the first step) and keep the checkpoint with the best criterion
    (higher is better; default: the
    label-free one, minus the hidden-point NLL). The attribute terms stop (weight 0) once the validation
    age MAE has not improved for attribute_patience checks; the selected model's age head is then
    refitted (refit_age_head). ``validation`` is never trained on."""
    s = settings or LoopSettings()
    if s.normal_only:
        if train.normal is None:
            raise ValueError("normal_only pretraining needs Batch.normal on the training records")
        train = train.subset(np.flatnonzero(train.normal))
    if len(train) == 0:
        raise ValueError("no training records")
    rng = np.random.default_rng(s.seed)
    optimizer = make_optimizer(model, lr=s.lr, weight_decay=s.weight_decay)
    val = _val_batches(validation)
    weights = s.weights
    best_value, best_state, best_step = -math.inf, copy.deepcopy(model.state_dict()), 0
    best_age, stale = math.inf, 0
    history: list[dict[str, float]] = []
    start = time.perf_counter()
    step = 0

    def check() -> None:
        nonlocal best_value, best_state, best_step, best_age, stale, weights
        row = {"step": float(step), "seconds": time.perf_counter() - start, **inpainting_skill(model, val)}
        row["age_mae"] = age_mae(model, validation)
        value = criterion(model) if criterion is not None else -row["hidden_nll"]
        row["criterion"] = value
        if value > best_value:
            best_value, best_state, best_step = value, copy.deepcopy(model.state_dict()), step
        if weights.attributes > 0 and np.isfinite(row["age_mae"]):
            if row["age_mae"] < best_age:
                best_age, stale = row["age_mae"], 0
            else:
                stale += 1
                if stale >= s.attribute_patience:
                    weights = PretrainWeights(weights.global_recon, weights.local_recon, weights.trend, 0.0)
                    row["attributes_stopped"] = 1.0
        history.append(row)
        if log is not None:
            log(row)

    check()  # step 0: the untrained (or inherited) weights are a candidate too
    while step < s.max_steps and (s.max_seconds is None or time.perf_counter() - start < s.max_seconds):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, s)
        idx = rng.choice(len(train), size=min(s.batch_size, len(train)), replace=False)
        pretrain_step(model, optimizer, train.subset(idx), seed=s.seed * 1_000_003 + step, weights=weights)
        step += 1
        if step % s.eval_every == 0:
            check()
    if not history or history[-1]["step"] != step:
        check()
    seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    model.eval()
    refit = refit_age_head(model, train, validation)
    if history:
        history[-1].update(refit)
    return LoopResult(model=model, best_step=best_step, history=history, steps=step, seconds=seconds)


def with_reference_set(model: EcgModel, train: Batch) -> EcgModel:
    """The model carrying the embeddings of the training records (of its normal records where
    ``train.normal`` says which) as the reference set of the "knn" score."""
    ref = train if train.normal is None else train.subset(np.flatnonzero(train.normal))
    if len(ref) == 0:
        raise ValueError("no reference records: the training set has no normal record")
    z, _ = embed(model, ref, knn=True)
    out = with_references(model, torch.from_numpy(z))
    out.eval()
    return out
