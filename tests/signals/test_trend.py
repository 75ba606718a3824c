"""The trend view: 20 ms moving average, first difference, per-lead re-normalisation; numpy == torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rare_ecg.model.objectives import trend_view
from rare_ecg.signals.trend import moving_average_width, trend


def _reference(x: np.ndarray, w: int) -> np.ndarray:
    """The definition written out sample by sample."""
    n = x.shape[-1]
    out = np.zeros_like(x, dtype=np.float64)
    for lead in range(x.shape[0]):
        smooth = np.array(
            [
                x[lead, max(0, min(n - 1, j))]
                for i in range(n)
                for j in range(i - w // 2, i + (w - 1) // 2 + 1)
            ]
        )
        smooth = smooth.reshape(n, w).mean(1)
        d = np.r_[0.0, np.diff(smooth)]
        out[lead] = (d - d.mean()) / d.std() if d.std() > 1e-6 else 0.0
    return out


def test_window_width_is_20_ms() -> None:
    assert moving_average_width(100) == 2
    assert moving_average_width(500) == 10


@pytest.mark.parametrize("fs", [100, 500])
def test_trend_matches_its_definition(fs: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 2 * fs)).cumsum(1)
    x[2] = 0.0  # an absent lead stays zero
    got = trend(x, fs)
    np.testing.assert_allclose(got, _reference(x, moving_average_width(fs)), atol=1e-5)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got[:2].mean(1), 0.0, atol=1e-5)
    np.testing.assert_allclose(got[:2].std(1), 1.0, atol=1e-5)
    assert not got[2].any()


def test_trend_of_a_sine_is_its_normalised_cosine() -> None:
    fs = 500
    t = np.arange(10 * fs) / fs
    got = trend(np.sin(2 * np.pi * 1.0 * t)[None], fs)[0]
    # The even-width average is centred half a sample back and the backward difference another half:
    # the derivative lands one sample late; the 1 Hz wave itself passes the 20 ms average intact.
    expected = np.sqrt(2) * np.cos(2 * np.pi * 1.0 * (t - 1.0 / fs))
    np.testing.assert_allclose(got[50:-50], expected[50:-50], atol=5e-3)


@pytest.mark.parametrize("fs", [100, 500])
def test_model_graph_computes_the_same_trend(fs: int) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 12, 10 * fs)).astype(np.float32)
    x[1, 3] = 0.0
    got = trend_view(torch.from_numpy(x), fs, 0.02).numpy()
    np.testing.assert_allclose(got, trend(x, fs), atol=2e-4)
