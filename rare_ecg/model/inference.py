"""The inference graph that scoring serves, its ONNX export, and its cost in multiply-accumulates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rare_ecg.model.anomaly import anomaly_map
from rare_ecg.model.inputs import INPUT_NAMES, model_inputs
from rare_ecg.model.network import EcgModel
from rare_ecg.model.scores import ECG_ONLY
from rare_ecg.quiet import dropped_warnings

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "InferenceGraph", "export_onnx", "macs_per_ecg"]

OUTPUT_NAMES = ("probs", "anomaly_score", "anomaly_map", "age", "sex_female_prob")


class InferenceGraph(nn.Module):
    """The inputs of rare_ecg.model.inputs (INPUT_NAMES: signal (B, 12, N) float32, lead_mask (B, 12)
    float32, beat_start (B,) int64, beat_phase (B, 2, N) float32, beat_neighbours (B, 2, N) int64) ->
    probs (B, L), anomaly_score (B,) = the model's cfg.record_score, anomaly_map (B, 12, map_segments),
    age (B,) years, P(female) (B,)."""

    def __init__(self, model: EcgModel) -> None:
        super().__init__()
        if model.cfg.record_score not in ECG_ONLY:
            raise ValueError(
                f"the served record score must read the ECG only; cfg.record_score={model.cfg.record_score!r}"
                f" is not one of {ECG_ONLY}"
            )
        self.model = model

    def forward(
        self,
        signal: torch.Tensor,
        lead_mask: torch.Tensor,
        beat_start: torch.Tensor,
        beat_phase: torch.Tensor,
        beat_neighbours: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(signal, lead_mask, beat_start, beat_phase, beat_neighbours=beat_neighbours)
        amap = anomaly_map(self.model, signal, lead_mask, beat_start, beat_phase, beat_neighbours, out=out)
        return (
            torch.sigmoid(out.logits),
            amap.score,
            amap.coarse_map,
            out.age,
            torch.sigmoid(out.sex_logit),
        )


def example_inputs(model: EcgModel, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Random signals whose R peaks are every 0.8 s, through model_inputs like real rows."""
    cfg = model.cfg
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(batch, cfg.n_leads, cfg.n_samples)).astype(np.float32)
    peaks = [np.arange(cfg.fs_hz // 2, cfg.n_samples, round(0.8 * cfg.fs_hz)) for _ in range(batch)]
    x, lead_mask, beat_start, phase, neighbours = model_inputs(
        signal, np.ones((batch, cfg.n_leads), dtype=bool), peaks, cfg
    ).torch()
    return x, lead_mask.to(torch.float32), beat_start, phase, neighbours


def export_onnx(model: EcgModel, path: str | Path) -> Path:
    """Write the inference graph as one self-contained .onnx file with a dynamic batch axis."""
    if not model.cfg.labels:
        raise ValueError("the inference graph needs a label vocabulary; got a model with cfg.labels=()")
    path = Path(path)
    graph = InferenceGraph(model).eval()
    batch = torch.export.Dim("batch", min=1)
    # the exporter logs a line per torchvision op it cannot register, and torch's pytree warns about
    # its own deprecated LeafSpec check: neither concerns this graph
    quiet = dropped_warnings("treespec", loggers=("torch.onnx._internal.exporter._registration",))
    with torch.no_grad(), quiet:
        torch.onnx.export(
            graph,
            example_inputs(model),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=tuple({0: batch} for _ in INPUT_NAMES),
            external_data=False,
            dynamo=True,
            verbose=False,
        )
    return path


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs_per_ecg(model: EcgModel) -> int:
    """Multiply-accumulates of the full inference graph (probabilities plus anomaly map) for one ECG:
    matrix products, convolutions and attention, as counted by torch's FLOP counter (FLOPs / 2)."""
    graph = InferenceGraph(model).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        graph(*example_inputs(model, batch=1))
    return counter.get_total_flops() // 2
