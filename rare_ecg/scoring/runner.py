"""Run the inference graph over waveform rows: ONNX Runtime (scoring) or PyTorch eager (parity checks and
the benchmark's baseline), the same windows and inputs either way."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import OUTPUT_NAMES, InferenceGraph
from rare_ecg.model.inputs import ModelInputs, model_inputs
from rare_ecg.model.network import EcgModel
from rare_ecg.scoring.windows import RecordOutputs, Windows, aggregate, split_windows

Runner = Callable[[ModelInputs], dict[str, np.ndarray]]


def onnx_runner(session: ort.InferenceSession) -> Runner:
    names = [i.name for i in session.get_inputs()]

    def run(inputs: ModelInputs) -> dict[str, np.ndarray]:
        feeds = inputs.feeds()
        missing = [n for n in names if n not in feeds]
        if missing:
            raise ValueError(f"the ONNX graph needs inputs {missing} that model_inputs does not make")
        outs = session.run(list(OUTPUT_NAMES), {n: feeds[n] for n in names})
        return dict(zip(OUTPUT_NAMES, outs, strict=True))

    return run


def torch_runner(model: EcgModel) -> Runner:
    graph = InferenceGraph(model.eval()).eval()

    def run(inputs: ModelInputs) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outs = graph(*inputs.torch())
        return {n: t.numpy() for n, t in zip(OUTPUT_NAMES, outs, strict=True)}

    return run


def run_windows(windows: Windows, cfg: ModelConfig, run: Runner, batch_size: int) -> dict[str, np.ndarray]:
    """The graph's outputs for every window, ``batch_size`` windows at a time."""
    parts: dict[str, list[np.ndarray]] = {n: [] for n in OUTPUT_NAMES}
    for i in range(0, len(windows.record), batch_size):
        j = min(i + batch_size, len(windows.record))
        inputs = model_inputs(windows.signal[i:j], windows.lead_mask[i:j], windows.beat_positions[i:j], cfg)
        for name, value in run(inputs).items():
            parts[name].append(value)
    return {n: np.concatenate(v) for n, v in parts.items() if v}


def score_rows(rows: pa.Table, cfg: ModelConfig, run: Runner, batch_size: int) -> RecordOutputs:
    """ecg_waveforms rows (already quality-checked) -> one output per row, windows aggregated."""
    windows = split_windows(rows, cfg.n_samples)
    out = run_windows(windows, cfg, run, batch_size)
    if not out:
        empty = np.zeros(0, np.float32)
        return RecordOutputs(np.zeros((0, len(cfg.labels)), np.float32), empty, [], empty, empty)
    return aggregate(
        windows.record,
        rows.num_rows,
        out["probs"],
        out["anomaly_score"],
        out["anomaly_map"],
        out["age"],
        out["sex_female_prob"],
    )
