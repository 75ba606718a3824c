"""Bad inputs of fine-tuning and evaluation: one-line reasons (exit 2 on the command line), before work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rare_ecg.config import EvaluateConfig
from rare_ecg.evaluation.job import run_evaluate_job
from rare_ecg.registry import CLASSIFIER_NAME, ENCODER_NAME
from rare_ecg.train.finetune import plan_finetuning
from tests.finetune.conftest import finetune_config, register

pytestmark = [pytest.mark.timeout(900), pytest.mark.usefixtures("ray_session")]


# A cluster address nothing answers at: bad input must be reported before any cluster is contacted.
UNREACHABLE_RAY = "127.0.0.1:9"


def cli(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "RAY_ADDRESS": UNREACHABLE_RAY,
    }
    return subprocess.run(
        [sys.executable, "-m", "rare_ecg.cli", *args], capture_output=True, text=True, env=env, timeout=240
    )


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("rare-ecg: error: ") and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in lines[-1]


def test_unknown_encoder_reference_is_one_line_exit_2(ft_lake: Path, trained: dict[str, Any]) -> None:
    result = cli(
        "finetune", "--lake", str(ft_lake), "--encoder", f"models:/{ENCODER_NAME}@nope", root=trained["root"]
    )
    one_line_error(result, f"models:/{ENCODER_NAME}@nope")


def test_unknown_model_reference_for_evaluation_is_one_line_exit_2(
    ft_lake: Path, trained: dict[str, Any]
) -> None:
    result = cli(
        "evaluate", "--lake", str(ft_lake), "--model", f"models:/{CLASSIFIER_NAME}/999", root=trained["root"]
    )
    one_line_error(result, "999")


def test_encoder_trained_at_another_rate(ft_lake: Path, trained: dict[str, Any], tmp_path: Path) -> None:
    uri = register(trained["settings"], ENCODER_NAME, fs_hz=500)
    with pytest.raises(ValueError, match=r"trained at 500 Hz; the lake's ecg_waveforms are at \[100\] Hz"):
        plan_finetuning(finetune_config(ft_lake, tmp_path, encoder=uri), trained["settings"])


def test_vocabulary_mismatch(ft_lake: Path, trained: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\['NOT_A_CODE'\] are not canonical SCP-ECG codes"):
        plan_finetuning(
            finetune_config(ft_lake, tmp_path, from_scratch=True, labels=("NORM", "NOT_A_CODE")),
            trained["settings"],
        )
    foreign = register(trained["settings"], "foreign-classifier", labels=("NORM", "NOT_A_CODE"))
    with pytest.raises(
        ValueError, match=r"does not match the lake's canonical SCP-ECG codes: \['NOT_A_CODE'\]"
    ):
        run_evaluate_job(EvaluateConfig(lake=str(ft_lake), model=foreign), trained["settings"])


def test_empty_split(folds_9_10_lake: Path, trained: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"the train split of .* is empty"):
        plan_finetuning(finetune_config(folds_9_10_lake, tmp_path, from_scratch=True), trained["settings"])
    with pytest.raises(ValueError, match=r"the train split of .* is empty"):
        run_evaluate_job(
            EvaluateConfig(lake=str(folds_9_10_lake), model=trained["summary"]["model_uri"], split="train"),
            trained["settings"],
        )


def test_split_without_positives(ft_lake: Path, trained: dict[str, Any]) -> None:
    import polars as pl

    from rare_ecg.evaluation.labels import label_matrix
    from rare_ecg.lake.schema import ECG_LABELS
    from rare_ecg.scoring.cohort import CohortFilter, cohort_records, pin_versions

    versions = pin_versions(str(ft_lake))
    test_ids = cohort_records(str(ft_lake), CohortFilter(split="test"), versions)["record_id"].to_list()
    ecg_labels = pl.read_delta(str(ft_lake / ECG_LABELS))
    # a label of the classifier's training vocabulary with no positive among the test records
    model_labels = trained["summary"]["rare_labels"]
    _, y = label_matrix(ecg_labels, test_ids, model_labels)
    absent = [x for x, k in zip(model_labels, y.sum(0), strict=True) if k == 0]
    assert absent, "the cohort should leave some rare label without test positives"
    model = register(trained["settings"], "absent-label-classifier", labels=(absent[0],))
    with pytest.raises(ValueError, match="no positive of any of the model's 1 labels"):
        run_evaluate_job(EvaluateConfig(lake=str(ft_lake), model=model), trained["settings"])
