"""The ingest job: a validated config in, an IngestSummary (as a dict) out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rare_ecg.archive import example_archive_path
from rare_ecg.config import IngestConfig, Settings
from rare_ecg.ingest.pipeline import IngestOptions, new_run_id, run_ingest


def run_ingest_job(
    cfg: IngestConfig,
    settings: Settings,
    *,
    progress: Callable[[int, int, float], None] | None = None,
    before_commit: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    archive = cfg.archive if cfg.archive is not None else example_archive_path()
    if cfg.archive is None and cfg.layout != "ptbxl":
        raise ValueError(f"the built-in example archive has the ptbxl layout, not {cfg.layout!r}")
    if not Path(archive).is_dir():
        raise NotADirectoryError(f"archive {archive} is not a directory")
    opts = IngestOptions(
        archive=Path(archive),
        layout=cfg.layout,
        lake=cfg.lake or settings.lake,
        run_id=cfg.run_id or new_run_id(),
        fs_hz=cfg.fs_hz,
        source=cfg.source,
        model_fs_hz=cfg.model_fs_hz,
        notch_hz=cfg.notch_hz,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        cpus_per_worker=cfg.cpus_per_worker,
    )
    return run_ingest(opts, before_commit=before_commit, progress=progress).to_dict()
