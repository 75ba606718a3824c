"""A small real lake (a synthetic cohort ingested at 100 Hz) shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from rare_ecg.config import IngestConfig, PretrainConfig, Settings
from rare_ecg.ingest.job import run_ingest_job
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig


@pytest.fixture(scope="session")
def train_lake(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    root = tmp_path_factory.mktemp("train-lake")
    archive = root / "archive"
    generate_archive(SynthConfig(out=archive, patients=24, seed=7, fs_hz=100, layout="ptbxl", workers=1))
    lake = root / "lake"
    run_ingest_job(
        IngestConfig(archive=archive, layout="ptbxl", fs_hz=100, lake=str(lake), source="synthetic"),
        Settings.model_validate({"RARE_ECG_LAKE": str(lake)}),
    )
    return lake


def tiny_config(lake: Path, storage: Path, **overrides: object) -> PretrainConfig:
    """A network small enough that a Ray Train epoch takes seconds on 2 shared cores."""
    base: dict[str, object] = {
        "lake": str(lake),
        "storage_path": str(storage),
        "d_model": 16,
        "n_layers": 1,
        "n_heads": 2,
        "batch_size": 8,
        "lr": 3e-3,
        "cpus_per_worker": 0.5,
        "epochs": 3,
    }
    return PretrainConfig(**{**base, **overrides})


def settings_for(root: Path) -> Settings:
    return Settings.model_validate({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})
