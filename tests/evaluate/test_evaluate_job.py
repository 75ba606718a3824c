"""The evaluation job on a real lake and a real registered classifier: subgroup_metrics rows, one
idempotent commit, MLflow metrics and artifact, and the CLI's table and JSON line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable

from rare_ecg.config import EvaluateConfig
from rare_ecg.evaluation.job import run_evaluate_job
from rare_ecg.lake.schema import SUBGROUP_METRICS
from rare_ecg.metrics import per_label_metrics
from rare_ecg.registry import load_model

pytestmark = [pytest.mark.timeout(900), pytest.mark.usefixtures("ray_session")]


def cli(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "rare_ecg.cli", *args], capture_output=True, text=True, env=env, timeout=240
    )


@pytest.fixture(scope="module")
def evaluated(ft_lake: Path, trained: dict[str, Any]) -> dict[str, Any]:
    """`rare-ecg evaluate` twice in a subprocess (exit codes are part of the contract)."""
    args = ("evaluate", "--lake", str(ft_lake), "--model", trained["summary"]["model_uri"], "--n-boot", "50")
    first = cli(*args, root=trained["root"])
    second = cli(*args, root=trained["root"])
    return {"first": first, "second": second}


def test_cli_prints_a_table_and_a_json_last_line(evaluated: dict[str, Any]) -> None:
    first = evaluated["first"]
    assert first.returncode == 0, first.stderr[-2000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["committed"] is True and summary["split"] == "test"
    assert "macro AUROC all" in first.stderr and "largest subgroup gap" in first.stderr


def test_subgroup_metrics_hold_overall_sex_and_age_rows_for_every_label_set(
    ft_lake: Path, trained: dict[str, Any], evaluated: dict[str, Any]
) -> None:
    summary = json.loads(evaluated["first"].stdout.strip().splitlines()[-1])
    rows = pl.read_delta(str(ft_lake / SUBGROUP_METRICS)).filter(pl.col("run_id") == summary["run_id"])
    assert set(rows["model_version"]) == {trained["summary"]["model_version"]}
    assert set(rows["cohort"]) == {"split=test"}
    auroc = rows.filter(pl.col("metric") == "auroc")
    for kind in ("overall", "sex", "age_band"):
        assert {"all", "rare", "common"} <= set(auroc.filter(pl.col("group_kind") == kind)["label_set"])
    # the overall macro AUROC row is the mean of the per-label AUROCs of labels with positives
    model, _ = load_model(trained["summary"]["model_uri"])
    overall = auroc.filter((pl.col("group_kind") == "overall") & (pl.col("label_set") == "all"))
    per_label = auroc.filter(pl.col("label_set").is_in(list(model.cfg.labels)))
    finite = per_label["value"].drop_nulls()
    assert overall["value"].item() == pytest.approx(float(finite.mean()), abs=1e-6)
    assert summary["macro_auroc"]["all"] == pytest.approx(overall["value"].item(), abs=1e-4)
    # labels without test positives: a row with a null value, excluded from the mean, listed as such
    missing = per_label.filter(pl.col("n_pos") == 0)
    assert missing["value"].null_count() == missing.height
    assert sorted(summary["labels_without_positives"]) == sorted(missing["label_set"].to_list())
    assert set(rows["metric"]) >= {
        "auroc",
        "auprc",
        "sens_at_spec90",
        "ece",
        "n_flagged",
        "age_mae",
        "sex_auroc",
    }
    localization = rows.filter(pl.col("metric") == "localization_auroc")
    assert localization["n"].item() == summary["localization_records"] > 0  # synthetic: annotated
    assert 0.0 <= localization["value"].item() <= 1.0
    gaps = rows.filter(pl.col("group") == "largest_gap")
    assert set(gaps["group_kind"]) == {"sex", "age_band"}


def test_second_run_of_the_same_model_on_the_same_split_adds_nothing(
    ft_lake: Path, evaluated: dict[str, Any]
) -> None:
    second = evaluated["second"]
    assert second.returncode == 0, second.stderr[-2000:]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["committed"] is False
    dt = DeltaTable(str(ft_lake / SUBGROUP_METRICS))
    evaluate_commits = [h for h in dt.history() if h.get("rare_ecg.job") == "evaluate"]
    assert len(evaluate_commits) == 1
    rows = pl.read_delta(str(ft_lake / SUBGROUP_METRICS)).filter(pl.col("run_id") == summary["run_id"])
    assert rows.height == summary["subgroup_metric_rows"]


def test_numbers_reach_the_models_mlflow_run_with_a_json_artifact(
    trained: dict[str, Any], evaluated: dict[str, Any]
) -> None:
    summary = json.loads(evaluated["first"].stdout.strip().splitlines()[-1])
    mlflow.set_tracking_uri(trained["settings"].mlflow_tracking_uri)
    run = mlflow.get_run(trained["summary"]["run_id"])
    assert run.data.metrics["test_macro_auroc_all"] == pytest.approx(summary["macro_auroc"]["all"])
    artifact = mlflow.artifacts.load_dict(
        f"{run.info.artifact_uri}/evaluation/test-v{summary['model_version']}.json"
    )
    assert artifact["summary"]["run_id"] == summary["run_id"]


def test_validation_split_scores_match_per_label_metrics(ft_lake: Path, trained: dict[str, Any]) -> None:
    # another job earlier in this process left its experiment active: evaluation still logs to the
    # model's own run (mlflow.start_run(run_id) refused it)
    mlflow.set_tracking_uri(trained["settings"].mlflow_tracking_uri)
    mlflow.set_experiment("another-job")
    summary = run_evaluate_job(
        EvaluateConfig(
            lake=str(ft_lake), model=trained["summary"]["model_uri"], split="validation", n_boot=20
        ),
        trained["settings"],
    )
    from rare_ecg.evaluation.predict import split_predictions

    model, meta = load_model(trained["summary"]["model_uri"])
    sp = split_predictions(str(ft_lake), "validation", model, meta["table_versions"])
    metrics = per_label_metrics(sp.predictions.y_true, sp.predictions.y_prob, model.cfg.labels)
    for m in metrics:
        got = summary["per_label"][m.label]["auroc"]
        assert (got is None) == (not np.isfinite(m.auroc))
        if got is not None:
            assert got == pytest.approx(m.auroc, abs=1e-4)
    run = mlflow.get_run(trained["summary"]["run_id"])
    assert run.data.metrics["validation_macro_auroc_all"] == pytest.approx(summary["macro_auroc"]["all"])
