"""The pretraining job end to end on real local Ray, a real Delta lake and a real sqlite MLflow.

One trained run is shared by several assertions (a Ray Train worker group takes ~10 s to start here)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import mlflow
import psutil
import pytest
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.registry import ENCODER_NAME, load_model
from rare_ecg.train.job import LOSS_TERMS, run_pretrain_job
from rare_ecg.train.loop import CHECKPOINT_FILE
from tests.train.conftest import settings_for, tiny_config

pytestmark = [pytest.mark.timeout(420), pytest.mark.usefixtures("ray_session")]

TERMS = ("global", "local", "trend", "attributes", "total")


def run(cfg: Any, root: Path, on_epoch: Any = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    epochs: list[dict[str, Any]] = []

    def record(m: dict[str, Any]) -> None:
        epochs.append(m)
        if on_epoch is not None:
            on_epoch(m)

    return run_pretrain_job(cfg, settings_for(root), on_epoch=record), epochs


@pytest.fixture(scope="module")
def first(train_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pretrain")
    cfg = tiny_config(train_lake, root / "runs", run_name="t1", epochs=3)
    summary, epochs = run(cfg, root)
    return {"root": root, "cfg": cfg, "summary": summary, "epochs": epochs}


def test_every_loss_term_falls_on_a_short_run_and_each_epoch_reaches_mlflow(first: dict[str, Any]) -> None:
    epochs, summary = first["epochs"], first["summary"]
    assert [m["epoch"] for m in epochs] == [1, 2, 3]
    for term in TERMS:
        assert epochs[-1][f"train_{term}"] < epochs[0][f"train_{term}"], term
    assert epochs[-1]["val_total"] < epochs[0]["val_total"]
    assert summary["epochs"] == 3 and summary["resumed_from_epoch"] == 0
    assert summary["final"]["train_total"] == pytest.approx(epochs[-1]["train_total"], abs=1e-4)

    client = mlflow.MlflowClient()
    run_id = summary["run_id"]
    for split in ("train", "val"):
        for term in LOSS_TERMS:
            history = client.get_metric_history(run_id, f"{split}_{term}")
            assert [h.step for h in history] == [1, 2, 3], (split, term)
    assert len(client.get_metric_history(run_id, "samples_per_s")) == 3
    # the inpainting skill (network / R-aligned beat copy on validation) is measured every epoch
    skill = client.get_metric_history(run_id, "val_inpainting_skill")
    assert [h.step for h in skill] == [1, 2, 3] and all(0.0 < h.value < 10.0 for h in skill)
    assert all(m["val_inpainting_vs_zero"] > 0.0 for m in epochs)
    params = client.get_run(run_id).data.params
    assert params["epochs"] == "3" and params["d_model"] == "16" and params["model.fs_hz"] == "100"
    assert params["ecg_waveforms_version"] == str(summary["table_versions"]["ecg_waveforms"])


def test_registered_encoder_carries_lineage_tags_and_delta_dataset_inputs(first: dict[str, Any]) -> None:
    summary = first["summary"]
    versions = summary["table_versions"]
    mv = mlflow.MlflowClient().get_model_version(ENCODER_NAME, summary["model_version"])
    assert mv.run_id == summary["run_id"]
    assert mv.tags["lake"] == summary["lake"]
    assert mv.tags["ecg_records_version"] == str(versions["ecg_records"])
    assert mv.tags["ecg_waveforms_version"] == str(versions["ecg_waveforms"])
    assert mv.tags["preprocessing_version"] == "pp-1" and mv.tags["model_fs_hz"] == "100"
    assert len(mv.tags["git_commit"]) in (40, len("unknown")) and len(mv.tags["config_hash"]) == 16
    assert float(mv.tags["inpainting_skill"]) == pytest.approx(
        summary["final"]["val_inpainting_skill"], abs=1e-3
    )

    inputs = mlflow.get_run(summary["run_id"]).inputs.dataset_inputs
    # MLflow's DeltaDatasetSource drops a version of 0 from its JSON (a falsy check): the name keeps it
    sources = sorted(
        (
            d.dataset.name,
            json.loads(d.dataset.source)["path"],
            json.loads(d.dataset.source).get("delta_table_version", 0),
        )
        for d in inputs
    )
    assert sources == sorted((f"{t}@v{v}", f"{summary['lake']}/{t}", v) for t, v in versions.items())
    assert {d.dataset.source_type for d in inputs} == {"delta_table"}

    model, meta = load_model(summary["model_uri"])
    assert meta["table_versions"] == versions and meta["epochs"] == 3
    assert model.cfg.d_model == 16 and model.cfg.fs_hz == 100


def test_same_run_name_resumes_with_epoch_counter_and_optimizer_state(
    first: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cfg, summary = first["root"], first["cfg"], first["summary"]
    resumed, epochs = run(cfg.model_copy(update={"epochs": 4}), root)
    assert [m["epoch"] for m in epochs] == [4]  # epochs 1-3 came from the checkpoint
    assert epochs[0]["resumed_from_epoch"] == 3 and resumed["resumed_from_epoch"] == 3
    assert resumed["run_id"] == summary["run_id"]  # the same MLflow run continues
    assert resumed["model_version"] != summary["model_version"]

    state = torch.load(Path(resumed["checkpoint"]) / CHECKPOINT_FILE, weights_only=False)
    assert [m["epoch"] for m in state["history"]] == [1, 2, 3, 4]
    steps_per_epoch = -(-summary["windows"]["train"] // cfg.batch_size)
    adam_steps = {float(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {4.0 * steps_per_epoch}  # AdamW's moments carried over, not restarted

    def no_training(*_: Any) -> None:
        raise AssertionError("a finished run started Ray Train again")

    monkeypatch.setattr("rare_ecg.train.job._fit", no_training)
    again, epochs = run(cfg.model_copy(update={"epochs": 4}), root)
    assert epochs == [] and again["model_version"] == resumed["model_version"]  # done: nothing added
    assert again["checkpoint"] == resumed["checkpoint"] and again["final"] == resumed["final"]


def _train_workers() -> list[psutil.Process]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "RayTrainWorker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_two_workers_survive_a_worker_process_killed_mid_run(train_lake: Path, tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_during_third_epoch(m: dict[str, Any]) -> None:
        # after the second epoch's report: by then the controller holds epoch 1's checkpoint at least
        # (reports reach it asynchronously)
        if m["epoch"] == 2 and not killed:
            workers = _train_workers()
            assert len(workers) == 2, [w.cmdline() for w in workers]
            killed.append(workers[-1].pid)
            os.kill(workers[-1].pid, signal.SIGKILL)

    cfg = tiny_config(
        train_lake, tmp_path / "runs", run_name="killed", epochs=3, workers=2, register_model=False
    )
    summary, epochs = run(cfg, tmp_path, on_epoch=kill_during_third_epoch)
    assert killed and not psutil.pid_exists(killed[0])
    assert summary["epochs"] == 3 and summary["model_version"] is None
    numbers = [m["epoch"] for m in epochs]
    assert numbers[-1] == 3 and epochs[-1]["resumed_from_epoch"] in (1, 2), numbers  # from a checkpoint
    assert all(m["samples"] > 0 for m in epochs)


def test_registered_encoder_carries_its_reference_set_and_the_record_score_chosen_on_validation(
    first: dict[str, Any],
) -> None:
    """issue 12, point 4: the knn references are the training normals' embeddings (recomputed here from
    the lake), and the label-free score is the ECG-only candidate with the best validation AUROC; its
    name and AUROC are tags, and the registered model's graph computes it."""
    import numpy as np
    import polars as pl

    from rare_ecg.model.loop import embed
    from rare_ecg.train.data import open_snapshot, split_plan
    from rare_ecg.train.scoring_choice import labels_version, normal_flags, read_split

    summary = first["summary"]
    mlflow.set_tracking_uri(settings_for(first["root"]).mlflow_tracking_uri)  # other tests move it
    mv = mlflow.MlflowClient().get_model_version(ENCODER_NAME, summary["model_version"])
    model, _ = load_model(summary["model_uri"])
    snapshot = open_snapshot(summary["lake"], summary["table_versions"])
    plan = split_plan(snapshot)
    version = labels_version(summary["lake"])
    train_ids = plan.filter(pl.col("split") == "train")["record_id"].to_list()
    flags = normal_flags(summary["lake"], version, train_ids)
    normals = sorted(r for r, v in zip(train_ids, flags, strict=True) if v is True)
    assert normals and mv.tags["reference_set"] == "training normals"
    assert int(mv.tags["reference_records"]) == len(normals) == model.cfg.n_reference
    expected, _ = embed(model, read_split(snapshot, plan, normals, model.cfg).batch, knn=True)
    assert np.allclose(model.reference.numpy(), expected, atol=1e-5)

    assert mv.tags["record_score"] == model.cfg.record_score == summary["record_score"]
    # this small lake's validation split holds abnormal records only: the configured default stays
    assert mv.tags["record_score_chosen_on"].startswith("default: no validation records labelled")
    assert model.cfg.record_score == ModelConfig().record_score


