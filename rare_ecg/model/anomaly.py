"""The anomaly map and record score (METHOD.md), one function shared by evaluation and scoring."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rare_ecg.model.network import GLOBAL, EcgModel
from rare_ecg.model.objectives import patch_to_samples, shifted_patch_masks


@dataclass
class AnomalyMap:
    point_map: torch.Tensor  # (B, C, N) smoothed uncertainty-weighted error; 0 on absent leads
    score: torch.Tensor  # (B,) record anomaly score
    coarse_map: torch.Tensor  # (B, C, map_segments) segment means of point_map


def gaussian_kernel(sigma_samples: float) -> torch.Tensor:
    """Normalised Gaussian taps over +-3 sigma (odd length, sums to 1)."""
    radius = max(1, math.ceil(3.0 * sigma_samples))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma_samples) ** 2)
    return k / k.sum()


def anomaly_map(
    model: EcgModel,
    x: torch.Tensor,  # (B, C, N)
    lead_mask: torch.Tensor,  # (B, C)
    beat_start: torch.Tensor,  # (B,)
    local_tokens: torch.Tensor | None = None,  # (B, W / patch_len, D) from a clean forward, to reuse it
) -> AnomalyMap:
    """K shifted mask rounds, each hiding every K-th patch. Each point's error e = exp(-s) (x_hat - x)^2
    is taken from the round that hid it: the rounds partition the patches, so every point is scored
    once, never from a round whose global view showed it. Then Gaussian smoothing (sigma
    ``anomaly_smooth_s``), the record score (the mean over present leads, or the mean of the
    ``score_top_fraction`` largest values) and the coarse map (segment means)."""
    cfg = model.cfg
    b, c, n = x.shape
    k = cfg.anomaly_rounds
    lm = lead_mask.to(x.dtype)
    if local_tokens is None:
        _, local_tokens = model.encode_beat(x, lead_mask, beat_start, None)

    hidden = patch_to_samples(shifted_patch_masks(cfg.n_patches, k).to(x.device), cfg.patch_len)  # (K, N)
    # Broadcast against the batch (not repeat_interleave) so the exported graph keeps a dynamic batch.
    hidden = (hidden.to(x.dtype)[:, None, :] * torch.ones_like(x[:, 0])[None]).reshape(-1, n)  # (K * B, N)
    xk = x.repeat(k, 1, 1)  # (K * B, C, N)
    g = model.encode(xk, 1.0 - hidden, lm.repeat(k, 1), GLOBAL)
    x_hat, log_var = model.signal_and_log_var(
        model.global_head(model.fuse_global(g, local_tokens.repeat(k, 1, 1)))
    )
    err = torch.exp(-log_var) * (x_hat - xk).pow(2) * hidden[:, None, :]
    err = err.reshape(k, b, c, n).sum(0) * lm[:, :, None]  # (B, C, N)

    kernel = gaussian_kernel(cfg.anomaly_smooth_s * cfg.fs_hz).to(x)
    radius = kernel.numel() // 2
    smoothed = F.conv1d(F.pad(err.reshape(b * c, 1, n), (radius, radius), mode="reflect"), kernel[None, None])
    point_map = smoothed.reshape(b, c, n) * lm[:, :, None]

    if cfg.score_top_k is None:
        score = point_map.sum(dim=(1, 2)) / (lm.sum(1).clamp_min(1.0) * n)
    else:
        score = point_map.reshape(b, -1).topk(cfg.score_top_k, dim=1).values.mean(1)
    coarse = point_map.reshape(b, c, cfg.map_segments, n // cfg.map_segments).mean(-1)
    return AnomalyMap(point_map=point_map, score=score, coarse_map=coarse)
