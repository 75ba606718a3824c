"""Inpainting skill: the network against the R-aligned neighbouring-beat copy and zero; a short run on
synthetic records brings the network's hidden-point error below zero's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inputs import model_inputs
from rare_ecg.model.loop import LoopSettings, pretrain_loop
from rare_ecg.model.network import EcgModel
from rare_ecg.model.objectives import training_mask
from rare_ecg.model.skill import SKILL_SEED, inpainting_skill
from rare_ecg.model.training import Batch
from rare_ecg.signals.beats import beat_copy
from tests.model.helpers import r_peaks

PEAKS = np.arange(37, 1000, 83)


def _periodic(n: int) -> np.ndarray:
    """Records that repeat exactly every 83 samples from sample 37 on (one fixed beat shape per lead)."""
    rng = np.random.default_rng(0)
    beat = rng.normal(size=(n, 12, 83)).astype(np.float32)
    x = np.tile(beat, (1, 1, 14))[:, :, 83 - 37 : 83 - 37 + 1000]
    return np.ascontiguousarray(x)


def test_beat_copy_reads_visible_twins_only_and_is_exact_on_a_periodic_record() -> None:
    cfg = ModelConfig()
    x = _periodic(1)[0]
    neighbours = model_inputs(x[None], np.ones((1, 12), bool), [PEAKS], cfg).beat_neighbours[0]
    hidden = np.zeros(1000, dtype=bool)
    hidden[300:380] = True  # less than one beat: every hidden sample has a visible twin
    copy = beat_copy(x, hidden, neighbours)
    np.testing.assert_array_equal(copy[:, hidden], x[:, hidden])
    # Hidden values are never read: noise there leaves the copy of every sample unchanged.
    noisy = x.copy()
    noisy[:, hidden] += 100.0
    np.testing.assert_array_equal(beat_copy(noisy, hidden, neighbours)[:, hidden], copy[:, hidden])
    # Where both twins are hidden the copy predicts zero.
    hidden[200:460] = True  # samples 290-370: twins at 207-287 and 373-453, all hidden
    assert not beat_copy(x, hidden, neighbours)[:, 330].any()


class _Oracle(EcgModel):
    """The real network whose reconstruction is replaced by the truth plus a known error."""

    def __init__(self, cfg: ModelConfig, error: float) -> None:
        super().__init__(cfg)
        self.error = error

    def reconstruct(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return x + self.error, torch.zeros_like(x)


def test_skill_is_hidden_mse_over_that_of_the_aligned_beat_copy_and_of_zero() -> None:
    cfg = ModelConfig()
    x = _periodic(4)
    x[:, :, 500:520] += 2.0  # one irregular stretch: the copy is wrong there, not elsewhere
    batch = Batch(x, np.ones((4, 12), bool), [PEAKS] * 4)
    result = inpainting_skill(_Oracle(cfg, error=0.5), [batch])
    # What the function must have computed, from the same masks.
    inputs = batch.inputs(cfg)
    gen = torch.Generator().manual_seed(SKILL_SEED)
    hidden = training_mask(
        torch.from_numpy(inputs.beat_start), cfg.n_patches, cfg.patch_len, cfg.beat_len, (0.3, 0.3), gen
    ).numpy()
    copy_err, zero_err = [], []
    for i in range(4):
        c = beat_copy(x[i], hidden[i], inputs.beat_neighbours[i])
        copy_err.append(((c - x[i]) ** 2)[:, hidden[i]].ravel())
        zero_err.append((x[i] ** 2)[:, hidden[i]].ravel())
    copy_mse, zero_mse = np.concatenate(copy_err).mean(), np.concatenate(zero_err).mean()
    assert result["hidden_mse"] == pytest.approx(0.25)
    assert result["copy_mse"] == pytest.approx(copy_mse, rel=1e-5)
    assert result["zero_mse"] == pytest.approx(zero_mse, rel=1e-5)
    assert result["skill_vs_copy"] == pytest.approx(0.25 / copy_mse, rel=1e-5)
    assert result["skill_vs_zero"] == pytest.approx(0.25 / zero_mse, rel=1e-5)
    assert 0 < copy_mse < zero_mse  # the copy is imperfect only around the irregular stretch
    assert result["n_points"] == 12 * hidden.sum()


@pytest.mark.timeout(900)
def test_a_short_run_on_synthetic_records_inpaints_better_than_zero(
    synthetic_ecgs: Callable[..., Any], tiny_config: ModelConfig
) -> None:
    """The network starts from the mean of the visible R-aligned twins (the copy prior); the selected
    checkpoint stays below zero's error and the copy's. (Without the prior, 80 steps left the network at
    zero's error, 1.00, as on real records; whether it improves on the prior in 80 steps is not asserted.)"""
    cfg = ModelConfig.from_dict({**tiny_config.to_dict(), "labels": ()})
    assert cfg.beat_copy
    rng = np.random.default_rng(0)
    train_x = synthetic_ecgs(rng, 96).signal
    val_x = synthetic_ecgs(rng, 16).signal
    train = Batch(train_x, np.ones((96, 12), bool), r_peaks(train_x))
    validation = Batch(val_x, np.ones((16, 12), bool), r_peaks(val_x))
    model = EcgModel(cfg)
    before = inpainting_skill(model, [validation])
    settings = LoopSettings(max_steps=80, batch_size=16, lr=3e-3, warmup_steps=10, eval_every=40)
    result = pretrain_loop(model, train, validation, settings)
    after = inpainting_skill(result.model, [validation])
    assert before["skill_vs_copy"] < 1.0  # the prior: the mean of the two visible twins
    assert after["skill_vs_zero"] < 0.5 and after["skill_vs_copy"] < 1.0, (before, after)
    assert [r["step"] for r in result.history] == [0, 40, 80]
    # The selected checkpoint is the one with the best validation NLL among the checks.
    best = max(result.history, key=lambda r: r["criterion"])
    assert result.best_step == best["step"]
    assert after["hidden_nll"] == pytest.approx(best["hidden_nll"], rel=1e-4)
