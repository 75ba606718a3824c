"""The anomaly map's arithmetic: K shifted rounds, per-point error from the round that hid it,
uncertainty weighting, Gaussian smoothing, record score and coarse map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rare_ecg.model.anomaly import anomaly_map
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import GLOBAL, EcgModel
from rare_ecg.model.scores import gaussian_kernel


class RecordingModel(EcgModel):
    """The real network (without the copy prior) with a known decoder output (x_hat = 0, s = log 2,
    so e = x^2 / 2): isolates
    the map's arithmetic from what the network learned, and records the visibility of each round."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.visible_seen: list[torch.Tensor] = []

    def encode(
        self,
        x: torch.Tensor,
        visible: torch.Tensor,
        lead_mask: torch.Tensor,
        view: int,
        phase: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if view == GLOBAL:
            self.visible_seen.append(visible.clone())
        return super().encode(x, visible, lead_mask, view, phase)

    def signal_and_log_var(self, head_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat, log_var = super().signal_and_log_var(head_out)
        return torch.zeros_like(x_hat), torch.full_like(log_var, float(np.log(2.0)))


def _smooth_reference(err: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    r = kernel.size // 2
    padded = np.pad(err, [(0, 0)] * (err.ndim - 1) + [(r, r)], mode="reflect")
    return np.apply_along_axis(lambda v: np.convolve(v, kernel[::-1], mode="valid"), -1, padded)


def test_gaussian_kernel_is_normalised_symmetric_with_the_requested_sigma() -> None:
    k = gaussian_kernel(3.0)  # 30 ms at 100 Hz
    assert k.numel() == 19 and k.sum().item() == pytest.approx(1.0)
    torch.testing.assert_close(k, k.flip(0))
    t = torch.arange(-9, 10, dtype=torch.float32)
    assert (k * t**2).sum().sqrt().item() == pytest.approx(3.0, rel=0.02)


def test_map_uses_each_point_once_from_the_round_that_hid_it(tiny_config: ModelConfig) -> None:
    cfg = ModelConfig.from_dict(
        {**tiny_config.to_dict(), "record_score": "weighted_mean", "beat_copy": False}
    )
    model = RecordingModel(cfg).eval()
    x = torch.randn(2, 12, cfg.n_samples)
    lead_mask = torch.ones(2, 12, dtype=torch.bool)
    lead_mask[1, 7] = False
    with torch.no_grad():
        result = anomaly_map(model, x, lead_mask, torch.tensor([100, 300]))
    # A clean global encode (everything visible), then one batched encode of the K rounds.
    clean, visible = model.visible_seen
    assert (clean == 1).all()
    hidden = (1 - visible).reshape(cfg.anomaly_rounds, 2, cfg.n_samples)
    assert torch.equal(hidden[:, 0], hidden[:, 1])  # the same deterministic rounds for every record
    assert torch.equal(hidden.sum(0), torch.ones(2, cfg.n_samples))  # every point hidden exactly once
    patch = cfg.patch_len
    assert hidden[1, 0, patch : 2 * patch].all() and not hidden[1, 0, :patch].any()  # round k hides patch k

    err = (x.numpy() ** 2) / 2 * lead_mask.numpy()[:, :, None]  # exp(-log 2) * (0 - x)^2
    expected = _smooth_reference(err, gaussian_kernel(cfg.anomaly_smooth_s * cfg.fs_hz).numpy())
    expected *= lead_mask.numpy()[:, :, None]
    np.testing.assert_allclose(result.point_map.numpy(), expected, rtol=1e-4, atol=1e-5)
    # Score: mean over present leads; coarse map: means of 1 s segments.
    np.testing.assert_allclose(result.score.numpy()[1], expected[1][lead_mask[1].numpy()].mean(), rtol=1e-5)
    coarse = expected.reshape(2, 12, cfg.map_segments, -1).mean(-1)
    np.testing.assert_allclose(result.coarse_map.numpy(), coarse, rtol=1e-4, atol=1e-6)
    assert result.coarse_map.shape == (2, 12, 10)
    assert not result.point_map[1, 7].any()


def test_top_fraction_score_is_the_mean_of_the_largest_values(tiny_config: ModelConfig) -> None:
    cfg = ModelConfig.from_dict({**tiny_config.to_dict(), "record_score": "weighted_top", "beat_copy": False})
    assert cfg.score_top_k == 120  # 1% of 12 x 1000 points
    model = RecordingModel(cfg).eval()
    x = torch.randn(2, 12, cfg.n_samples)
    with torch.no_grad():
        result = anomaly_map(model, x, torch.ones(2, 12, dtype=torch.bool), torch.tensor([100, 300]))
    top = np.sort(result.point_map.numpy().reshape(2, -1), axis=1)[:, -120:].mean(1)
    np.testing.assert_allclose(result.score.numpy(), top, rtol=1e-5)


def test_real_network_map_is_deterministic_and_non_negative(tiny_config: ModelConfig) -> None:
    model = EcgModel(tiny_config).eval()
    x = torch.randn(3, 12, tiny_config.n_samples)
    args = (x, torch.ones(3, 12, dtype=torch.bool), torch.tensor([0, 200, 904]))
    with torch.no_grad():
        a, b = anomaly_map(model, *args), anomaly_map(model, *args)
    torch.testing.assert_close(a.point_map, b.point_map, rtol=0, atol=0)
    assert (a.point_map >= 0).all() and (a.score > 0).all()
