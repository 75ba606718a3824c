"""Shared helpers for benchmarks: the machine description, memory sampling, the last-line JSON."""

from __future__ import annotations

import json
import os
import platform
import threading
from pathlib import Path
from typing import Any

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
WORK = REPO_ROOT / "benchmarks" / ".work"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


class PeakMemory:
    """Samples the resident memory of this process and all its descendants (Ray workers included)."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s = every_s
        self.peak_driver_mb = 0.0
        self.peak_tree_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            try:
                driver = me.memory_info().rss
                tree = driver
                for child in me.children(recursive=True):
                    try:
                        tree += child.memory_info().rss
                    except psutil.Error:
                        continue
            except psutil.Error:
                continue
            self.peak_driver_mb = max(self.peak_driver_mb, driver / 2**20)
            self.peak_tree_mb = max(self.peak_tree_mb, tree / 2**20)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def emit(result: dict[str, Any]) -> None:
    """Print the headline JSON object as the last line of output."""
    print(json.dumps(result, default=str), flush=True)
