"""The registry on a real sqlite MLflow: log, register with tags, alias, resolve and load back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import INPUT_NAMES, example_inputs
from rare_ecg.model.network import EcgModel
from rare_ecg.registry import (
    CLASSIFIER_NAME,
    ENCODER_NAME,
    ModelNotFound,
    load_model,
    log_model,
    register_model,
    resolve,
    set_alias,
)

TINY = ModelConfig(d_model=16, n_layers=1, n_heads=2)


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[Path]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment(
        experiment_id=mlflow.create_experiment("t", artifact_location=str(tmp_path / "art"))
    )
    try:
        yield tmp_path
    finally:
        mlflow.set_tracking_uri(previous)


def test_logged_model_registers_with_tags_resolves_aliases_and_loads_back_identical(tracking: Path) -> None:
    torch.manual_seed(0)
    encoder = EcgModel(TINY)
    with mlflow.start_run() as run:
        uri = log_model(encoder, {"kind": "encoder", "table_versions": {"ecg_waveforms": 3}})
        v1 = register_model(uri, ENCODER_NAME, {"model_fs_hz": 100, "preprocessing_version": "pp-1"})
        v2 = register_model(log_model(EcgModel(TINY), {"kind": "encoder"}), ENCODER_NAME, {})
    assert (v1, v2) == ("1", "2")
    set_alias(ENCODER_NAME, "champion", v1)

    assert resolve(f"models:/{ENCODER_NAME}@champion") == (ENCODER_NAME, "1")
    assert resolve(f"models:/{ENCODER_NAME}/2") == (ENCODER_NAME, "2")
    tags = mlflow.MlflowClient().get_model_version(ENCODER_NAME, "1").tags
    assert tags == {"model_fs_hz": "100", "preprocessing_version": "pp-1"}

    loaded, meta = load_model(f"models:/{ENCODER_NAME}@champion")
    assert meta["registered_version"] == "1" and meta["run_id"] == run.info.run_id
    assert meta["table_versions"] == {"ecg_waveforms": 3} and meta["kind"] == "encoder"
    assert loaded.cfg == encoder.cfg and not loaded.training
    for key, value in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    # the pyfunc face serves the inference graph under the explicit signature
    pyfunc = mlflow.pyfunc.load_model(f"models:/{ENCODER_NAME}/1")
    names = [spec.name for spec in pyfunc.metadata.get_input_schema().inputs]
    assert names == list(INPUT_NAMES)
    inputs = {n: t.numpy() for n, t in zip(INPUT_NAMES, example_inputs(encoder, batch=3), strict=True)}
    out = pyfunc.predict(inputs)
    assert out["age"].shape == (3,) and np.isfinite(out["anomaly_score"]).all()


def test_classifier_keeps_its_vocabulary_and_unknown_references_are_clear_errors(tracking: Path) -> None:
    classifier = EcgModel(ModelConfig(labels=("NORM", "AFIB"), d_model=16, n_layers=1, n_heads=2))
    with mlflow.start_run():
        register_model(log_model(classifier, {"kind": "classifier"}), CLASSIFIER_NAME, {})
    loaded, _ = load_model(f"models:/{CLASSIFIER_NAME}/1")
    assert loaded.cfg.labels == ("NORM", "AFIB")
    for bad in (f"models:/{CLASSIFIER_NAME}/7", f"models:/{CLASSIFIER_NAME}@nope", "models:/missing/1"):
        with pytest.raises(ModelNotFound, match="no registered model version"):
            load_model(bad)
    with pytest.raises(ModelNotFound, match="not of the form"):
        resolve("runs:/abc/model")
