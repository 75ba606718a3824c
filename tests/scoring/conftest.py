"""Scoring fixtures: a real lake of the built-in example archive (20 real PTB-XL records at 100 Hz), a
small randomly initialised classifier over labels that archive has, and its fp32 ONNX export (made once:
the dynamo exporter takes ~20 s even for a tiny network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import torch

from rare_ecg.archive import example_archive_path
from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake.schema import ECG_WAVEFORMS
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel
from rare_ecg.scoring.export import WAVE_COLUMNS
from rare_ecg.scoring.onnx import PRECISION_FP32, export_fp32
from rare_ecg.scoring.pipeline import ScoringModel

LABELS = ("NORM", "IMI", "AFLT", "SR")


def tiny_classifier(seed: int = 0) -> EcgModel:
    torch.manual_seed(seed)
    return EcgModel(ModelConfig(labels=LABELS, d_model=32, n_layers=1, n_heads=2)).eval()


@pytest.fixture(scope="session")
def example_lake(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    """The example archive ingested at 100 Hz. Tests copy it before writing (scores, findings)."""
    lake = tmp_path_factory.mktemp("score-lake")
    opts = IngestOptions(
        archive=example_archive_path(), layout="ptbxl", lake=str(lake), run_id="ingest-example", fs_hz=100
    )
    summary = run_ingest(opts)
    assert summary.ingested == 20
    return lake


@pytest.fixture(scope="session")
def classifier() -> EcgModel:
    return tiny_classifier()


@pytest.fixture(scope="session")
def fp32_onnx(classifier: EcgModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_fp32(classifier, tmp_path_factory.mktemp("onnx") / "model.onnx")


@pytest.fixture(scope="session")
def scoring_model(classifier: EcgModel, fp32_onnx: Path) -> ScoringModel:
    return ScoringModel(
        name="rare-ecg-classifier",
        version="1",
        cfg=classifier.cfg,
        thresholds=np.full(len(LABELS), 0.5, dtype=np.float32),
        precision=PRECISION_FP32,
        onnx=fp32_onnx.read_bytes(),
    )


def waveform_rows(lake: Path) -> pa.Table:
    return pl.read_delta(str(lake / ECG_WAVEFORMS)).select(WAVE_COLUMNS).sort("record_id").to_arrow()
