"""The views and losses of METHOD.md, one function each: masks, beat window, trend, NLL, attributes, ASL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from rare_ecg.model.config import AGE_NORM, MEASUREMENT_NORMS
from rare_ecg.signals.trend import moving_average_width

# --- Views --------------------------------------------------------------------------------------------


def random_patch_mask(batch: int, n_patches: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(batch, n_patches) bool, True = hidden: exactly round(ratio * n_patches) patches per sample,
    drawn afresh for every sample; the same generator state gives the same masks."""
    n_hidden = round(ratio * n_patches)
    order = torch.rand(batch, n_patches, generator=generator).argsort(dim=1)
    return order < n_hidden


def shifted_patch_masks(n_patches: int, rounds: int) -> torch.Tensor:
    """(rounds, n_patches) bool: round k hides patches k, k + rounds, k + 2 * rounds, ...

    Every patch is hidden in exactly one round, so the rounds together reconstruct the whole record.
    """
    return (torch.arange(n_patches)[None, :] % rounds) == torch.arange(rounds)[:, None]


def anomaly_round_masks(
    beat_phase: torch.Tensor | None, batch: int, n_patches: int, patch_len: int, rounds: int
) -> torch.Tensor:
    """(rounds, B, n_patches) bool, True = hidden: the anomaly map's rounds, each patch hidden in exactly
    one. With R peaks (``beat_phase`` (B, 2, N), rare_ecg.model.inputs: 0 s since the previous peak at each
    peak), round k hides the patches whose centre lies in a beat whose index (R peaks up to it) is k
    modulo ``rounds``: a hidden sample's R-aligned twins lie in the neighbouring beats, so they stay
    visible and the beat copy can read them. Shifted patch masks (the fallback: no ``beat_phase``, or
    fewer than ``rounds`` R peaks) hide both twins whenever the RR interval is near a multiple of
    ``rounds`` patches (0.72 s and 0.96 s at 100 Hz with 80 ms patches and 3 rounds), which made the
    largest errors of a clean record a function of its heart rate."""
    shifted = shifted_patch_masks(n_patches, rounds)
    if beat_phase is None:
        return shifted[:, None, :].expand(rounds, batch, n_patches)
    beat = torch.cumsum((beat_phase[:, 0] == 0).long(), dim=1)  # (B, N) R peaks at or before each sample
    centre = beat[:, patch_len // 2 :: patch_len][:, :n_patches]  # (B, P)
    patch = torch.arange(n_patches, device=beat.device)[None, :]
    which = torch.where(beat[:, -1:] >= rounds, centre, patch) % rounds  # (B, P)
    return which[None] == torch.arange(rounds, device=beat.device)[:, None, None]


def random_span_mask(batch: int, length: int, ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(batch, length) bool, True = hidden: one contiguous span of round(ratio * length) samples per
    sample, its start uniform over the positions where it fits."""
    span = round(ratio * length)
    start = torch.randint(0, length - span + 1, (batch, 1), generator=generator)
    pos = torch.arange(length)[None, :]
    return (pos >= start) & (pos < start + span)


def patch_to_samples(patch_mask: torch.Tensor, patch_len: int) -> torch.Tensor:
    """(B, P) patch mask -> (B, P * patch_len) sample mask."""
    return patch_mask.repeat_interleave(patch_len, dim=1)


def extract_beat(x: torch.Tensor, beat_start: torch.Tensor, length: int) -> torch.Tensor:
    """(B, C, N) signal, (B,) start sample -> (B, C, length) beat window (starts clamped to fit)."""
    batch, channels, n = x.shape
    start = beat_start.long().clamp(0, n - length)
    idx = (start[:, None] + torch.arange(length, device=x.device)[None, :])[:, None, :]
    return x.gather(2, idx.expand(batch, channels, length))


def training_mask(
    beat_start: torch.Tensor,
    n_patches: int,
    patch_len: int,
    beat_len: int,
    ratios: tuple[float, float],
    generator: torch.Generator,
) -> torch.Tensor:
    """(B, N) bool, True = hidden: the sample's one mask, shared by every view. Random patches of the
    global signal (``ratios[0]`` of them) together with one contiguous span of the beat window
    (``ratios[1]`` of it, placed at ``beat_start``), so no view shows a point another view must guess."""
    b = beat_start.shape[0]
    hidden = patch_to_samples(random_patch_mask(b, n_patches, ratios[0], generator), patch_len)
    span = random_span_mask(b, beat_len, ratios[1], generator)  # (B, W)
    n = hidden.shape[1]
    start = beat_start.long().clamp(0, n - beat_len)
    idx = start[:, None] + torch.arange(beat_len)[None, :]
    return hidden.scatter(1, idx, hidden.gather(1, idx) | span)


def trend_view(x: torch.Tensor, fs_hz: float, smooth_s: float) -> torch.Tensor:
    """In-graph twin of ``rare_ecg.signals.trend.trend`` for a (B, C, N) batch (a test holds them equal)."""
    w = moving_average_width(fs_hz, smooth_s)
    smooth = F.avg_pool1d(F.pad(x, (w // 2, (w - 1) // 2), mode="replicate"), kernel_size=w, stride=1)
    deriv = F.pad(smooth[..., 1:] - smooth[..., :-1], (1, 0))
    mu = deriv.mean(dim=-1, keepdim=True)
    sd = (deriv - mu).pow(2).mean(dim=-1, keepdim=True).sqrt()
    return torch.where(sd > 1e-6, (deriv - mu) / sd.clamp_min(1e-6), torch.zeros_like(deriv))


# --- Losses -------------------------------------------------------------------------------------------


def point_weights(
    lead_mask: torch.Tensor, hidden: torch.Tensor | None, visible_weight: float, like: torch.Tensor
) -> torch.Tensor:
    """(B, C, N) loss weights: present leads only; hidden points 1, visible ones ``visible_weight``."""
    w = lead_mask.to(like.dtype)[:, :, None].expand_as(like)
    if hidden is None:
        return w
    h = hidden.to(like.dtype)[:, None, :]
    return w * (h + visible_weight * (1.0 - h))


def heteroscedastic_nll(
    pred: torch.Tensor,
    log_var: torch.Tensor,
    target: torch.Tensor,
    lead_mask: torch.Tensor,
    hidden: torch.Tensor | None = None,
    visible_weight: float = 0.0,
) -> torch.Tensor:
    """Weighted mean of exp(-s) * (x_hat - x)^2 + s over (B, C, N) tensors: present leads (B, C) only;
    with ``hidden`` (B, N), hidden points at weight 1 and visible ones at ``visible_weight``."""
    w = point_weights(lead_mask, hidden, visible_weight, pred)
    per_point = torch.exp(-log_var) * (pred - target).pow(2) + log_var
    return (per_point * w).sum() / w.sum().clamp_min(1e-6)


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, lead_mask: torch.Tensor, hidden: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error over the present leads of (B, C, N) tensors (over hidden points only, given
    ``hidden`` (B, N))."""
    w = point_weights(lead_mask, hidden, 0.0, pred)
    return ((pred - target).pow(2) * w).sum() / w.sum().clamp_min(1e-6)


def _present_mean(errors: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    present = (~torch.isnan(target)).to(errors.dtype)
    return (errors * present).sum() / present.sum().clamp_min(1.0)


def attribute_losses(
    age_pred: torch.Tensor,
    sex_logit: torch.Tensor,
    measurements_pred: torch.Tensor,
    age: torch.Tensor,
    sex: torch.Tensor,
    measurements: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """Age and measurement regression (MSE on normalised scales), sex BCE (1 = female, 0 = male).

    Missing targets are NaN and drop out of their term; a term with no target in the batch is 0.
    """
    # NaN targets are zero-filled before the error so that no NaN reaches the backward pass (a NaN
    # times a zero mask is still NaN); the mask then removes their (finite) errors.
    age_t, sex_t, meas_t = (torch.nan_to_num(t, nan=0.0) for t in (age, sex, measurements))
    # Errors are divided by each target's population scale (the centre cancels in the difference).
    scale = torch.tensor([s for _, s in MEASUREMENT_NORMS], dtype=measurements_pred.dtype)
    age_err = ((age_pred - age_t) / AGE_NORM[1]).pow(2)
    meas_err = ((measurements_pred - meas_t) / scale[: measurements.shape[1]]).pow(2)
    sex_err = F.binary_cross_entropy_with_logits(sex_logit, sex_t, reduction="none")
    return {
        "age": _present_mean(age_err, age),
        "sex": _present_mean(sex_err, sex),
        "measurements": _present_mean(meas_err, measurements),
    }


@dataclass(frozen=True)
class ClassifierLoss:
    """ASL by default (METHOD.md stage 2); ``kind="bce"`` is the from-scratch baseline's loss."""

    kind: Literal["asl", "bce"] = "asl"
    gamma_neg: float = 4.0
    gamma_pos: float = 1.0
    clip: float = 0.05
    reduction: Literal["mean", "sum"] = "mean"

    def __post_init__(self) -> None:
        if self.kind not in ("asl", "bce"):
            raise ValueError(f"classifier loss kind {self.kind!r} is not one of 'asl', 'bce'")
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction {self.reduction!r} is not one of 'mean', 'sum'")
        if not 0.0 <= self.clip < 1.0 or self.gamma_neg < 0 or self.gamma_pos < 0:
            raise ValueError(f"need 0 <= clip < 1 and gammas >= 0; got {self}")


def asymmetric_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma_neg: float = 4.0,
    gamma_pos: float = 1.0,
    clip: float = 0.05,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Asymmetric loss (Ridnik et al., 2021) for multi-label logits and {0, 1} targets.

    Positives: -(1 - p)^gamma_pos * log(p). Negatives: with the shifted probability
    p_m = max(p - clip, 0), -p_m^gamma_neg * log(1 - p_m): easy negatives (p < clip) cost nothing.
    gamma_neg = gamma_pos = clip = 0 is exactly binary cross-entropy.
    """
    p = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    if clip > 0:
        p_m = (p - clip).clamp_min(0.0)
        log_not_p_m = torch.log((1.0 - p_m).clamp_min(1e-8))
    else:
        p_m, log_not_p_m = p, F.logsigmoid(-logits)
    loss = -(targets * (1.0 - p).pow(gamma_pos) * log_p + (1.0 - targets) * p_m.pow(gamma_neg) * log_not_p_m)
    return loss.mean() if reduction == "mean" else loss.sum()


def classification_loss(logits: torch.Tensor, targets: torch.Tensor, spec: ClassifierLoss) -> torch.Tensor:
    if spec.kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, targets, reduction=spec.reduction)
    return asymmetric_loss(logits, targets, spec.gamma_neg, spec.gamma_pos, spec.clip, spec.reduction)
