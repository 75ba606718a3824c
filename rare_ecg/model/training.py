"""A single-process training loop: pretraining and fine-tuning steps over numpy batches, checkpoints.

Plain PyTorch on CPU; the distributed jobs wrap exactly these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inputs import ModelInputs, model_inputs
from rare_ecg.model.network import EcgModel, Outputs
from rare_ecg.model.objectives import (
    ClassifierLoss,
    attribute_losses,
    classification_loss,
    heteroscedastic_nll,
    masked_mse,
    training_mask,
)


@dataclass
class Batch:
    """One batch as numpy arrays; missing targets are NaN (or the whole field None)."""

    signal: np.ndarray  # (B, 12, N) float32 at the model rate
    lead_mask: np.ndarray  # (B, 12) bool
    beat_positions: Sequence[np.ndarray]  # R peaks per row, in the row's samples (rare_ecg.model.inputs)
    age: np.ndarray | None = None  # (B,) years
    sex: np.ndarray | None = None  # (B,) 1 = female, 0 = male
    measurements: np.ndarray | None = None  # (B, 4) hr bpm, pr / qrs / qt ms
    labels: np.ndarray | None = None  # (B, L) {0, 1} in the model's label order
    normal: np.ndarray | None = None  # (B,) bool: no finding (normal-only pretraining, kNN references)

    def __len__(self) -> int:
        return int(self.signal.shape[0])

    def inputs(self, cfg: ModelConfig, rng: np.random.Generator | None = None) -> ModelInputs:
        """The model's inputs; ``rng`` draws the beat window (training), else it is deterministic."""
        return model_inputs(self.signal, self.lead_mask, self.beat_positions, cfg, rng)

    def subset(self, idx: np.ndarray) -> Batch:
        def take(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else np.asarray(a)[idx]

        return Batch(
            signal=self.signal[idx],
            lead_mask=self.lead_mask[idx],
            beat_positions=[self.beat_positions[i] for i in np.asarray(idx).tolist()],
            age=take(self.age),
            sex=take(self.sex),
            measurements=take(self.measurements),
            labels=take(self.labels),
            normal=take(self.normal),
        )


@dataclass(frozen=True)
class PretrainWeights:
    global_recon: float = 1.0
    local_recon: float = 1.0
    trend: float = 1.0
    attributes: float = 1.0


@dataclass(frozen=True)
class FinetuneSettings:
    loss: ClassifierLoss = field(default_factory=ClassifierLoss)
    aux_weight: float = 0.1  # pretraining terms kept as auxiliaries (ours), so anomaly maps stay meaningful


def _nan_column(batch: Batch, values: np.ndarray | None, width: int | None = None) -> torch.Tensor:
    b = batch.signal.shape[0]
    if values is None:
        return torch.full((b,) if width is None else (b, width), float("nan"))
    return torch.as_tensor(np.asarray(values, dtype=np.float32))


def pretrain_losses(model: EcgModel, batch: Batch, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Every pretraining term for one batch, with the beat window and the sample's one mask drawn
    afresh from ``generator``. Reconstruction NLLs are over hidden points (visible ones at
    cfg.visible_weight); ``hidden_mse`` (not in the objective) is the inpainting error."""
    cfg = model.cfg
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    x, lead_mask, beat_start, phase, neighbours = batch.inputs(cfg, np.random.default_rng(seed)).torch()
    hidden = training_mask(
        beat_start,
        cfg.n_patches,
        cfg.patch_len,
        cfg.beat_len,
        (cfg.mask_ratio, cfg.beat_mask_ratio),
        generator,
    )
    out = model(x, lead_mask, beat_start, phase, hidden, neighbours)
    return {
        **reconstruction_losses(out, x, lead_mask, hidden, cfg.visible_weight),
        **_attribute_terms(out, batch, cfg),
    }


def reconstruction_losses(
    out: Outputs, x: torch.Tensor, lead_mask: torch.Tensor, hidden: torch.Tensor, visible_weight: float
) -> dict[str, torch.Tensor]:
    return {
        "global": heteroscedastic_nll(out.x_hat, out.x_log_var, x, lead_mask, hidden, visible_weight),
        "local": heteroscedastic_nll(
            out.beat_hat, out.beat_log_var, out.beat, lead_mask, out.beat_hidden, visible_weight
        ),
        "trend": masked_mse(out.trend_hat, x, lead_mask),
        "hidden_mse": masked_mse(out.x_hat, x, lead_mask, hidden).detach(),
    }


def _attribute_terms(out: Outputs, batch: Batch, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    return attribute_losses(
        out.age,
        out.sex_logit,
        out.measurements,
        _nan_column(batch, batch.age),
        _nan_column(batch, batch.sex),
        _nan_column(batch, batch.measurements, cfg.n_measurements),
    )


def pretrain_objective(terms: dict[str, torch.Tensor], w: PretrainWeights) -> torch.Tensor:
    return (
        w.global_recon * terms["global"]
        + w.local_recon * terms["local"]
        + w.trend * terms["trend"]
        + w.attributes * (terms["age"] + terms["sex"] + terms["measurements"])
    )


def make_optimizer(model: EcgModel, lr: float = 1e-3, weight_decay: float = 0.01) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def _apply(
    model: EcgModel, optimizer: torch.optim.Optimizer, loss: torch.Tensor, max_grad_norm: float
) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()


def pretrain_step(
    model: EcgModel,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    seed: int,
    weights: PretrainWeights | None = None,
    max_grad_norm: float = 1.0,
) -> dict[str, float]:
    """One optimiser step on the weighted pretraining objective; masks are a function of ``seed``."""
    model.train()
    terms = pretrain_losses(model, batch, torch.Generator().manual_seed(seed))
    loss = pretrain_objective(terms, weights or PretrainWeights())
    _apply(model, optimizer, loss, max_grad_norm)
    return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}


def finetune_step(
    model: EcgModel,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    seed: int,
    settings: FinetuneSettings | None = None,
    max_grad_norm: float = 1.0,
) -> dict[str, float]:
    """One step of classification loss on the clean views plus the weighted pretraining terms."""
    settings = settings or FinetuneSettings()
    if batch.labels is None or not model.cfg.labels:
        raise ValueError("fine-tuning needs batch.labels and a model built with a label vocabulary")
    model.train()
    x, lead_mask, beat_start, phase, neighbours = batch.inputs(model.cfg).torch()
    clean = model(x, lead_mask, beat_start, phase, beat_neighbours=neighbours)
    labels = torch.as_tensor(np.asarray(batch.labels, dtype=np.float32))
    cls = classification_loss(clean.logits, labels, settings.loss)
    loss = cls
    terms: dict[str, torch.Tensor] = {}
    if settings.aux_weight > 0:
        terms = pretrain_losses(model, batch, torch.Generator().manual_seed(seed))
        loss = loss + settings.aux_weight * pretrain_objective(terms, PretrainWeights())
    _apply(model, optimizer, loss, max_grad_norm)
    return {
        "loss": float(loss.detach()),
        "classification": float(cls.detach()),
        **{k: float(v.detach()) for k, v in terms.items()},
    }


@dataclass
class Checkpoint:
    model: EcgModel
    optimizer: torch.optim.Optimizer
    step: int


def save_checkpoint(path: str | Path, model: EcgModel, optimizer: torch.optim.Optimizer, step: int) -> Path:
    path = Path(path)
    torch.save(
        {
            "config": model.cfg.to_dict(),
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
        },
        path,
    )
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Rebuild the model from its saved config and the AdamW optimiser with its saved state (incl. lr)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model = EcgModel(ModelConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    optimizer = make_optimizer(model)
    optimizer.load_state_dict(state["optimizer"])
    return Checkpoint(model=model, optimizer=optimizer, step=int(state["step"]))
