"""What people read while a training job runs: one line per epoch on stderr, and the closing summary."""

from __future__ import annotations

import sys
from typing import Any, TextIO


def epoch_line(m: dict[str, Any]) -> str:
    left = int(m["epochs"]) - int(m["epoch"])
    terms = " ".join(f"{t} {m[f'train_{t}']:.4f}" for t in ("global", "local", "trend", "attributes"))
    val = f"; val total {m['val_total']:.4f}" if "val_total" in m else ""
    if "val_inpainting_skill" in m:
        val += f", inpainting skill {m['val_inpainting_skill']:.3f} (vs beat copy; <1 beats it)"
    return (
        f"pretrain: epoch {m['epoch']}/{m['epochs']} train total {m['train_total']:.4f} ({terms}){val}; "
        f"{m['samples_per_s']:.1f} samples/s; epoch {m['epoch_seconds']:.0f} s, eta {left * m['epoch_seconds']:.0f} s"
    )


def print_epoch(metrics: dict[str, Any], stream: TextIO | None = None) -> None:
    print(epoch_line(metrics), file=stream or sys.stderr, flush=True)


def summary_line(s: dict[str, Any]) -> str:
    final = s["final"]
    val = f", val {final['val_total']:.4f}" if "val_total" in final else ""
    model = (
        f"registered {s['model_name']} version {s['model_version']}"
        if s["model_version"]
        else "not registered"
    )
    resumed = f" (resumed after epoch {s['resumed_from_epoch']})" if s["resumed_from_epoch"] else ""
    return (
        f"pretrain {s['run_name']}: {s['epochs']} epochs{resumed} on {s['workers']} workers, "
        f"{s['windows'].get('train', 0)} training windows; final loss train {final['train_total']:.4f}{val}; "
        f"tables {s['table_versions']}; {model}; MLflow run {s['run_id']}; {s['seconds']:.0f} s"
    )