def test_the_record_score_is_the_best_ecg_only_candidate_on_labelled_validation_records(
    first: dict[str, Any],
) -> None:
    """The choice itself, on a plan whose validation part holds normal and abnormal records (the
    training lake's own validation split has abnormal ones only): recomputed candidate AUROCs agree."""
    import numpy as np
    import polars as pl

    from rare_ecg.metrics.ranking import auroc
    from rare_ecg.model.network import EcgModel
    from rare_ecg.model.scores import ECG_ONLY
    from rare_ecg.model.selection import record_candidates
    from rare_ecg.train.data import open_snapshot, split_plan
    from rare_ecg.train.scoring_choice import attach_score, labels_version, normal_flags, read_split

    summary = first["summary"]
    mlflow.set_tracking_uri(settings_for(first["root"]).mlflow_tracking_uri)
    snapshot = open_snapshot(summary["lake"], summary["table_versions"])
    plan = split_plan(snapshot)
    ids = sorted(plan["record_id"].to_list())
    flags = dict(zip(ids, normal_flags(summary["lake"], labels_version(summary["lake"]), ids), strict=True))
    normals = [r for r in ids if flags[r] is True][:4]
    others = [r for r in ids if flags[r] is False][:8]
    chosen_val = set(normals[:2] + others[:4])
    plan = plan.with_columns(
        pl.when(pl.col("record_id").is_in(sorted(chosen_val)))
        .then(pl.lit("validation"))
        .when(pl.col("record_id").is_in(normals[2:] + others[4:]))
        .then(pl.lit("train"))
        .otherwise(pl.lit("test"))
        .alias("split")
    )
    encoder, _ = load_model(summary["model_uri"])
    base = EcgModel(ModelConfig.from_dict({**encoder.cfg.to_dict(), "n_reference": 0}))
    base.load_state_dict({k: v for k, v in encoder.state_dict().items() if k != "reference"}, strict=False)
    model, tags = attach_score(base, snapshot, plan, choose=True)
    assert tags["reference_records"] == 2 and model.cfg.n_reference == 2
    val = read_split(snapshot, plan, sorted(chosen_val), model.cfg)
    cands = record_candidates(model, val.batch)
    abnormal = np.asarray([not flags[r] for r in val.record_ids])
    aurocs = {n: auroc(abnormal, cands[n]) for n in ECG_ONLY}
    best = max(aurocs.values())
    assert tags["record_score"] == model.cfg.record_score and aurocs[tags["record_score"]] == pytest.approx(
        best
    )
    assert tags["record_score_validation_auroc"] == pytest.approx(best, abs=1e-3)
    assert tags["record_score_chosen_on"] == "validation AUROC normal vs abnormal, 6 records"
