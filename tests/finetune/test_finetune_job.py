"""Fine-tuning end to end on real local Ray Train, a real Delta lake and a real sqlite MLflow registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import polars as pl
import pytest
import torch

from rare_ecg.evaluation.labels import label_matrix
from rare_ecg.evaluation.predict import choose_thresholds, split_predictions
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_WAVEFORMS
from rare_ecg.registry import CLASSIFIER_NAME, load_model, resolve
from rare_ecg.train.finetune import plan_finetuning

pytestmark = [pytest.mark.timeout(900), pytest.mark.usefixtures("ray_session")]


def test_no_patient_in_two_splits_on_a_lake_where_patients_have_several_ecgs(
    ft_lake: Path, trained: dict[str, Any]
) -> None:
    records = pl.read_delta(str(ft_lake / ECG_RECORDS), columns=["record_id", "patient_key"])
    per_patient = records.group_by("patient_key").len()
    assert per_patient["len"].max() >= 2  # the lake exercises the rule
    p = plan_finetuning(trained["cfg"], trained["settings"])
    splits = p.plan.join(records, on="record_id").group_by("patient_key").agg(pl.col("split").n_unique())
    assert splits["split"].max() == 1
    assert set(p.plan["split"].unique()) == {"train", "validation", "test"}
    # the records the job streamed per split are the plan's, and evaluation reads the same split
    assert trained["summary"]["records"] == {s: int((p.plan["split"] == s).sum()) for s in p.records}
    model, _ = load_model(trained["summary"]["model_uri"])
    test = split_predictions(str(ft_lake), "test", model, p.snapshot.versions)
    train_patients = set(
        p.plan.filter(pl.col("split") == "train").join(records, on="record_id")["patient_key"]
    )
    assert not set(test.predictions.patient_ids.tolist()) & train_patients


def test_registered_version_carries_vocabulary_thresholds_rare_set_prevalence_and_lineage(
    ft_lake: Path, trained: dict[str, Any]
) -> None:
    summary = trained["summary"]
    assert resolve(f"models:/{CLASSIFIER_NAME}@challenger") == (CLASSIFIER_NAME, summary["model_version"])
    model, meta = load_model(f"models:/{CLASSIFIER_NAME}@challenger")
    labels = list(model.cfg.labels)
    assert meta["labels"] == labels and len(labels) == summary["labels"] > 0
    assert set(meta["thresholds"]) == set(labels)
    assert all(0.0 < t <= 1.0 for t in meta["thresholds"].values())

    p = plan_finetuning(trained["cfg"], trained["settings"])
    train_ids = p.plan.filter(pl.col("split") == "train")["record_id"].to_list()
    ecg_labels = pl.read_delta(str(ft_lake / ECG_LABELS))
    _, y = label_matrix(ecg_labels, train_ids, labels)
    assert y.sum(0).min() > 0  # every label of the vocabulary has a training positive
    prevalence = dict(zip(labels, y.mean(0), strict=True))
    assert meta["train_prevalence"] == pytest.approx(prevalence, abs=1e-6)
    assert meta["rare_labels"] == [x for x in labels if prevalence[x] < 0.1]
    assert meta["rare_labels"]  # the cohort has rare labels at this threshold
    waves = pl.read_delta(str(ft_lake / ECG_WAVEFORMS), columns=["preprocessing_version"])
    assert meta["preprocessing_version"] == ",".join(sorted(waves["preprocessing_version"].unique()))
    assert meta["model_fs_hz"] == 100 and model.cfg.fs_hz == 100
    _, encoder_version = resolve(trained["encoder"])
    assert meta["encoder_version"] == encoder_version and meta["from_scratch"] is False
    assert meta["table_versions"] == {ECG_RECORDS: 0, ECG_WAVEFORMS: 0, ECG_LABELS: 0}
    assert 1 <= meta["best_epoch"] <= meta["epochs"] == 2

    version = mlflow.MlflowClient().get_model_version(CLASSIFIER_NAME, summary["model_version"])
    assert version.tags["encoder_version"] == encoder_version
    assert version.tags["ecg_labels_version"] == "0"
    run = mlflow.get_run(summary["run_id"])
    inputs = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert inputs == {"ecg_records@v0", "ecg_waveforms@v0", "ecg_labels@v0"}
    history = mlflow.MlflowClient().get_metric_history(summary["run_id"], "val_classification")
    assert [m.step for m in history] == [1, 2]
    # the knn references are the fine-tuned embeddings of training normals, not the encoder's
    encoder, _ = load_model(trained["encoder"])
    assert model.cfg.record_score == encoder.cfg.record_score == version.tags["record_score"]
    assert model.cfg.n_reference == int(version.tags["reference_records"]) > 0
    if encoder.cfg.n_reference == model.cfg.n_reference:
        assert not torch.allclose(model.reference, encoder.reference)


def test_thresholds_are_chosen_on_the_validation_split_only(ft_lake: Path, trained: dict[str, Any]) -> None:
    model, meta = load_model(trained["summary"]["model_uri"])
    versions = meta["table_versions"]
    saved = np.asarray([meta["thresholds"][x] for x in model.cfg.labels])
    by_split = {}
    for split in ("validation", "train", "test"):
        sp = split_predictions(str(ft_lake), split, model, versions)
        by_split[split] = choose_thresholds(sp.predictions.y_true, sp.predictions.y_prob)
    np.testing.assert_allclose(saved, by_split["validation"], atol=1e-5)
    assert not np.allclose(saved, by_split["train"], atol=1e-5)
    assert not np.allclose(saved, by_split["test"], atol=1e-5)
    val = split_predictions(str(ft_lake), "validation", model, versions)
    no_val_positive = val.predictions.y_true.sum(0) == 0
    assert meta["labels_without_validation_positives"] == [
        x for x, none in zip(model.cfg.labels, no_val_positive, strict=True) if none
    ]
    np.testing.assert_allclose(saved[no_val_positive], 0.5)


def test_choose_thresholds_maximises_f1_and_leaves_labels_without_positives_at_the_default() -> None:
    y = np.array([[1, 0], [1, 0], [0, 0], [1, 0], [0, 0]])
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.4], [0.1, 0.5]])
    t = choose_thresholds(y, p)
    # cut at 0.8: P=1, R=2/3, F1=0.8; at 0.4: P=3/4, R=1, F1=0.857 (best); at 0.1: F1=0.75
    assert t[0] == pytest.approx(0.4)
    assert t[1] == 0.5


def test_rerun_of_the_same_config_adds_no_version(
    trained: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from rare_ecg.train.finetune import run_finetune_job

    def no_training(*_: Any) -> None:
        raise AssertionError("a finished run started Ray Train again")

    monkeypatch.setattr("rare_ecg.train.finetune._fit", no_training)
    again = run_finetune_job(trained["cfg"], trained["settings"])
    first = trained["summary"]
    assert (again["checkpoint"], again["final"], again["best_epoch"]) == (
        first["checkpoint"],
        first["final"],
        first["best_epoch"],
    )
    assert again["model_version"] == trained["summary"]["model_version"]
    assert again["run_id"] == trained["summary"]["run_id"]
    versions = mlflow.MlflowClient().search_model_versions(f"name = '{CLASSIFIER_NAME}'")
    assert len([v for v in versions if v.run_id == again["run_id"]]) == 1
