"""Lake rows -> model inputs: the one function training, evaluation, scoring and the ONNX graph share.

A row of ``ecg_waveforms`` carries the standardised signal, its lead mask and ``beat_positions`` (R
peaks at the model rate, detected once at ingestion). From the R peaks of one 10 s window come:

- ``beat_start``: first sample of the local view's beat window (R - beat_pre);
- ``beat_phase`` (B, 2, N): time since the previous R peak and until the next one, in seconds,
  clipped to 1 s (where the hidden beats are: their timing, not their morphology);
- ``beat_neighbours`` (B, 2, N): for every sample, the index of the same sample (same offset from its
  nearest R peak) in the previous and the next beat; the record's own index where there is no such
  beat. The R-aligned beat copy (the inpainting baseline) and the beat-to-beat deviation score read it.

Positions are in the row's own sample coordinates: a record stored as several windows side by side
gives each window its peaks through ``window_beat_positions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rare_ecg.model.config import ModelConfig
from rare_ecg.signals.beats import beat_neighbours, beat_phase

if TYPE_CHECKING:
    import torch

# Names of the inference graph's inputs, in order (rare_ecg.model.inference exports them so).
INPUT_NAMES: tuple[str, ...] = ("signal", "lead_mask", "beat_start", "beat_phase", "beat_neighbours")


@dataclass
class ModelInputs:
    signal: np.ndarray  # (B, 12, N) float32
    lead_mask: np.ndarray  # (B, 12) bool
    beat_start: np.ndarray  # (B,) int64
    beat_phase: np.ndarray  # (B, 2, N) float32
    beat_neighbours: np.ndarray  # (B, 2, N) int64

    def torch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The graph's inputs as tensors, in ``INPUT_NAMES`` order."""
        import torch  # here, not at the top: Ray Data's read tasks import this module and need no torch

        return (
            torch.from_numpy(self.signal),
            torch.from_numpy(self.lead_mask),
            torch.from_numpy(self.beat_start),
            torch.from_numpy(self.beat_phase),
            torch.from_numpy(self.beat_neighbours),
        )

    def feeds(self) -> dict[str, np.ndarray]:
        """ONNX Runtime feeds of the exported graph (the lead mask as float32)."""
        return {
            "signal": self.signal,
            "lead_mask": self.lead_mask.astype(np.float32),
            "beat_start": self.beat_start,
            "beat_phase": self.beat_phase,
            "beat_neighbours": self.beat_neighbours,
        }

    def subset(self, idx: np.ndarray) -> ModelInputs:
        return ModelInputs(
            self.signal[idx],
            self.lead_mask[idx],
            self.beat_start[idx],
            self.beat_phase[idx],
            self.beat_neighbours[idx],
        )


def window_beat_positions(positions: np.ndarray, window: int, n_samples: int) -> np.ndarray:
    """The R peaks of a whole record (``beat_positions``) that fall in window ``window`` of
    ``n_samples`` samples, in that window's coordinates."""
    p = np.asarray(positions, dtype=np.int64) - window * n_samples
    return p[(p >= 0) & (p < n_samples)]


def _peaks(positions: np.ndarray, n: int) -> np.ndarray:
    p = np.asarray(positions)
    if p.ndim != 1:
        raise ValueError(
            f"beat positions of a record must be a 1-D array of R-peak samples; got shape {p.shape}"
        )
    p = np.unique(p.astype(np.int64))
    return p[(p >= 0) & (p < n)]


def beat_start(peaks: np.ndarray, n: int, cfg: ModelConfig, rng: np.random.Generator | None) -> int:
    """R - beat_pre of one R peak whose whole beat window fits: drawn with ``rng`` (training), else the
    one nearest the centre (deterministic). No eligible peak: the centred window (a plain excerpt)."""
    cand = peaks - cfg.beat_pre
    cand = cand[(cand >= 0) & (cand + cfg.beat_len <= n)]
    if cand.size == 0:
        return (n - cfg.beat_len) // 2
    if rng is None:
        return int(cand[np.argmin(np.abs(cand + cfg.beat_pre - n // 2))])
    return int(cand[rng.integers(cand.size)])


def model_inputs(
    signal: np.ndarray,
    lead_mask: np.ndarray,
    beat_positions: Sequence[np.ndarray],
    cfg: ModelConfig,
    rng: np.random.Generator | None = None,
) -> ModelInputs:
    """signal (B, 12, N) float32, lead_mask (B, 12) bool, R peaks per row -> the model's inputs.

    ``rng`` draws the beat window among the row's R peaks (training); without it the choice is
    deterministic (evaluation, scoring, export)."""
    x = np.ascontiguousarray(signal, dtype=np.float32)
    if x.ndim != 3 or x.shape[1] != cfg.n_leads or x.shape[2] != cfg.n_samples:
        raise ValueError(f"signal must be (B, {cfg.n_leads}, {cfg.n_samples}); got shape {x.shape}")
    b, _, n = x.shape
    if len(beat_positions) != b:
        raise ValueError(f"need one beat_positions array per row: {len(beat_positions)} for {b} rows")
    starts = np.empty(b, dtype=np.int64)
    phase = np.empty((b, 2, n), dtype=np.float32)
    neigh = np.empty((b, 2, n), dtype=np.int64)
    for i, positions in enumerate(beat_positions):
        peaks = _peaks(positions, n)
        starts[i] = beat_start(peaks, n, cfg, rng)
        phase[i] = beat_phase(peaks, n, cfg.fs_hz)
        neigh[i] = beat_neighbours(peaks, n)
    return ModelInputs(x, np.asarray(lead_mask, dtype=bool), starts, phase, neigh)
