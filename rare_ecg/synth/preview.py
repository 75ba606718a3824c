"""PNG previews of a few records per label: all 12 leads at 500 Hz (or the record's rate), the
label's ground-truth mask shaded, so a person can check that the anomaly is where the mask says."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
import numpy as np

from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.synth.ecg import FS_HZ, RecordSpec, SynthEcg, synthesize


def plot_record(ecg: SynthEcg, label: str, title: str, path: Path, fs_hz: int = FS_HZ) -> None:
    x = ecg.signal_at(fs_hz)
    masks = ecg.masks_at(fs_hz)
    t = np.arange(x.shape[1]) / fs_hz
    fig, axes = plt.subplots(12, 1, figsize=(14, 16), sharex=True)
    for i, ax in enumerate(axes):
        ax.plot(t, x[i], lw=0.7, color="black")
        mine = (masks.label == label) & (masks.lead == i)
        for start, end in zip(masks.start[mine], masks.end[mine], strict=True):
            ax.axvspan(start / fs_hz, end / fs_hz, color="tab:red", alpha=0.25, lw=0)
        ax.set_ylabel(CANONICAL_LEADS[i], rotation=0, ha="right", va="center")
        ax.grid(True, lw=0.3, alpha=0.5)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("s")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def write_previews(folder: Path, examples: dict[str, list[tuple[str, RecordSpec]]], layout: str) -> list[str]:
    """One PNG per (label, example record): ``{label}_{n}.png``; returns the file names written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for label in sorted(examples):
        for n, (source_path, spec) in enumerate(examples[label]):
            ecg = synthesize(spec)
            name = f"{label.replace('/', '-').replace('(', '').replace(')', '')}_{n + 1}.png"
            title = (
                f"{label} in {source_path} ({layout}); labels {', '.join(sorted(spec.labels))}; mask in red"
            )
            plot_record(ecg, label, title, folder / name)
            written.append(name)
    return written
