"""Model speed on CPU: forward ECG/s (PyTorch eager and ONNX Runtime fp32), training samples/s, cost.

Measures the default network of rare_ecg.model (100 Hz, 71 labels: the size of PTB-XL's SCP
vocabulary) on random standardised signals; the values of the signal do not change the arithmetic.
Forward = the full inference graph (label probabilities, anomaly score and coarse map, age, sex) at
batch 64. Training = pretraining steps (all four objectives, backward, AdamW) at batch 32.

    python -m benchmarks.model [--quick]

The last line is one JSON object: gmac_per_ecg, params, torch_ecg_per_s, ort_ecg_per_s,
onnx_max_abs_diff, train_samples_per_s (plus finetune_samples_per_s and the machine).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from benchmarks._common import emit, machine
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import InferenceGraph, count_params, export_onnx, macs_per_ecg
from rare_ecg.model.inputs import model_inputs
from rare_ecg.model.network import EcgModel
from rare_ecg.model.training import Batch, finetune_step, make_optimizer, pretrain_step

FORWARD_BATCH = 64
TRAIN_BATCH = 32
N_LABELS = 71


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocation and kernel selection
    return statistics.median(_seconds(fn) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about a minute)")
    args = parser.parse_args()
    repeats = 3 if args.quick else 7
    threads = torch.get_num_threads()

    torch.manual_seed(0)
    cfg = ModelConfig(labels=tuple(f"L{i}" for i in range(N_LABELS)))
    model = EcgModel(cfg).eval()
    rng = np.random.default_rng(0)
    signal = rng.normal(size=(FORWARD_BATCH, 12, cfg.n_samples)).astype(np.float32)
    lead_mask = np.ones((FORWARD_BATCH, 12), dtype=bool)
    # R peaks every 0.8 s from a random phase, as ingestion would store them.
    peaks = [np.arange(rng.integers(0, 80), cfg.n_samples, 80) for _ in range(FORWARD_BATCH)]
    model_in = model_inputs(signal, lead_mask, peaks, cfg)
    x, _, beat_start, phase, neighbours = model_in.torch()
    inputs = (x, torch.from_numpy(lead_mask.astype(np.float32)), beat_start, phase, neighbours)

    gmac = macs_per_ecg(model) / 1e9
    params = count_params(model)
    print(f"model: {params:,} parameters, {gmac:.3f} GMAC per ECG (probabilities + anomaly map, 100 Hz)")

    graph = InferenceGraph(model).eval()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "model.onnx")
        print(f"onnx export: {time.perf_counter() - start:.1f} s, {path.stat().st_size / 2**20:.1f} MiB")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = model_in.feeds()

    def torch_forward() -> object:
        with torch.no_grad():
            return graph(*inputs)

    # Interleaved, so that load from other processes on a shared machine hits both engines alike.
    torch_forward()
    session.run(None, feed)
    torch_times, ort_times = [], []
    for _ in range(repeats):
        torch_times.append(_seconds(torch_forward))
        ort_times.append(_seconds(lambda: session.run(None, feed)))
    torch_s, ort_s = statistics.median(torch_times), statistics.median(ort_times)
    print(f"torch eager ({threads} threads): {FORWARD_BATCH / torch_s:.1f} ECG/s at batch {FORWARD_BATCH}")
    print(f"onnxruntime fp32 ({threads} threads): {FORWARD_BATCH / ort_s:.1f} ECG/s at batch {FORWARD_BATCH}")
    ort_out = session.run(None, feed)
    with torch.no_grad():
        torch_out = graph(*inputs)
    diff = max(float(np.abs(o - t.numpy()).max()) for o, t in zip(ort_out, torch_out, strict=True))
    print(f"onnx max abs difference to torch: {diff:.2e}")

    train_batch = Batch(
        signal=signal[:TRAIN_BATCH],
        lead_mask=lead_mask[:TRAIN_BATCH],
        beat_positions=peaks[:TRAIN_BATCH],
        age=rng.uniform(20, 90, TRAIN_BATCH).astype(np.float32),
        sex=(rng.random(TRAIN_BATCH) < 0.5).astype(np.float32),
        labels=(rng.random((TRAIN_BATCH, N_LABELS)) < 0.05).astype(np.float32),
    )
    pre_model = EcgModel(ModelConfig())
    pre_opt = make_optimizer(pre_model)
    pre_s = _median_seconds(lambda: pretrain_step(pre_model, pre_opt, train_batch, seed=0), repeats)
    print(f"pretraining: {TRAIN_BATCH / pre_s:.1f} samples/s at batch {TRAIN_BATCH}")
    ft_model = EcgModel(cfg)
    ft_opt = make_optimizer(ft_model)
    ft_s = _median_seconds(lambda: finetune_step(ft_model, ft_opt, train_batch, seed=0), repeats)
    print(f"fine-tuning (ASL + auxiliary terms): {TRAIN_BATCH / ft_s:.1f} samples/s at batch {TRAIN_BATCH}")

    emit(
        {
            "gmac_per_ecg": round(gmac, 4),
            "params": params,
            "torch_ecg_per_s": round(FORWARD_BATCH / torch_s, 1),
            "ort_ecg_per_s": round(FORWARD_BATCH / ort_s, 1),
            "onnx_max_abs_diff": diff,
            "train_samples_per_s": round(TRAIN_BATCH / pre_s, 1),
            "finetune_samples_per_s": round(TRAIN_BATCH / ft_s, 1),
            "threads": threads,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
