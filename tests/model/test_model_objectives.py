"""Each pretraining and fine-tuning objective against its specification in METHOD.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inputs import model_inputs
from rare_ecg.model.objectives import (
    ClassifierLoss,
    anomaly_round_masks,
    asymmetric_loss,
    attribute_losses,
    classification_loss,
    extract_beat,
    heteroscedastic_nll,
    patch_to_samples,
    random_patch_mask,
    random_span_mask,
    shifted_patch_masks,
    training_mask,
)

# --- masks ----------------------------------------------------------------------------------------------


def test_patch_masks_hide_30_percent_fresh_per_sample_and_reproducibly() -> None:
    cfg = ModelConfig()
    assert cfg.patch_len == 8 and cfg.n_patches == 125  # 0.08 s patches of a 10 s window at 100 Hz
    masks = random_patch_mask(64, cfg.n_patches, 0.3, torch.Generator().manual_seed(1))
    assert masks.shape == (64, 125) and masks.dtype == torch.bool
    assert (masks.sum(1) == round(0.3 * 125)).all()
    assert len({tuple(m.tolist()) for m in masks}) == 64  # a fresh mask for every sample
    again = random_patch_mask(64, cfg.n_patches, 0.3, torch.Generator().manual_seed(1))
    other = random_patch_mask(64, cfg.n_patches, 0.3, torch.Generator().manual_seed(2))
    assert torch.equal(masks, again) and not torch.equal(masks, other)
    # Every patch position is hidden about 30% of the time: no position is favoured.
    freq = random_patch_mask(4000, 125, 0.3, torch.Generator().manual_seed(3)).float().mean(0)
    assert freq.min() > 0.25 and freq.max() < 0.35


def test_shifted_masks_cover_every_patch_exactly_once() -> None:
    for n_patches, rounds in ((125, 3), (125, 1), (12, 4)):
        masks = shifted_patch_masks(n_patches, rounds)
        assert masks.shape == (rounds, n_patches)
        assert (masks.sum(0) == 1).all()
        assert torch.equal(masks[1 % rounds].nonzero().ravel(), torch.arange(1 % rounds, n_patches, rounds))


def test_beat_window_spans_minus_028_to_plus_068_s_and_its_mask_is_one_30_percent_span() -> None:
    for fs, pre, length in ((100, 28, 96), (500, 140, 480)):
        cfg = ModelConfig(fs_hz=fs)
        assert (cfg.beat_pre, cfg.beat_len) == (pre, length)
        x = torch.arange(2 * 12 * cfg.n_samples, dtype=torch.float32).reshape(2, 12, -1)
        r_peaks = torch.tensor([3 * fs, 7 * fs])
        beat = extract_beat(x, r_peaks - pre, length)
        assert torch.equal(beat[1, 4], x[1, 4, 7 * fs - pre : 7 * fs - pre + length])
        masks = random_span_mask(500, length, 0.3, torch.Generator().manual_seed(0))
        span = round(0.3 * length)
        assert (masks.sum(1) == span).all()
        starts = masks.float().argmax(1)
        # Contiguous: the hidden samples are exactly [start, start + span).
        pos = torch.arange(length)[None]
        assert torch.equal(masks, (pos >= starts[:, None]) & (pos < starts[:, None] + span))
        assert starts.min() == 0 and starts.max() == length - span  # every placement is reachable


def test_one_mask_per_sample_covers_global_patches_and_the_beat_span() -> None:
    cfg = ModelConfig()
    starts = torch.tensor([0, 100, 500, cfg.n_samples - cfg.beat_len])
    gen = torch.Generator().manual_seed(0)
    hidden = training_mask(starts, cfg.n_patches, cfg.patch_len, cfg.beat_len, (0.3, 0.3), gen)
    again = training_mask(
        starts, cfg.n_patches, cfg.patch_len, cfg.beat_len, (0.3, 0.3), torch.Generator().manual_seed(0)
    )
    assert hidden.shape == (4, cfg.n_samples) and torch.equal(hidden, again)
    span = round(0.3 * cfg.beat_len)
    for i, s in enumerate(starts.tolist()):
        window = hidden[i, s : s + cfg.beat_len]
        # The beat window holds a contiguous hidden span of 30% (besides any hidden patches in it)...
        runs = torch.nonzero(
            torch.diff(torch.cat([torch.tensor([0]), window.int(), torch.tensor([0])]))
        ).ravel()
        assert (runs[1::2] - runs[::2]).max() >= span
        # ... and outside it the mask is whole patches, 30% of them or fewer than that plus the window.
        outside = torch.cat([hidden[i, :s], hidden[i, s + cfg.beat_len :]])
        assert outside.float().mean() < 0.4
    assert (hidden.float().mean(1) >= 0.3).all()


# --- losses ---------------------------------------------------------------------------------------------


def test_heteroscedastic_nll_is_mean_of_exp_minus_s_times_squared_error_plus_s() -> None:
    pred = torch.tensor([[[1.0, 2.0]], [[0.0, 0.0]]])
    target = torch.tensor([[[0.0, 0.0]], [[3.0, 3.0]]])
    s = torch.tensor([[[0.0, math.log(4.0)]], [[0.0, 0.0]]])
    present = torch.tensor([[True], [True]])
    # exp(0) * 1 + 0, exp(-log 4) * 4 + log 4, 9, 9 -> mean
    expected = (1.0 + 1.0 + math.log(4.0) + 9.0 + 9.0) / 4
    assert heteroscedastic_nll(pred, s, target, present).item() == pytest.approx(expected)
    # An absent lead does not count, whatever its error.
    assert heteroscedastic_nll(pred, s, target, torch.tensor([[True], [False]])).item() == pytest.approx(
        (1.0 + 1.0 + math.log(4.0)) / 2
    )
    # Over hidden points only (visible weight 0), or visible points at a weight.
    hidden = torch.tensor([[False, True], [False, True]])
    assert heteroscedastic_nll(pred, s, target, present, hidden).item() == pytest.approx(
        (1.0 + math.log(4.0) + 9.0) / 2
    )
    assert heteroscedastic_nll(pred, s, target, present, hidden, 0.5).item() == pytest.approx(
        (0.5 * 1.0 + 1.0 + math.log(4.0) + 0.5 * 9.0 + 9.0) / 3
    )
    # The optimal log-variance is the log of the squared error: the gradient in s vanishes there.
    s_opt = torch.log(torch.tensor([[[1.0, 4.0]], [[9.0, 9.0]]])).requires_grad_()
    heteroscedastic_nll(pred, s_opt, target, present).backward()
    assert s_opt.grad is not None and s_opt.grad.abs().max() < 1e-6


def test_attribute_losses_ignore_missing_targets() -> None:
    age_pred = torch.tensor([50.0, 70.0, 30.0], requires_grad=True)
    sex_logit = torch.tensor([0.0, 2.0, -1.0], requires_grad=True)
    meas_pred = torch.tensor([[70.0, 160.0, 100.0, 400.0]] * 3, requires_grad=True)
    age = torch.tensor([60.0, float("nan"), 20.0])
    sex = torch.tensor([float("nan"), 1.0, 0.0])
    meas = torch.full((3, 4), float("nan"))
    meas[0, 0] = 90.0
    terms = attribute_losses(age_pred, sex_logit, meas_pred, age, sex, meas)
    assert terms["age"].item() == pytest.approx(((10 / 20) ** 2 + (10 / 20) ** 2) / 2)
    bce = F.binary_cross_entropy_with_logits(torch.tensor([2.0, -1.0]), torch.tensor([1.0, 0.0]))
    assert terms["sex"].item() == pytest.approx(bce.item())
    assert terms["measurements"].item() == pytest.approx((20 / 20) ** 2)
    sum(terms.values()).backward()  # type: ignore[union-attr]
    for grad in (age_pred.grad, sex_logit.grad, meas_pred.grad):
        assert grad is not None and torch.isfinite(grad).all()
    assert age_pred.grad is not None and age_pred.grad[1] == 0  # missing age: no gradient
    assert sex_logit.grad is not None and sex_logit.grad[0] == 0
    assert (
        meas_pred.grad is not None and (meas_pred.grad[1:] == 0).all() and (meas_pred.grad[0, 1:] == 0).all()
    )
    # A batch without any target of a kind contributes exactly zero.
    none = attribute_losses(age_pred, sex_logit, meas_pred, torch.full((3,), float("nan")), sex, meas)
    assert none["age"].item() == 0.0


def _asl_by_hand(logit: float, y: float, gamma_neg: float, gamma_pos: float, clip: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    if y == 1:
        return -((1 - p) ** gamma_pos) * math.log(p)
    p_m = max(p - clip, 0.0)
    return -(p_m**gamma_neg) * math.log(1 - p_m)


def test_asymmetric_loss_hand_computed_with_the_method_defaults() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [-3.0, 1.5, 0.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    expected = [
        _asl_by_hand(float(z), float(y), 4.0, 1.0, 0.05)
        for z, y in zip(logits.ravel(), targets.ravel(), strict=True)
    ]
    assert asymmetric_loss(logits, targets).item() == pytest.approx(np.mean(expected), rel=1e-5)
    assert asymmetric_loss(logits, targets, reduction="sum").item() == pytest.approx(
        np.sum(expected), rel=1e-5
    )
    # logit -3 -> p = 0.047 < clip: an easy negative costs exactly nothing.
    assert _asl_by_hand(-3.0, 0.0, 4.0, 1.0, 0.05) == 0.0
    easy = asymmetric_loss(torch.tensor([[-3.0]]), torch.tensor([[0.0]]))
    assert easy.item() == 0.0


def test_asymmetric_loss_without_focusing_or_clip_is_bce_and_bce_is_the_baseline_option() -> None:
    rng = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(16, 5, generator=rng)
    targets = (torch.rand(16, 5, generator=rng) < 0.3).float()
    bce = F.binary_cross_entropy_with_logits(logits, targets)
    assert asymmetric_loss(logits, targets, 0.0, 0.0, 0.0).item() == pytest.approx(bce.item(), rel=1e-6)
    assert classification_loss(logits, targets, ClassifierLoss(kind="bce")).item() == pytest.approx(
        bce.item()
    )
    asl = classification_loss(logits, targets, ClassifierLoss())
    assert asl.item() == pytest.approx(asymmetric_loss(logits, targets).item())
    # With the defaults, negatives are down-weighted relative to BCE far more than positives.
    neg_only = classification_loss(logits, torch.zeros_like(targets), ClassifierLoss())
    pos_only = classification_loss(logits, torch.ones_like(targets), ClassifierLoss())
    bce_neg = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(targets))
    bce_pos = F.binary_cross_entropy_with_logits(logits, torch.ones_like(targets))
    assert neg_only / bce_neg < 0.5 * (pos_only / bce_pos)
    with pytest.raises(ValueError, match="kind"):
        ClassifierLoss(kind="focal")  # type: ignore[arg-type]


def test_anomaly_rounds_by_beat_never_hide_a_sample_with_its_twins() -> None:
    """At 0.96 s RR (a multiple of 3 patches) shifted masks hide samples together with both R-aligned
    twins, so the beat copy has nothing to read there; rounds by beat keep every interior twin visible."""
    cfg = ModelConfig()
    peaks = np.arange(40, cfg.n_samples, 96)
    inputs = model_inputs(np.zeros((1, 12, cfg.n_samples), np.float32), np.ones((1, 12), bool), [peaks], cfg)
    phase, nb = torch.from_numpy(inputs.beat_phase), torch.from_numpy(inputs.beat_neighbours)[0]
    own = torch.arange(cfg.n_samples)
    interior = (nb[0] != own) & (nb[1] != own) & (nb[0] != nb[1])

    def twins_hidden(rounds: torch.Tensor) -> int:  # (K, N) sample masks
        return int(sum(((h & h[nb[0]] & h[nb[1]]) & interior).sum() for h in rounds))

    by_beat = anomaly_round_masks(phase, 1, cfg.n_patches, cfg.patch_len, cfg.anomaly_rounds)[:, 0]
    assert (by_beat.sum(0) == 1).all()  # still a partition of the patches
    shifted = shifted_patch_masks(cfg.n_patches, cfg.anomaly_rounds)
    assert twins_hidden(patch_to_samples(shifted, cfg.patch_len)) > 100
    assert twins_hidden(patch_to_samples(by_beat, cfg.patch_len)) < 0.02 * cfg.n_samples
    # Without R peaks (or fewer than K), the shifted masks.
    assert torch.equal(anomaly_round_masks(None, 2, 125, 8, 3)[:, 1], shifted)
    flat = torch.full((1, 2, cfg.n_samples), 1.0)
    assert torch.equal(anomaly_round_masks(flat, 1, 125, 8, 3)[:, 0], shifted)
