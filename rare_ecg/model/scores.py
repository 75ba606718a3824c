"""The named record-score candidates of METHOD.md, one function each, in torch (the ONNX graph runs them).

Per-point maps, each point taken from the anomaly-map round that hid it (rare_ecg.model.anomaly):
``raw`` (x_hat - x)^2; ``weighted`` exp(-s) (x_hat - x)^2 (the paper's); ``nll`` exp(-s) (x_hat - x)^2 + s;
``log_var`` s; and ``beat_dev``, the squared deviation of each sample from its R-aligned twins in the
neighbouring beats (no learning: the baseline every learned score must beat). Each map is smoothed and
aggregated by the mean of its largest ``score_top_fraction`` points (``_top``) or its plain mean
(``_mean``). Record-level candidates: ``knn``, the mean distance of the pooled embedding (with the max over the global
tokens) to its k nearest reference embeddings (stored with the model), and ``age_gap``, predicted minus recorded age (it reads
the recorded age: never the label-free default). Higher always means more abnormal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rare_ecg.model.config import AGGREGATIONS, POINT_MAPS, SCORE_CANDIDATES, ModelConfig

# Candidates that read nothing but the ECG (and the model): the label-free default is one of these.
ECG_ONLY: tuple[str, ...] = tuple(n for n in SCORE_CANDIDATES if n != "age_gap")


@dataclass
class Evidence:
    """What the candidates are computed from, for a batch of B records."""

    sq_err: torch.Tensor  # (B, C, N) (x_hat - x)^2, each point from the round that hid it
    log_var: torch.Tensor  # (B, C, N) s from the same round
    beat_dev: torch.Tensor  # (B, C, N) beat_deviation
    lead_mask: torch.Tensor  # (B, C) float, 1 where present
    embedding: torch.Tensor  # (B, 4 * D) Outputs.knn_embedding
    age_pred: torch.Tensor  # (B,) years


def beat_deviation(x: torch.Tensor, neighbours: torch.Tensor, tolerance: int = 1) -> torch.Tensor:
    """(B, C, N) signal, (B, 2, N) R-aligned twins (rare_ecg.model.inputs.beat_neighbours) ->
    the smallest squared difference to the two twins, each allowed to shift by up to ``tolerance``
    samples (R peaks are located to a sample: without it a QRS a sample off dominates every record's
    largest deviations). A beat unlike both of its neighbours stands out; its normal neighbours (like at
    least one of theirs) do not. A sample that is its own twin (no neighbouring beat) deviates by 0."""
    b, c, n = x.shape
    idx = neighbours.long()
    best = torch.full_like(x, float("inf"))
    for j in range(2):
        for shift in range(-tolerance, tolerance + 1):
            twin = (idx[:, j : j + 1, :] + shift).clamp(0, n - 1)
            best = torch.minimum(best, (x - x.gather(2, twin.expand(b, c, n))).pow(2))
    return best


def gaussian_kernel(sigma_samples: float) -> torch.Tensor:
    """Normalised Gaussian taps over +-3 sigma (odd length, sums to 1)."""
    radius = max(1, math.ceil(3.0 * sigma_samples))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma_samples) ** 2)
    return k / k.sum()


def smooth(point_map: torch.Tensor, cfg: ModelConfig) -> torch.Tensor:
    """Gaussian smoothing (sigma cfg.anomaly_smooth_s) along time of a (B, C, N) map."""
    b, c, n = point_map.shape
    kernel = gaussian_kernel(cfg.anomaly_smooth_s * cfg.fs_hz).to(point_map)
    radius = kernel.numel() // 2
    padded = F.pad(point_map.reshape(b * c, 1, n), (radius, radius), mode="reflect")
    return F.conv1d(padded, kernel[None, None]).reshape(b, c, n)


def point_map(ev: Evidence, name: str) -> torch.Tensor:
    """The unsmoothed (B, C, N) map of one of POINT_MAPS."""
    if name == "raw":
        return ev.sq_err
    if name == "weighted":
        return torch.exp(-ev.log_var) * ev.sq_err
    if name == "nll":
        return torch.exp(-ev.log_var) * ev.sq_err + ev.log_var
    if name == "log_var":
        return ev.log_var
    if name == "beat_dev":
        return ev.beat_dev
    raise ValueError(f"point map {name!r} is not one of {POINT_MAPS}")


def aggregate(smoothed: torch.Tensor, lead_mask: torch.Tensor, how: str, top_k: int) -> torch.Tensor:
    """(B, C, N) map -> (B,): the mean of its ``top_k`` largest points over present leads ("top"), or
    its plain mean over present leads ("mean")."""
    b, _, n = smoothed.shape
    lm = lead_mask[:, :, None]
    if how == "mean":
        return (smoothed * lm).sum(dim=(1, 2)) / (lead_mask.sum(1).clamp_min(1.0) * n)
    if how == "top":
        # Absent leads sit far below any real value so they never enter the top points.
        masked = torch.where(lm > 0, smoothed, torch.full_like(smoothed, -1e9))
        return masked.reshape(b, -1).topk(top_k, dim=1).values.mean(1)
    raise ValueError(f"aggregation {how!r} is not one of {AGGREGATIONS}")


def knn_distance(embedding: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """(B, E) embeddings, (R, E) references -> (B,) mean Euclidean distance to the k nearest references."""
    if reference.shape[0] == 0:
        raise ValueError("the knn score needs reference embeddings stored with the model (with_references)")
    d2 = (
        embedding.pow(2).sum(1, keepdim=True)
        + reference.pow(2).sum(1)[None, :]
        - 2.0 * embedding @ reference.transpose(0, 1)
    )
    k = min(k, reference.shape[0])
    return d2.clamp_min(0.0).topk(k, dim=1, largest=False).values.sqrt().mean(1)


def age_gap(age_pred: torch.Tensor, age: torch.Tensor) -> torch.Tensor:
    """Predicted minus recorded age in years (an older-looking ECG scores higher); NaN where unknown."""
    return age_pred - age


def candidate_score(
    ev: Evidence,
    name: str,
    cfg: ModelConfig,
    reference: torch.Tensor,
    age: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B,) record score of candidate ``name`` (one of SCORE_CANDIDATES)."""
    if name == "knn":
        return knn_distance(ev.embedding, reference, cfg.knn_k)
    if name == "age_gap":
        if age is None:
            raise ValueError("the age_gap score needs the recorded age")
        return age_gap(ev.age_pred, age)
    map_name, _, how = name.rpartition("_")
    if name not in SCORE_CANDIDATES:
        raise ValueError(f"record score {name!r} is not one of {SCORE_CANDIDATES}")
    return aggregate(smooth(point_map(ev, map_name), cfg), ev.lead_mask, how, cfg.score_top_k)


def candidate_scores(
    ev: Evidence,
    cfg: ModelConfig,
    reference: torch.Tensor,
    age: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every candidate that the evidence allows: ``knn`` only with references, ``age_gap`` only with ages."""
    names = [
        n
        for n in SCORE_CANDIDATES
        if (n != "knn" or reference.shape[0]) and (n != "age_gap" or age is not None)
    ]
    maps = {m: smooth(point_map(ev, m), cfg) for m in POINT_MAPS}
    out: dict[str, torch.Tensor] = {}
    for name in names:
        if name in ("knn", "age_gap"):
            out[name] = candidate_score(ev, name, cfg, reference, age)
        else:
            map_name, _, how = name.rpartition("_")
            out[name] = aggregate(maps[map_name], ev.lead_mask, how, cfg.score_top_k)
    return out
