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
    """Samples the resident memory of this process (the driver), of it and all its descendants (the
    tree, Ray workers included), and of the largest single Ray worker process (raylet and GCS are
    not workers): a worker's memory is its own, not the tree's sum."""

    def __init__(self, every_s: float = 0.25) -> None:
        self.every_s = every_s
        self.peak_driver_mb = 0.0
        self.peak_tree_mb = 0.0
        self.peak_worker_mb = 0.0
        self.workers_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        seen: set[int] = set()
        while not self._stop.is_set():
            try:
                driver = me.memory_info().rss
                tree = driver
                for child in me.children(recursive=True):
                    try:
                        rss = child.memory_info().rss
                        tree += rss
                        if child.name().startswith("ray::") or "default_worker.py" in " ".join(
                            child.cmdline()
                        ):
                            self.peak_worker_mb = max(self.peak_worker_mb, rss / 2**20)
                            seen.add(child.pid)
                    except psutil.Error:
                        continue
            except psutil.Error:
                continue
            self.peak_driver_mb = max(self.peak_driver_mb, driver / 2**20)
            self.peak_tree_mb = max(self.peak_tree_mb, tree / 2**20)
            self.workers_seen = len(seen)
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
