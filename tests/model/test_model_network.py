"""The network's contract: shapes at both rates, what it may and may not see, the CPU budget."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rare_ecg.model.anomaly import hidden_reconstruction
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import count_params, macs_per_ecg
from rare_ecg.model.inputs import model_inputs
from rare_ecg.model.network import EcgModel, with_labels
from rare_ecg.model.objectives import patch_to_samples, shifted_patch_masks, training_mask
from rare_ecg.model.training import Batch, PretrainWeights, pretrain_losses, pretrain_objective

CPU_BUDGET_MAC = 0.5e9  # per ECG at 100 Hz, probabilities plus anomaly map (issue 4)


def _inputs(cfg: ModelConfig, batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.randn(batch, 12, cfg.n_samples)
    lead_mask = torch.ones(batch, 12, dtype=torch.bool)
    beat_start = torch.full((batch,), 2 * cfg.fs_hz, dtype=torch.int64)
    return x, lead_mask, beat_start


@pytest.mark.parametrize("fs", [100, 500])
def test_output_shapes(fs: int, tiny_config: ModelConfig) -> None:
    cfg = ModelConfig.from_dict({**tiny_config.to_dict(), "fs_hz": fs})
    model = EcgModel(cfg)
    out = model(*_inputs(cfg))
    n, w = 10 * fs, cfg.beat_len
    assert out.x_hat.shape == out.x_log_var.shape == out.trend_hat.shape == (3, 12, n)
    assert out.beat.shape == out.beat_hat.shape == out.beat_log_var.shape == (3, 12, w)
    assert out.logits.shape == (3, 3)
    assert out.age.shape == out.sex_logit.shape == (3,)
    assert out.measurements.shape == (3, 4)
    # Untrained heads start near the population centre: ages in years, not standardised units.
    assert 0 < out.age.mean().item() < 120


def test_absent_leads_and_hidden_points_carry_no_information(tiny_config: ModelConfig) -> None:
    """The leak test: noise on hidden inputs leaves their reconstruction (global and local) exactly
    unchanged, the beat window and the trend view included, whatever the beat-phase setting."""
    for extra in ({}, {"beat_phase": True, "beat_copy": True}):
        cfg = ModelConfig.from_dict({**tiny_config.to_dict(), **extra})
        model = EcgModel(cfg).eval()
        x, lead_mask, beat_start = _inputs(cfg)
        lead_mask[:, 5] = False
        phase = torch.rand(3, 2, cfg.n_samples)
        peaks = [torch.arange(30, cfg.n_samples, 70 + 5 * i).numpy() for i in range(3)]
        nb = torch.from_numpy(model_inputs(x.numpy(), lead_mask.numpy(), peaks, cfg).beat_neighbours)
        hidden = training_mask(
            beat_start,
            cfg.n_patches,
            cfg.patch_len,
            cfg.beat_len,
            (0.3, 0.3),
            torch.Generator().manual_seed(0),
        )
        with torch.no_grad():
            out = model(x, lead_mask, beat_start, phase, hidden, nb)
            # Garbage in an absent lead: nothing changes.
            x_absent = x.clone()
            x_absent[:, 5] = 1e3
            out_absent = model(x_absent, lead_mask, beat_start, phase, hidden, nb)
            # Noise on every hidden point, the beat window's included.
            x_hidden = x + 5.0 * torch.randn_like(x) * hidden[:, None, :]
            out_hidden = model(x_hidden, lead_mask, beat_start, phase, hidden, nb)
            noisy = x + 5.0 * torch.randn_like(x)
        torch.testing.assert_close(out_absent.logits, out.logits)
        torch.testing.assert_close(out_absent.x_hat, out.x_hat)
        assert out.beat_hidden.any() and (out.beat_hidden.sum(1) >= round(0.3 * cfg.beat_len)).all()
        assert torch.equal(out_hidden.x_hat, out.x_hat)
        assert torch.equal(out_hidden.x_log_var, out.x_log_var)
        assert torch.equal(out_hidden.beat_hat, out.beat_hat)
        # ... whereas the same change in visible samples does change it (the test can fail).
        with torch.no_grad():
            x_visible = x + 5.0 * torch.randn_like(x) * (~hidden)[:, None, :]
            assert not torch.allclose(
                model(x_visible, lead_mask, beat_start, phase, hidden, nb).x_hat, out.x_hat
            )
        # Each round of the anomaly map: its reconstruction does not move when its hidden samples change.
        k_hidden = patch_to_samples(shifted_patch_masks(cfg.n_patches, cfg.anomaly_rounds), cfg.patch_len)
        expected = torch.zeros_like(x)
        for h in k_hidden:
            hb = h[None].expand(3, -1)
            with torch.no_grad():
                a = model.reconstruct(x, lead_mask, beat_start, hb, phase, nb)
                b = model.reconstruct(
                    torch.where(hb[:, None, :], noisy, x), lead_mask, beat_start, hb, phase, nb
                )
            assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            expected += (a[0] - x).pow(2) * hb[:, None, :]
        # ... and the map takes each point's error from the round that hid it.
        with torch.no_grad():
            err, _ = hidden_reconstruction(model, x, lead_mask, beat_start, phase, nb)
        torch.testing.assert_close(err, expected)


def test_records_in_a_batch_do_not_influence_each_other(tiny_config: ModelConfig) -> None:
    model = EcgModel(tiny_config).eval()
    x, lead_mask, beat_start = _inputs(tiny_config, batch=4)
    with torch.no_grad():
        together = model(x, lead_mask, beat_start)
        alone = model(x[2:3], lead_mask[2:3], beat_start[2:3])
    torch.testing.assert_close(together.logits[2:3], alone.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(together.x_hat[2:3], alone.x_hat, atol=1e-5, rtol=1e-5)


def test_default_model_is_within_the_cpu_budget() -> None:
    labels = tuple(f"L{i}" for i in range(71))  # the size of PTB-XL's SCP vocabulary
    macs_100 = macs_per_ecg(EcgModel(ModelConfig(labels=labels)))
    assert 0.1e9 < macs_100 <= CPU_BUDGET_MAC
    macs_500 = macs_per_ecg(EcgModel(ModelConfig(labels=labels, fs_hz=500)))
    assert macs_500 > macs_100  # the count sees the signal length
    assert count_params(EcgModel(ModelConfig(labels=labels))) < 2_000_000


def test_config_rejects_what_the_network_cannot_take() -> None:
    with pytest.raises(ValueError, match="fs_hz=250"):
        ModelConfig(fs_hz=250)
    with pytest.raises(ValueError, match="not a multiple of the patch"):
        ModelConfig(patch_s=0.03)
    with pytest.raises(ValueError, match="n_heads"):
        ModelConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="score_top_fraction"):
        ModelConfig(score_top_fraction=0.0)
    with pytest.raises(ValueError, match="record_score"):
        ModelConfig(record_score="mean_of_everything")
    cfg = ModelConfig(labels=("X",), d_model=64)
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg


def test_fine_tuning_model_keeps_every_pretrained_weight_but_the_classifier(tiny_config: ModelConfig) -> None:
    pretrained = EcgModel(ModelConfig.from_dict({**tiny_config.to_dict(), "labels": ()}))
    assert pretrained.classifier is None
    tuned = with_labels(pretrained, ("NORM", "MI"))
    assert tuned.cfg.labels == ("NORM", "MI")
    for name, value in pretrained.state_dict().items():
        torch.testing.assert_close(tuned.state_dict()[name], value)
    x, lead_mask, beat_start = _inputs(tiny_config)
    assert tuned(x, lead_mask, beat_start).logits.shape == (3, 2)


def test_pretraining_reaches_every_parameter_except_the_classifier(tiny_config: ModelConfig) -> None:
    """Distributed data parallel training fails on parameters that no loss reaches."""
    model = EcgModel(tiny_config)
    x, lead_mask, _ = _inputs(tiny_config, batch=4)
    batch = Batch(
        signal=x.numpy(),
        lead_mask=lead_mask.numpy(),
        beat_positions=[np.arange(30, 1000, 75) for _ in range(4)],
        age=torch.tensor([50.0, 60, 70, 80]).numpy(),
        sex=torch.tensor([0.0, 1, 0, 1]).numpy(),
        measurements=torch.full((4, 4), 100.0).numpy(),
    )
    pretrain_objective(
        pretrain_losses(model, batch, torch.Generator().manual_seed(0)), PretrainWeights()
    ).backward()
    unreached = [n for n, p in model.named_parameters() if p.grad is None and not n.startswith("classifier.")]
    assert unreached == []
