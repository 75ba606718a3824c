"""Does the network inpaint better than the R-aligned neighbouring-beat copy? One change at a time.

Trains the stage-1 network on the real PTB-XL records of strat_fold 1-8 for the same number of
optimiser steps per variant (on a shared machine wall-clock budgets measure the neighbours' load; each
variant's seconds per step are reported beside it) and measures the inpainting skill (hidden-point MSE /
that of the aligned beat copy, and / that of zero) on strat_fold 9-10 (other patients) along the way.
Variants run two at a time, one thread each.

    python -m benchmarks.inpainting [--steps 120] [--batch 16] [--only name,name]

The last line is one JSON object: per variant, the skill curve (step, seconds, skill_vs_copy,
skill_vs_zero) and the final values.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from typing import Any

import numpy as np
import torch

from benchmarks._common import emit, machine
from benchmarks.ecg_sets import ptbxl_records, synthetic_records
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.loop import LoopSettings, pretrain_loop
from rare_ecg.model.network import EcgModel

BASE = {"warmup_steps": 0, "min_lr_fraction": 1.0}  # constant learning rate, like the run
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (ModelConfig changes, LoopSettings changes)
    # the network before the beat-copy prior became ModelConfig's default
    "default": ({"beat_copy": False}, BASE),
    "phase": ({"beat_phase": True, "beat_copy": False}, BASE),
    "copy": ({"beat_copy": True}, BASE),
    "phase+copy": ({"beat_phase": True, "beat_copy": True}, BASE),
    "phase+copy+patch40": ({"beat_phase": True, "beat_copy": True, "patch_s": 0.04}, BASE),
    "phase+copy+warmup": ({"beat_phase": True, "beat_copy": True}, {"warmup_steps": 30}),
    "phase+copy+synth": ({"beat_phase": True, "beat_copy": True}, {**BASE, "synthetic": 400}),
    # one change at a time against today's ModelConfig() (beat-copy prior, no phase) at constant lr
    "now": ({}, BASE),
    "now+phase": ({"beat_phase": True}, BASE),
    "now+patch40": ({"patch_s": 0.04}, BASE),
    "now+warmup_decay": ({}, {"warmup_steps": 30, "min_lr_fraction": 0.1}),
    "now+mask15": ({"mask_ratio": 0.15, "beat_mask_ratio": 0.15}, BASE),
    "now+mask50": ({"mask_ratio": 0.5, "beat_mask_ratio": 0.5}, BASE),
}


def run(name: str, steps: int, batch: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model_changes, loop_changes = VARIANTS[name]
    loop_changes = dict(loop_changes)
    n_synth = int(loop_changes.pop("synthetic", 0))
    data, meta = ptbxl_records()
    train = data.subset(np.flatnonzero(meta["strat_fold"] <= 8))
    held_out = data.subset(np.flatnonzero(meta["strat_fold"] >= 9))
    model = EcgModel(ModelConfig(**model_changes))
    start = time.perf_counter()
    curve: list[dict[str, float]] = []
    every = max(1, steps // 4)
    if n_synth:
        # Half the steps on synthetic records first, then half on the real ones.
        synth = synthetic_records(n_synth, seed=3)
        settings = LoopSettings(max_steps=steps // 2, batch_size=batch, eval_every=every, **loop_changes)
        pre = pretrain_loop(model, synth, held_out, settings)
        curve += pre.history
        model = pre.model
        steps -= steps // 2
    settings = LoopSettings(max_steps=steps, batch_size=batch, eval_every=every, **loop_changes)
    result = pretrain_loop(model, train, held_out, settings)
    curve += result.history
    seconds = time.perf_counter() - start
    keys = ("step", "seconds", "skill_vs_copy", "skill_vs_zero", "hidden_mse", "copy_mse")
    rows = [{k: round(r[k], 3) for k in keys} for r in curve]
    best = min(r["skill_vs_copy"] for r in rows)
    last = rows[-1]
    print(
        f"{name:>22}: last skill vs copy {last['skill_vs_copy']:.3f} vs zero {last['skill_vs_zero']:.3f}"
        f"  best vs copy {best:.3f}  ({seconds:.0f} s)",
        flush=True,
    )
    return {"name": name, "seconds": round(seconds, 1), "curve": rows, "last": last, "best_vs_copy": best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120, help="optimiser steps per variant")
    parser.add_argument("--batch", type=int, default=16, help="records per step")
    parser.add_argument("--only", default="", help="comma-separated variant names")
    args = parser.parse_args()
    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(run, [(n, args.steps, args.batch) for n in names])
    emit({"steps": args.steps, "batch": args.batch, "variants": results, "machine": machine()})


if __name__ == "__main__":
    main()
