"""Stage 1's inpainting ratio (hidden-point MSE of the network / that of the R-aligned neighbouring-beat
copy; below 1.0 means the network fills in better than copying) over training, for every data size
measured: the per-fold curves of `benchmarks.anomaly_real` (real PTB-XL, about 150 training records
per fold, and its synthetic pretraining) and the Ray Train pretraining job's per-epoch
`val_inpainting_skill` from an MLflow tracking database (e.g. the 10,000-patient synthetic encoder of
`benchmarks.method_comparison`). The x axis is training samples seen, so data sizes and budgets share
one axis.

    python -m benchmarks.skill_curves --anomaly-real OUT.json [--mlflow sqlite:///...] --plot FILE.png

Prints one table row per curve (start, best, end) and writes the plot.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def anomaly_real_curves(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Curves of one anomaly_real report (its last stdout line): x = steps * batch."""
    batch = int(report["batch"])
    out = []
    synth = report.get("synthetic_pretraining", {}).get("curve")
    if synth:
        out.append(
            {
                "name": f"synthetic, {report.get('synthetic_records', '?')} records (held-out synthetic)",
                "x": [int(c[0] * batch) for c in synth],
                "y": [c[1] for c in synth],
                "records": report.get("synthetic_records"),
            }
        )
    for variant, v in report["variants"].items():
        for fold, curve in v.get("skill_curve_per_fold", {}).items():
            out.append(
                {
                    "name": f"real PTB-XL, {variant}, fold {fold} (validation pair)",
                    "x": [int(c[0] * batch) for c in curve],
                    "y": [c[1] for c in curve],
                    "records": None,
                }
            )
    return out


def mlflow_curves(tracking_uri: str) -> list[dict[str, Any]]:
    """Every pretraining run's per-epoch val_inpainting_skill; x = epoch * training windows."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient()
    exp = client.get_experiment_by_name("rare-ecg-pretrain")
    if exp is None:
        return []
    out = []
    for run in client.search_runs([exp.experiment_id]):
        history = client.get_metric_history(run.info.run_id, "val_inpainting_skill")
        windows = int(run.data.params.get("windows_train", 0))  # training windows per epoch
        if not history or windows == 0:
            continue
        history = sorted(history, key=lambda m: m.step)
        out.append(
            {
                "name": f"synthetic, {windows:,} records (pretraining job, d_model "
                f"{run.data.params.get('d_model', '?')}, validation split)",
                "x": [m.step * windows for m in history],
                "y": [m.value for m in history],
                "records": windows,
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.skill_curves", description=__doc__)
    parser.add_argument("--anomaly-real", type=Path, help="a file holding anomaly_real's last stdout line")
    parser.add_argument("--mlflow", action="append", default=[], help="tracking URI of pretraining runs")
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args(argv)
    curves: list[dict[str, Any]] = []
    if args.anomaly_real:
        line = [ln for ln in args.anomaly_real.read_text().splitlines() if ln.startswith("{")][-1]
        curves += anomaly_real_curves(json.loads(line))
    for uri in args.mlflow:
        curves += mlflow_curves(uri)
    print("| curve | samples seen | ratio at start | best | at end |")
    print("|---|---|---|---|---|")
    for c in curves:
        print(f"| {c['name']} | {c['x'][-1]:,} | {c['y'][0]:.3f} | {min(c['y']):.3f} | {c['y'][-1]:.3f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    # x = 0 (before training) has no place on a log axis: its value is the table's "ratio at start"
    groups: dict[str, list[dict[str, Any]]] = {}
    for c in curves:
        groups.setdefault(c["name"].split(", fold")[0], []).append(c)
    for name, members in groups.items():
        keep = [i for i, x in enumerate(members[0]["x"]) if x > 0]
        xs = [members[0]["x"][i] for i in keep]
        ys = [[m["y"][i] for i in keep] for m in members if len(m["y"]) == len(members[0]["y"])]
        mean = [sum(col) / len(col) for col in zip(*ys, strict=True)]
        label = name if len(ys) == 1 else f"{name} (mean of {len(ys)} folds, band = min-max)"
        (line,) = ax.plot(xs, mean, marker="o", ms=3, label=label)
        if len(ys) > 1:
            lo = [min(col) for col in zip(*ys, strict=True)]
            hi = [max(col) for col in zip(*ys, strict=True)]
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("training samples seen (log)")
    ax.set_ylabel("hidden MSE / aligned beat copy")
    ax.set_title("Stage 1 inpainting ratio (below 1: better than copying the neighbouring beat)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=90)
    print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
