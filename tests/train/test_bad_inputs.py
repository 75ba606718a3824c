"""Every bad input of the pretraining job is a one-line error before any worker starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import write_deltalake
from pydantic import ValidationError

from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_WAVEFORMS, SCHEMAS
from rare_ecg.train.data import LakeInputError
from rare_ecg.train.job import plan_pretraining
from tests.train.conftest import settings_for, tiny_config

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.timeout(120), pytest.mark.usefixtures("ray_session")]


def test_lake_without_tables_unknown_version_rate_mismatch_and_too_many_workers(
    train_lake: Path, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    cases = [
        (tiny_config(tmp_path / "nothing-here", tmp_path), "has no ecg_records table"),
        (tiny_config(train_lake, tmp_path, waveforms_version=99), "ecg_waveforms has no version 99"),
        (tiny_config(train_lake, tmp_path, model_fs_hz=500), r"model_fs_hz=500 does not match .* \[100\] Hz"),
        (tiny_config(train_lake, tmp_path, workers=16), "16 workers x 0.5 CPUs .* do not fit"),
        (tiny_config(train_lake, tmp_path, model={"mask_rate": 0.5}), "mask_rate"),
    ]
    for cfg, message in cases:
        with pytest.raises(LakeInputError, match=message):
            plan_pretraining(cfg, settings)


def test_empty_training_split_is_refused(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    for table in (ECG_RECORDS, ECG_WAVEFORMS):
        write_deltalake(str(lake / table), SCHEMAS[table].empty_table())
    with pytest.raises(LakeInputError, match=r"the train split of .* is empty"):
        plan_pretraining(tiny_config(lake, tmp_path), settings_for(tmp_path))


def test_unknown_config_keys_are_refused() -> None:
    with pytest.raises(ValidationError, match="epoch"):
        tiny_config(Path("lake"), Path("runs"), epoch=3)


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # a cluster address nothing answers at: bad input must be reported before any cluster is contacted
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "RAY_ADDRESS": "127.0.0.1:9",
    }
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=100, env=env, cwd=REPO, check=False
    )


def test_cli_and_job_entrypoint_exit_2_with_one_line(tmp_path: Path) -> None:
    result = _cli(["-m", "rare_ecg.cli", "pretrain", "--lake", str(tmp_path / "empty")], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1].startswith("rare-ecg: error: the lake ")
    assert result.stdout == ""

    config = tmp_path / "bad.yaml"
    config.write_text("kind: pretrain\nepochz: 3\n")
    result = _cli(["-m", "jobs.pretrain", "--config", str(config)], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"rare-ecg: error: {config}: epochz: Extra inputs are not permitted (got 3)"
    ]


def test_normal_only_trains_on_the_normal_records_and_leaves_validation_whole(
    train_lake: Path, tmp_path: Path
) -> None:
    from rare_ecg.train.scoring_choice import labels_version, normal_flags

    settings = settings_for(tmp_path)
    full = plan_pretraining(tiny_config(train_lake, tmp_path), settings)
    normal = plan_pretraining(tiny_config(train_lake, tmp_path, normal_only=True), settings)

    def ids(p: Any, split: str) -> list[str]:
        return sorted(p.plan.filter(pl.col("split") == split)["record_id"].to_list())

    version = labels_version(str(train_lake))
    train_all = ids(full, "train")
    flags = normal_flags(str(train_lake), version, train_all)
    assert flags is not None
    expected = sorted(r for r, v in zip(train_all, flags, strict=True) if v is True)
    assert 0 < len(expected) < len(train_all)  # the cohort has both, so the filter is visible
    assert ids(normal, "train") == expected
    assert ids(normal, "validation") == ids(full, "validation")
    assert ids(normal, "test") == ids(full, "test")
    assert normal.windows["train"] < full.windows["train"]
    assert normal.normal_labels_version == version and full.normal_labels_version is None
    assert normal.run_name != full.run_name  # another job, not a resume of the all-records run


def test_normal_only_without_labels_or_without_a_normal_record_is_refused(
    train_lake: Path, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path)
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(train_lake, unlabelled, ignore=shutil.ignore_patterns(ECG_LABELS))
    with pytest.raises(LakeInputError, match=r"normal_only needs labels, and .* has no ecg_labels table"):
        plan_pretraining(tiny_config(unlabelled, tmp_path, normal_only=True), settings)

    abnormal = tmp_path / "abnormal"
    shutil.copytree(train_lake, abnormal)
    labels = pl.read_delta(str(abnormal / ECG_LABELS)).filter(pl.col("label") != "NORM").to_arrow()
    write_deltalake(str(abnormal / ECG_LABELS), labels, mode="overwrite")
    with pytest.raises(LakeInputError, match=r"none of the \d+ records of the train split is labelled NORM"):
        plan_pretraining(tiny_config(abnormal, tmp_path, normal_only=True), settings)
