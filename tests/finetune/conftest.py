"""A small real lake (a synthetic cohort at 100 Hz, patients with several ECGs), a registered encoder and one
tiny classifier fine-tuned from it, shared by the fine-tuning and evaluation tests (a Ray Train worker group
takes ~10 s to start here, so it runs once)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from rare_ecg.config import FinetuneConfig, IngestConfig, Settings
from rare_ecg.ingest.job import run_ingest_job
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig

EXAMPLE = Path(__file__).resolve().parents[2] / "rare_ecg" / "resources" / "example_ptbxl"
SIZES: dict[str, Any] = {"d_model": 16, "n_layers": 1, "n_heads": 2}


def shared(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A folder of this session that both test folders find: tests/evaluate imports these fixtures into
    its own conftest (a second definition, often a second module object), so what they build is found
    on disk, not in memory, and a run of both folders builds each thing once."""
    return tmp_path_factory.getbasetemp() / "stage2" / name


def settings_for(root: Path) -> Settings:
    return Settings.model_validate({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"})


def finetune_config(lake: Path, storage: Path, **overrides: Any) -> FinetuneConfig:
    base: dict[str, Any] = {
        "lake": str(lake),
        "storage_path": str(storage),
        "epochs": 2,
        "batch_size": 8,
        "lr": 3e-3,
        "cpus_per_worker": 0.5,
        "rare_threshold": 0.1,  # a cohort of a few dozen ECGs has no label under 1%
        "min_common_positives": 3,
    }
    return FinetuneConfig(**{**base, **overrides})


def register(settings: Settings, name: str, fs_hz: int = 100, labels: tuple[str, ...] = ()) -> str:
    """A real registered model (random weights) through the project's registry; returns its URI."""
    import mlflow

    from rare_ecg.model.config import ModelConfig
    from rare_ecg.model.network import EcgModel
    from rare_ecg.registry import register_model
    from rare_ecg.registry.models import log_model
    from rare_ecg.registry.tracking import use_experiment

    use_experiment(settings.mlflow_tracking_uri, "tests")
    model = EcgModel(ModelConfig(fs_hz=fs_hz, labels=labels, **SIZES))
    with mlflow.start_run():
        uri = log_model(model, {"kind": "classifier" if labels else "encoder", "model_fs_hz": fs_hz})
    version = register_model(uri, name, {"model_fs_hz": fs_hz})
    return f"models:/{name}/{version}"


def ingest(archive: Path, lake: Path, source: str) -> Path:
    run_ingest_job(
        IngestConfig(archive=archive, layout="ptbxl", fs_hz=100, lake=str(lake), source=source),
        Settings.model_validate({"RARE_ECG_LAKE": str(lake)}),
    )
    return lake


@pytest.fixture(scope="session")
def ft_lake(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    root = shared(tmp_path_factory, "finetune-lake")
    if not (root / "lake" / "ecg_labels").exists():
        archive = root / "archive"
        generate_archive(
            SynthConfig(out=archive, patients=40, seed=11, fs_hz=100, layout="ptbxl", workers=1),
            overwrite=True,
        )
        ingest(archive, root / "lake", "synthetic")
    return root / "lake"


@pytest.fixture(scope="session")
def folds_9_10_lake(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    """The built-in PTB-XL example cut to its folds 9 and 10: no training split at all."""
    root = shared(tmp_path_factory, "folds-9-10")
    if (root / "lake" / "ecg_labels").exists():
        return root / "lake"
    archive = root / "archive"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(EXAMPLE, archive)
    table = archive / "ptbxl_database.csv"
    with table.open(newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, [r for r in reader if r["strat_fold"] in ("9", "10")]
    assert fields is not None and rows
    with table.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return ingest(archive, root / "lake", "ptbxl")


@pytest.fixture(scope="session")
def trained(ft_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A classifier fine-tuned (Ray Train, 2 epochs) from a registered encoder, registered @challenger."""
    from rare_ecg.registry import ENCODER_NAME
    from rare_ecg.train.finetune import run_finetune_job

    root = shared(tmp_path_factory, "trained")
    settings = settings_for(root)
    done = root / "trained.json"
    if not done.exists():
        root.mkdir(parents=True, exist_ok=True)
        encoder = register(settings, ENCODER_NAME)
        epochs: list[dict[str, Any]] = []
        cfg = finetune_config(ft_lake, root / "runs", encoder=encoder)
        summary = run_finetune_job(cfg, settings, on_epoch=epochs.append)
        saved = {"encoder": encoder, "summary": summary, "epochs": epochs, "cfg": cfg.model_dump(mode="json")}
        done.write_text(json.dumps(saved, default=str))
    saved = json.loads(done.read_text())
    return {"root": root, "settings": settings, **saved, "cfg": FinetuneConfig(**saved["cfg"])}
