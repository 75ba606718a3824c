"""The anomaly map and record score (METHOD.md), one function shared by evaluation and scoring."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rare_ecg.model.network import EcgModel, Outputs
from rare_ecg.model.objectives import anomaly_round_masks, patch_to_samples
from rare_ecg.model.scores import (
    Evidence,
    beat_deviation,
    candidate_score,
    candidate_scores,
    point_map,
    smooth,
)


@dataclass
class AnomalyMap:
    point_map: torch.Tensor  # (B, C, N) the smoothed map of the record score (weighted error for knn/age_gap)
    score: torch.Tensor  # (B,) the record score cfg.record_score
    coarse_map: torch.Tensor  # (B, C, map_segments) segment means of point_map
    evidence: Evidence  # what every candidate is computed from (rare_ecg.model.scores)


def hidden_reconstruction(
    model: EcgModel,
    x: torch.Tensor,  # (B, C, N)
    lead_mask: torch.Tensor,  # (B, C)
    beat_start: torch.Tensor,  # (B,)
    beat_phase: torch.Tensor | None = None,  # (B, 2, N)
    beat_neighbours: torch.Tensor | None = None,  # (B, 2, N)
) -> tuple[torch.Tensor, torch.Tensor]:
    """K mask rounds (objectives.anomaly_round_masks: every K-th beat's patches, or every K-th patch
    without R peaks), each hiding its patches from the global view and the beat window alike. Returns
    (x_hat - x)^2 and s (B, C, N), each point from the round that hid it: the rounds partition the
    patches, so no point is ever scored from a view that showed it."""
    cfg = model.cfg
    b, c, n = x.shape
    k = cfg.anomaly_rounds
    rounds = anomaly_round_masks(beat_phase, b, cfg.n_patches, cfg.patch_len, k).to(x.device)  # (K, B, P)
    hidden_f = patch_to_samples(rounds.reshape(k * b, -1), cfg.patch_len).to(x.dtype)  # (K * B, N)
    xk = x.repeat(k, 1, 1)  # (K * B, C, N)
    phase = None if beat_phase is None else beat_phase.repeat(k, 1, 1)
    neighbours = None if beat_neighbours is None else beat_neighbours.repeat(k, 1, 1)
    x_hat, log_var = model.reconstruct(
        xk, lead_mask.repeat(k, 1), beat_start.repeat(k), hidden_f > 0.5, phase, neighbours
    )
    h = hidden_f[:, None, :]
    sq_err = ((x_hat - xk).pow(2) * h).reshape(k, b, c, n).sum(0)
    s = (log_var * h).reshape(k, b, c, n).sum(0)
    return sq_err, s


def anomaly_map(
    model: EcgModel,
    x: torch.Tensor,  # (B, C, N)
    lead_mask: torch.Tensor,  # (B, C)
    beat_start: torch.Tensor,  # (B,)
    beat_phase: torch.Tensor | None = None,  # (B, 2, N), rare_ecg.model.inputs
    beat_neighbours: torch.Tensor | None = None,  # (B, 2, N); None: beat_dev is 0
    out: Outputs | None = None,  # a clean forward of the same inputs, to reuse it
) -> AnomalyMap:
    """Per-point evidence from the hidden reconstruction, the record score ``cfg.record_score`` and its
    smoothed map (zero on absent leads) with the coarse segment means."""
    cfg = model.cfg
    lm = lead_mask.to(x.dtype)
    if out is None:
        out = model(x, lead_mask, beat_start, beat_phase, beat_neighbours=beat_neighbours)
    sq_err, s = hidden_reconstruction(model, x, lead_mask, beat_start, beat_phase, beat_neighbours)
    dev = torch.zeros_like(x) if beat_neighbours is None else beat_deviation(x, beat_neighbours)
    ev = Evidence(
        sq_err=sq_err * lm[:, :, None],
        log_var=s * lm[:, :, None],
        beat_dev=dev * lm[:, :, None],
        lead_mask=lm,
        embedding=out.knn_embedding,
        age_pred=out.age,
    )
    score = candidate_score(ev, cfg.record_score, cfg, model.reference)
    map_name = cfg.record_score.rpartition("_")[0]
    if cfg.record_score in ("knn", "age_gap"):
        map_name = "weighted"
    pmap = smooth(point_map(ev, map_name), cfg) * lm[:, :, None]
    b, c, n = x.shape
    coarse = pmap.reshape(b, c, cfg.map_segments, n // cfg.map_segments).mean(-1)
    return AnomalyMap(point_map=pmap, score=score, coarse_map=coarse, evidence=ev)


def all_scores(amap: AnomalyMap, model: EcgModel, age: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every record-score candidate for the records of ``amap`` (evaluation and selection)."""
    return candidate_scores(amap.evidence, model.cfg, model.reference, age)
