"""Model-test fixtures: a tiny configuration (fast on 2 CPU cores) and a synthetic ECG generator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rare_ecg.model.config import ModelConfig

# P, Q, R, S, T: (offset from R in s, Gaussian width in s, amplitude)
WAVES = (
    (-0.18, 0.025, 0.15),
    (-0.03, 0.010, -0.10),
    (0.0, 0.012, 1.0),
    (0.03, 0.010, -0.25),
    (0.25, 0.045, 0.30),
)


@dataclass
class SyntheticBatch:
    signal: np.ndarray  # (n, 12, N) float32, standardised per lead like the canonical preprocessing
    abnormal_span: list[tuple[int, int] | None]  # samples [start, end) of the injected abnormality


def make_ecgs(rng: np.random.Generator, n: int, abnormal: bool = False, fs: int = 100) -> SyntheticBatch:
    """Sinus rhythm at 60-80 bpm from a fixed 12-lead template with small per-record variation, baseline
    wander and noise. ``abnormal`` adds one wide ectopic complex with a discordant T wave (random
    polarity per lead) at a random time, and records where it lies."""
    t = np.arange(10 * fs) / fs
    template = np.random.default_rng(7).normal(1.0, 0.3, size=(12, len(WAVES)))
    out = np.zeros((n, 12, t.size), dtype=np.float32)
    spans: list[tuple[int, int] | None] = []
    for i in range(n):
        rr = 60.0 / rng.uniform(60, 80)
        gains = template * rng.normal(1.0, 0.05, size=template.shape)
        sig = np.zeros((12, t.size))
        r = rng.uniform(0.2, rr)
        while r < 10.5:
            for w, (offset, width, amp) in enumerate(WAVES):
                sig += (gains[:, w] * amp)[:, None] * np.exp(-0.5 * ((t - r - offset) / width) ** 2)[None]
            r += rr * rng.normal(1.0, 0.02)
        sig += 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi))[None]
        sig += rng.normal(0, 0.01, size=sig.shape)
        span = None
        if abnormal:
            c = rng.uniform(1.0, 9.0)
            amp = rng.choice([-1.0, 1.0], size=12) * rng.uniform(0.8, 1.5, size=12)
            bump = np.exp(-0.5 * ((t - c) / 0.04) ** 2) - 0.5 * np.exp(-0.5 * ((t - c - 0.2) / 0.06) ** 2)
            sig += amp[:, None] * bump[None]
            span = (int((c - 0.1) * fs), int((c + 0.35) * fs))
        out[i] = (sig - sig.mean(1, keepdims=True)) / sig.std(1, keepdims=True)
        spans.append(span)
    return SyntheticBatch(signal=out, abnormal_span=spans)


@pytest.fixture
def synthetic_ecgs() -> Callable[..., SyntheticBatch]:
    return make_ecgs


@pytest.fixture
def tiny_config() -> ModelConfig:
    return ModelConfig(labels=("A", "B", "C"), d_model=32, n_layers=1, n_heads=2, mlp_ratio=2)


@pytest.fixture(autouse=True)
def _seeded() -> Iterator[None]:
    """Fixed seed; one torch thread (on a shared 2-core machine, two threads that wait on each other
    made a training step 20x slower), restored afterwards."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
