"""The inference graph that scoring serves, its ONNX export, and its cost in multiply-accumulates."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from rare_ecg.model.anomaly import anomaly_map
from rare_ecg.model.network import EcgModel

INPUT_NAMES = ("signal", "lead_mask", "beat_start")
OUTPUT_NAMES = ("probs", "anomaly_score", "anomaly_map", "age", "sex_female_prob")


class InferenceGraph(nn.Module):
    """signal (B, 12, N) float32, lead_mask (B, 12) float32, beat_start (B,) int64 ->
    probs (B, L), anomaly_score (B,), anomaly_map (B, 12, map_segments), age (B,) years, P(female) (B,)."""

    def __init__(self, model: EcgModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, signal: torch.Tensor, lead_mask: torch.Tensor, beat_start: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(signal, lead_mask, beat_start)
        amap = anomaly_map(self.model, signal, lead_mask, beat_start, local_tokens=out.local_tokens)
        return (
            torch.sigmoid(out.logits),
            amap.score,
            amap.coarse_map,
            out.age,
            torch.sigmoid(out.sex_logit),
        )


def example_inputs(model: EcgModel, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(batch, cfg.n_leads, cfg.n_samples, generator=gen)
    lead_mask = torch.ones(batch, cfg.n_leads)
    beat_start = torch.full((batch,), (cfg.n_samples - cfg.beat_len) // 2, dtype=torch.int64)
    return signal, lead_mask, beat_start


def export_onnx(model: EcgModel, path: str | Path) -> Path:
    """Write the inference graph as one self-contained .onnx file with a dynamic batch axis."""
    if not model.cfg.labels:
        raise ValueError("the inference graph needs a label vocabulary; got a model with cfg.labels=()")
    path = Path(path)
    graph = InferenceGraph(model).eval()
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        torch.onnx.export(
            graph,
            example_inputs(model),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: batch}, {0: batch}, {0: batch}),
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
