"""`rare-ecg demo`: the whole pipeline on embedded defaults, everything kept under one folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rare_ecg.config import IngestConfig, Settings
from rare_ecg.ingest.job import run_ingest_job

log = logging.getLogger(__name__)


def run_demo(workdir: Path) -> dict[str, Any]:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    lake = workdir / "lake"
    settings = Settings.model_validate(
        {"RARE_ECG_LAKE": str(lake), "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    )
    log.info("demo: ingesting the built-in example archive (20 real PTB-XL records) into %s", lake)
    example = run_ingest_job(IngestConfig(layout="ptbxl", fs_hz=500, lake=str(lake)), settings)
    return {"workdir": str(workdir), "lake": str(lake), "ingest_example": example}
