"""`rare-ecg export` and `rare-ecg score` in subprocesses against a real sqlite MLflow registry: each bad
input is a one-line error with exit code 2 before any work; the good path exports, scores, and its
re-run adds nothing; job configs validate."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import polars as pl
import pytest
import torch
from pydantic import ValidationError

from rare_ecg.config import ExportConfig, ScoreConfig, Settings, load_yaml
from rare_ecg.lake.schema import ECG_SCORES, PATIENT_FINDINGS
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel
from rare_ecg.registry import CLASSIFIER_NAME, log_model, register_model, set_alias
from rare_ecg.scoring.job import run_score_job

from .conftest import tiny_classifier

pytestmark = pytest.mark.timeout(600)
REPO = Path(__file__).resolve().parents[2]


def register(model: EcgModel, alias: str | None) -> str:
    with mlflow.start_run():
        version = register_model(log_model(model, {"kind": "classifier"}), CLASSIFIER_NAME, {})
    if alias is not None:
        set_alias(CLASSIFIER_NAME, alias, version)
    return version


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Versions 1 (champion: the test classifier), 2 (trained at 500 Hz), 3 (labels the lake lacks)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id=mlflow.create_experiment("t", artifact_location=str(root / "art")))
    try:
        register(tiny_classifier(), "champion")
        torch.manual_seed(0)
        small = {"d_model": 16, "n_layers": 1, "n_heads": 2}
        register(EcgModel(ModelConfig(labels=("NORM",), fs_hz=500, **small)), "rate500")
        register(EcgModel(ModelConfig(labels=("NOT_A_CODE",), **small)), "badvocab")
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


def cli(args: list[str], tracking_uri: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "rare_ecg.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("rare-ecg: error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert proc.stdout == ""


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--model", "models:/rare-ecg-classifier@nosuchalias"], ("nosuchalias",)),
        (["--cohort", "age>60"], ("is not key=value",)),
        (["--model", "models:/rare-ecg-classifier@badvocab"], ("NOT_A_CODE",)),
        (["--batch-size", "0"], ("batch_size",)),
    ],
)
def test_bad_input_is_a_one_line_error_with_exit_code_2(
    registry: str, example_lake: Path, tmp_path: Path, args: list[str], needles: tuple[str, ...]
) -> None:
    proc = cli(["score", "--lake", str(example_lake), *args], registry, tmp_path)
    one_line_error(proc, *needles)
    assert not (example_lake / ECG_SCORES).exists()  # nothing written


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "models:/no-such-model/1"}, "no-such-model"),
        ({"model": "rare-ecg-classifier"}, "is not of the form"),
        (
            {"model": "models:/rare-ecg-classifier@rate500"},
            "runs at 500 Hz but the cohort's waveforms are stored at 100 Hz",
        ),
        ({"cohort": "source=nowhere"}, "matches no record"),
        ({"cohort": "from=2020-13-01"}, "not an ISO date"),
        ({"cohort": "from=2020-02-01;to=2020-01-01"}, "is after"),
        ({"cohort": "patients=@/no/such/file"}, "no such file"),
        ({"cohort": "split=holdout"}, "is not one of"),
    ],
)
def test_each_bad_input_fails_before_any_work(
    registry: str, example_lake: Path, overrides: dict[str, str], message: str
) -> None:
    """The same checks in process (the CLI turns each ValueError into the one-line error above)."""
    settings = Settings.model_validate({"RARE_ECG_LAKE": str(example_lake), "MLFLOW_TRACKING_URI": registry})
    started: list[bool] = []
    with pytest.raises(ValueError, match=re.escape(message)):
        run_score_job(ScoreConfig(**overrides), settings, start_ray=lambda: started.append(True))
    assert not started and not (example_lake / ECG_SCORES).exists()


def test_export_int8_gate_then_score_and_rerun(registry: str, example_lake: Path, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(example_lake, lake)
    exported = cli(
        ["export", "--model", "models:/rare-ecg-classifier@champion", "--int8", "--lake", str(lake)],
        registry,
        tmp_path,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    summary = json.loads(exported.stdout.splitlines()[-1])
    assert summary["model_version"] == "1" and summary["gate"] is not None
    assert summary["precision"] == ("int8" if summary["gate"]["accepted"] else "fp32")
    tags = mlflow.MlflowClient(registry).get_model_version(CLASSIFIER_NAME, "1").tags
    assert (
        tags["scoring.onnx_uri"] == summary["onnx_uri"] and tags["scoring.precision"] == summary["precision"]
    )

    args = ["score", "--lake", str(lake), "--run-id", "cli-1", "--batch-size", "16"]
    scored = cli(args, registry, tmp_path)
    assert scored.returncode == 0, scored.stderr[-3000:]
    result = json.loads(scored.stdout.splitlines()[-1])
    assert (result["scored"], result["model_version"], result["precision"]) == (20, "1", summary["precision"])
    assert "score cli-1:" in scored.stderr
    assert pl.read_delta(str(lake / ECG_SCORES)).height == 20
    assert pl.read_delta(str(lake / PATIENT_FINDINGS))["model_version"].unique().to_list() == ["1"]

    # (a re-run of the same run id adding nothing is tested in process: tests/scoring/test_pipeline.py)


def test_job_configs_validate() -> None:
    cfg = ScoreConfig(**load_yaml(REPO / "jobs" / "configs" / "score.yaml"))
    assert cfg.model.endswith("@champion") and cfg.cohort == "all"
    ExportConfig(**load_yaml(REPO / "jobs" / "configs" / "export.yaml"))
    with pytest.raises(ValidationError):
        ScoreConfig(**{"kind": "score", "cohrt": "all"})
    with pytest.raises(ValidationError):
        ScoreConfig(threads_per_actor=0)
