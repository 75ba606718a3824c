"""Batch scoring throughput: read Delta -> ONNX Runtime on Ray Data actors -> write Delta, against the same
graph in PyTorch eager, at 100 and 500 Hz, fp32 and int8.

Data: a PTB-XL-layout archive of N renamed copies of the 250 real sample records (benchmarks.ingest),
ingested once per model rate. Model: the default network over the 71 SCP labels, random weights (the
speed of a trained model is the same). In one run:
- end to end (`run_score`: cohort read at pinned versions, waveform Parquet files read by Ray Data,
  ORT on 2 actors of 1 thread, ecg_scores part files, one commit, patient_findings): ECG/s over the whole
  job, Ray actor start-up included, subgroup metrics off (a labelled cohort's bootstrap is not scoring);
- the model alone on the same windows, batch 64, all cores: ORT fp32 / int8 and torch eager;
- multiply-accumulates per ECG with attention counted (FlopCounterMode counts 0 for the CPU attention
  kernel: each attention call adds 2 x T x S x D MACs here), and the machine's fp32 matmul peak.

Last line: one JSON object with ecg_per_s (100 Hz fp32 end to end), ratio_vs_torch (ORT fp32 / torch
eager, model alone), gmac_per_ecg, mac_utilisation (useful MACs / s over the matmul peak, end to end)
and peak_rss_mb (every process of the 100 Hz fp32 run).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks._common import WORK, PeakMemory, emit, machine
from benchmarks.ingest import SAMPLE, build_archive
from rare_ecg.archive.labels import canonical_vocabulary
from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake.schema import ECG_WAVEFORMS
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import InferenceGraph, example_inputs
from rare_ecg.model.network import Attention, EcgModel
from rare_ecg.scoring.cohort import parse_cohort
from rare_ecg.scoring.export import WAVE_COLUMNS
from rare_ecg.scoring.onnx import PRECISION_FP32, PRECISION_INT8, export_fp32, open_session, quantize_int8
from rare_ecg.scoring.pipeline import ScoreOptions, ScoringModel, run_score
from rare_ecg.scoring.runner import onnx_runner, run_windows, torch_runner
from rare_ecg.scoring.windows import split_windows

BATCH = 64


def gmac_per_ecg(model: EcgModel) -> tuple[float, float]:
    """(GMAC per ECG with attention, of which attention) for the full served graph."""
    graph = InferenceGraph(model).eval()
    attention_macs = [0]

    def hook(module: Attention, args: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        x, ctx = args[0], args[1]
        b, t, d = x.shape
        attention_macs[0] += 2 * b * t * ctx.shape[1] * d  # Q K^T and A V over all heads

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, Attention)]
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        graph(*example_inputs(model, batch=1))
    for h in handles:
        h.remove()
    # does the counter see scaled_dot_product_attention at all? (0 on this CPU build)
    q = torch.randn(1, 2, 16, 8)
    probe = FlopCounterMode(display=False)
    with torch.no_grad(), probe:
        torch.nn.functional.scaled_dot_product_attention(q, q, q)
    counted = counter.get_total_flops() / 2
    attention = 0 if probe.get_total_flops() > 0 else attention_macs[0]
    return (counted + attention) / 1e9, attention / 1e9


def matmul_peak_gmac_s(threads: int) -> float:
    """fp32 GEMM peak of this machine (torch, ``threads``), GMAC/s: the best of a few 1024^3 products."""
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    best = 0.0
    for _ in range(8):
        t0 = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 1024**3 / (time.perf_counter() - t0) / 1e9)
    return best


def model_only(model: EcgModel, fp32: Path, int8: Path, lake: Path, n: int, threads: int) -> dict[str, float]:
    """ECG/s of the graph alone on the same windows: torch eager, ORT fp32, ORT int8 (interleaved, best of 3)."""
    rows = pl.read_delta(str(lake / ECG_WAVEFORMS)).select(WAVE_COLUMNS).head(n).to_arrow()
    windows = split_windows(rows, model.cfg.n_samples)
    torch.set_num_threads(threads)
    runners = {
        "torch": torch_runner(model),
        "ort_fp32": onnx_runner(open_session(fp32, threads)),
        "ort_int8": onnx_runner(open_session(int8, threads)),
    }
    best = dict.fromkeys(runners, 0.0)
    for _ in range(3):
        for name, run in runners.items():
            t0 = time.perf_counter()
            run_windows(windows, model.cfg, run, BATCH)
            best[name] = max(best[name], len(windows.record) / (time.perf_counter() - t0))
    return best


def end_to_end(served: ScoringModel, lake: Path, actors: int, cohort: str = "all") -> dict[str, Any]:
    """One scoring run under a fresh model version (so nothing is already scored)."""
    version = dataclasses.replace(served, version=f"bench-{uuid.uuid4().hex[:8]}")
    opts = ScoreOptions(
        lake=str(lake),
        run_id=f"bench-{uuid.uuid4().hex[:8]}",
        cohort=parse_cohort(cohort),
        batch_size=BATCH,
        actors=actors,
        subgroup_metrics=False,
    )
    with PeakMemory() as mem:
        s = run_score(opts, version)
    return {
        "scored": s.scored,
        "seconds": round(s.seconds, 2),
        "ecg_per_s": round(s.ecg_per_s, 1),
        "peak_rss_mb": round(mem.peak_tree_mb),
        "peak_driver_rss_mb": round(mem.peak_driver_mb),
    }


def lake_for(archive: Path, n: int, fs_hz: int) -> Path:
    lake = WORK / f"score-lake-{n}-{fs_hz}"
    if not (lake / "ecg_records").exists():
        run_ingest(
            IngestOptions(
                archive=archive,
                layout="ptbxl",
                lake=str(lake),
                run_id=f"bench-{fs_hz}",
                fs_hz=500,
                model_fs_hz=fs_hz,
            )
        )
    return lake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small archive (a few minutes in all)")
    parser.add_argument("--n", type=int, help="records in the archive (default 2000; quick 400)")
    args = parser.parse_args()
    n = args.n or (400 if args.quick else 2000)
    if not SAMPLE.exists():
        raise SystemExit(f"benchmark needs the real sample at {SAMPLE}")
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    import ray

    cpus = os.cpu_count() or 2
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    WORK.mkdir(parents=True, exist_ok=True)
    archive = build_archive(WORK / f"ptbxl-{n}", n)
    peak = matmul_peak_gmac_s(cpus)
    labels = tuple(canonical_vocabulary())
    runs: list[dict[str, Any]] = []
    for fs_hz in (100, 500):
        lake = lake_for(archive, n, fs_hz)
        torch.manual_seed(0)
        model = EcgModel(ModelConfig(labels=labels, fs_hz=fs_hz)).eval()
        gmac, attention = gmac_per_ecg(model)
        with tempfile.TemporaryDirectory(dir=WORK) as tmp:
            fp32 = export_fp32(model, Path(tmp) / "fp32.onnx")
            int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx")
            alone = model_only(model, fp32, int8, lake, min(n, 256), cpus)
            for precision, path in ((PRECISION_FP32, fp32), (PRECISION_INT8, int8)):
                served = ScoringModel(
                    name="bench",
                    version="0",
                    cfg=model.cfg,
                    thresholds=np.full(len(labels), 0.5, np.float32),
                    precision=precision,
                    onnx=path.read_bytes(),
                )
                actor_counts = (1, 2) if (fs_hz, precision) == (100, PRECISION_FP32) else (2,)
                for actors in actor_counts:
                    e2e = end_to_end(served, lake, actors)
                    row = {
                        "fs_hz": fs_hz,
                        "precision": precision,
                        "actors": actors,
                        **e2e,
                        "model_only_ecg_per_s": round(alone[f"ort_{precision}"], 1),
                        "torch_eager_ecg_per_s": round(alone["torch"], 1),
                        "gmac_per_ecg": round(gmac, 3),
                        "attention_gmac_per_ecg": round(attention, 3),
                        "mac_utilisation": round(e2e["ecg_per_s"] * gmac / peak, 3),
                    }
                    runs.append(row)
                    print(row, flush=True)
            if fs_hz == 100:
                # memory flat in cohort size: the same job over a tenth of the cohort
                small = end_to_end(served, lake, 2, cohort="split=test")
                runs.append({"fs_hz": 100, "precision": PRECISION_INT8, "cohort": "split=test", **small})
                print(runs[-1], flush=True)
    ray.shutdown()
    head = next(r for r in runs if (r["fs_hz"], r["precision"], r.get("actors")) == (100, PRECISION_FP32, 2))
    one = next(r for r in runs if (r["fs_hz"], r["precision"], r.get("actors")) == (100, PRECISION_FP32, 1))
    emit(
        {
            "ecg_per_s": head["ecg_per_s"],
            "ratio_vs_torch": round(head["model_only_ecg_per_s"] / head["torch_eager_ecg_per_s"], 2),
            "e2e_ratio_vs_torch": round(head["ecg_per_s"] / head["torch_eager_ecg_per_s"], 2),
            "gmac_per_ecg": head["gmac_per_ecg"],
            "mac_utilisation": head["mac_utilisation"],
            "peak_rss_mb": head["peak_rss_mb"],
            "matmul_peak_gmac_s": round(peak, 1),
            "actors_2_vs_1": round(head["ecg_per_s"] / one["ecg_per_s"], 2),
            "n": n,
            "runs": runs,
            "machine": machine(),
        }
    )


if __name__ == "__main__":
    main()
