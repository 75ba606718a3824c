"""Inpainting skill: does the network fill in hidden points better than copying the neighbouring beat?

On held-out records, each with one training-style mask (fixed seeds: the same points every call), the
network's hidden-point MSE is divided by that of the R-aligned neighbouring-beat copy
(rare_ecg.signals.beats.beat_copy, which reads visible samples only) and by that of predicting zero
(the signals are standardised per lead, so zero scores about 1). Below 1.0 against the copy, the
network has learned something about the record the anomaly map can use (METHOD.md, stage 1).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from rare_ecg.model.network import EcgModel
from rare_ecg.model.objectives import training_mask
from rare_ecg.model.training import Batch
from rare_ecg.signals.beats import beat_copy

SKILL_SEED = 12345  # masks of the skill check: fixed, so every epoch is measured on the same points


@torch.no_grad()
def inpainting_skill(model: EcgModel, batches: Iterable[Batch], seed: int = SKILL_SEED) -> dict[str, float]:
    """Hidden-point errors of the network, the aligned beat copy and zero over ``batches``.

    Returns hidden_mse, copy_mse, zero_mse, skill_vs_copy (hidden_mse / copy_mse: below 1 beats the
    copy), skill_vs_zero, hidden_nll (the global NLL over hidden points: the label-free checkpoint
    criterion) and n_points (hidden points counted, present leads only).
    """
    cfg = model.cfg
    was_training = model.training
    model.eval()
    sums = {"net": 0.0, "copy": 0.0, "zero": 0.0, "nll": 0.0, "n": 0.0}
    for i, batch in enumerate(batches):
        inputs = batch.inputs(cfg)
        x, lead_mask, beat_start, phase, neighbours = inputs.torch()
        gen = torch.Generator().manual_seed(seed + i)
        hidden = training_mask(
            beat_start, cfg.n_patches, cfg.patch_len, cfg.beat_len, (cfg.mask_ratio, cfg.beat_mask_ratio), gen
        )
        x_hat, log_var = model.reconstruct(x, lead_mask, beat_start, hidden, phase, neighbours)
        h = hidden.numpy()
        copy = np.stack(
            [beat_copy(inputs.signal[j], h[j], inputs.beat_neighbours[j]) for j in range(h.shape[0])]
        )
        w = (lead_mask[:, :, None] & hidden[:, None, :]).to(x.dtype)
        sums["net"] += float(((x_hat - x).pow(2) * w).sum())
        sums["copy"] += float(((torch.from_numpy(copy) - x).pow(2) * w).sum())
        sums["zero"] += float((x.pow(2) * w).sum())
        sums["nll"] += float(((torch.exp(-log_var) * (x_hat - x).pow(2) + log_var) * w).sum())
        sums["n"] += float(w.sum())
    model.train(was_training)
    n = max(sums["n"], 1.0)
    net, copy_mse, zero = sums["net"] / n, sums["copy"] / n, sums["zero"] / n
    return {
        "hidden_mse": net,
        "copy_mse": copy_mse,
        "zero_mse": zero,
        "skill_vs_copy": net / copy_mse if copy_mse > 0 else float("inf"),
        "skill_vs_zero": net / zero if zero > 0 else float("inf"),
        "hidden_nll": sums["nll"] / n,
        "n_points": sums["n"],
    }
