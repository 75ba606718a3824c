"""The pretraining job on the driver: check every input before a worker starts, run Ray Train's
TorchTrainer over the pinned lake, log to MLflow as epochs finish, register the encoder with lineage.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from rare_ecg.config import PretrainConfig, Settings
from rare_ecg.lake.paths import normalize_lake
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_WAVEFORMS
from rare_ecg.model.config import ModelConfig
from rare_ecg.registry import ENCODER_NAME, log_model, register_model
from rare_ecg.registry.tracking import find_run, use_experiment
from rare_ecg.runtime import cluster_cpus
from rare_ecg.train.data import LakeInputError, LakeSnapshot, open_snapshot, split_dataset, split_plan
from rare_ecg.train.data import waveform_rates as lake_rates
from rare_ecg.train.loop import (
    TRAIN_DATASET,
    VALIDATION_DATASET,
    LoopSpec,
    train_loop_per_worker,
    trained_or_finished,
)
from rare_ecg.train.scoring_choice import attach_score

DATA_CPUS = 0.5  # kept free for Ray Data's read tasks: workers taking every CPU starve them (a hang)
RUN_NAME_TAG = "rare_ecg.run_name"
LOSS_TERMS = ("total", "global", "local", "trend", "attributes", "age", "sex", "measurements", "hidden_mse")
SKILL_METRICS = ("val_inpainting_skill", "val_inpainting_vs_zero")  # on validation only


@dataclass(frozen=True)
class PretrainPlan:
    """Everything checked and decided before any worker starts."""

    cfg: PretrainConfig
    snapshot: LakeSnapshot
    plan: pl.DataFrame  # one row per record: split, n_windows, attribute targets
    model_cfg: ModelConfig
    spec: LoopSpec
    run_name: str
    storage_path: str
    config_hash: str
    preprocessing_version: str
    windows: dict[str, int]  # split -> 10 s windows
    normal_labels_version: int | None = None  # ecg_labels version that chose the records (normal_only)


def config_hash(cfg: PretrainConfig, content_id: str) -> str:
    """The job's identity: its config and the lake content it reads (not the version numbers, which
    move with commits that add no data)."""
    exclude = {
        "run_name",
        "storage_path",
        "register_model",
        "experiment",
        "records_version",
        "waveforms_version",
    }
    if not cfg.normal_only:
        exclude.add("normal_only")  # runs from before the option keep their identity
    payload = cfg.model_dump(mode="json", exclude=exclude)
    payload["lake_content"] = content_id
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _model_config(cfg: PretrainConfig) -> ModelConfig:
    try:
        return ModelConfig.from_dict(
            {
                **cfg.model,
                "fs_hz": cfg.model_fs_hz,
                "d_model": cfg.d_model,
                "n_layers": cfg.n_layers,
                "n_heads": cfg.n_heads,
            }
        )
    except TypeError as err:  # an unknown ModelConfig field
        raise LakeInputError(f"model: {err}; known fields: {sorted(ModelConfig().to_dict())}") from None


def plan_pretraining(cfg: PretrainConfig, settings: Settings) -> PretrainPlan:
    """Every check of the job's inputs; raises LakeInputError (a ValueError) with a one-line reason. Starts
    Ray (or joins RAY_ADDRESS) when it is not running, after the lake checks: its CPUs are checked last."""
    lake = normalize_lake(cfg.lake or settings.lake)
    model_cfg = _model_config(cfg)
    versions = {
        t: v
        for t, v in ((ECG_RECORDS, cfg.records_version), (ECG_WAVEFORMS, cfg.waveforms_version))
        if v is not None
    }
    snapshot = open_snapshot(lake, versions)
    rates = lake_rates(snapshot)
    if rates and rates != [cfg.model_fs_hz]:
        raise LakeInputError(
            f"model_fs_hz={cfg.model_fs_hz} does not match the lake's ecg_waveforms, stored at {rates} Hz"
        )
    plan = split_plan(snapshot)
    normal_version = None
    if cfg.normal_only:
        plan, normal_version = normal_training_records(plan, snapshot, cfg.split)
    windows = {s: int(n) for s, n in plan.group_by("split").agg(pl.col("n_windows").sum()).rows()}
    if windows.get(cfg.split, 0) == 0:
        raise LakeInputError(
            f"the {cfg.split} split of {lake} is empty ({plan.height} records with waveforms, "
            f"windows per split: {windows or 'none'})"
        )
    validate = cfg.validation_split is not None and windows.get(cfg.validation_split, 0) > 0
    cpus = cluster_cpus(settings)  # Ray starts here, once every input above is known good
    if cfg.workers * cfg.cpus_per_worker + DATA_CPUS > cpus:
        raise LakeInputError(
            f"{cfg.workers} workers x {cfg.cpus_per_worker} CPUs (+{DATA_CPUS} for data feeding) do not fit "
            f"the cluster's {cpus:g} CPUs; lower workers or cpus_per_worker"
        )
    labels_part = f":{ECG_LABELS}@{normal_version}" if normal_version is not None else ""
    hashed = config_hash(cfg, snapshot.content_id() + labels_part)
    pp_versions = snapshot.read(ECG_WAVEFORMS, ["preprocessing_version"])["preprocessing_version"].unique()
    spec = LoopSpec(
        mode="pretrain",
        model=model_cfg.to_dict(),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        weights={
            "global_recon": cfg.global_weight,
            "local_recon": cfg.local_weight,
            "trend": cfg.trend_weight,
            "attributes": cfg.attributes_weight,
        },
        threads=cfg.threads_per_worker or max(1, math.floor(cfg.cpus_per_worker)),
        validate=validate,
    )
    return PretrainPlan(
        cfg=cfg,
        snapshot=snapshot,
        plan=plan,
        model_cfg=model_cfg,
        spec=spec,
        run_name=cfg.run_name or f"pretrain-{hashed}",
        storage_path=str(Path(cfg.storage_path or "train-runs").expanduser().resolve()),
        config_hash=hashed,
        preprocessing_version=",".join(sorted(pp_versions.to_list())),
        windows=windows,
        normal_labels_version=normal_version,
    )


def normal_training_records(
    plan: pl.DataFrame, snapshot: LakeSnapshot, split: str
) -> tuple[pl.DataFrame, int]:
    """``plan`` with ``split`` cut to its records labelled NORM (normal_only pretraining), and the
    ecg_labels version that decided it; the other splits are left whole."""
    from rare_ecg.train.scoring_choice import NORMAL_LABEL, labels_version, normal_flags

    version = labels_version(snapshot.lake)
    if version is None:
        raise LakeInputError(f"normal_only needs labels, and {snapshot.lake} has no {ECG_LABELS} table")
    ids = plan.filter(pl.col("split") == split)["record_id"].to_list()
    flags = normal_flags(snapshot.lake, version, ids)  # never None: the lake has labels
    keep = [r for r, v in zip(ids, flags if flags is not None else (), strict=True) if v is True]
    if not keep:
        raise LakeInputError(
            f"normal_only: none of the {len(ids)} records of the {split} split is labelled {NORMAL_LABEL} "
            f"in {ECG_LABELS} version {version}"
        )
    return plan.filter((pl.col("split") != split) | pl.col("record_id").is_in(keep)), version


def _trainer(p: PretrainPlan, progress: Any) -> Any:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cfg = p.cfg
    datasets: dict[str, Any] = {
        TRAIN_DATASET: split_dataset(
            p.snapshot, p.plan, cfg.split, p.model_cfg.n_leads, p.model_cfg.n_samples
        )
    }
    if p.spec.validate and cfg.validation_split is not None:
        datasets[VALIDATION_DATASET] = split_dataset(
            p.snapshot, p.plan, cfg.validation_split, p.model_cfg.n_leads, p.model_cfg.n_samples
        )
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": p.spec.to_dict(), "progress": progress},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(
            num_workers=cfg.workers, use_gpu=False, resources_per_worker={"CPU": cfg.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=p.run_name,
            storage_path=p.storage_path,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
        datasets=datasets,
        dataset_config=DataConfig(datasets_to_split="all"),
    )


def _log_inputs(snapshot: LakeSnapshot) -> None:
    import mlflow
    from mlflow.data.delta_dataset_source import DeltaDatasetSource
    from mlflow.data.meta_dataset import MetaDataset

    for table, version in snapshot.versions.items():
        source = DeltaDatasetSource(path=snapshot.uri(table), delta_table_version=version)
        dataset = MetaDataset(source, name=f"{table}@v{version}")  # type: ignore[abstract]
        mlflow.log_input(dataset, context="training")


def _params(p: PretrainPlan) -> dict[str, Any]:
    params: dict[str, Any] = {
        k: json.dumps(v) if isinstance(v, dict) else v for k, v in p.cfg.model_dump(mode="json").items()
    }
    params.update({f"model.{k}": v for k, v in p.model_cfg.to_dict().items()})
    params.update(
        {
            "lake": p.snapshot.lake,
            "run_name": p.run_name,
            "config_hash": p.config_hash,
            **{f"{t}_version": v for t, v in p.snapshot.versions.items()},
            **{f"windows_{s}": n for s, n in p.windows.items()},
        }
    )
    if p.normal_labels_version is not None:
        params["normal_only_labels_version"] = p.normal_labels_version
    return params


def epoch_metrics_for_mlflow(metrics: dict[str, Any]) -> dict[str, float]:
    keep = [f"{split}_{t}" for split in ("train", "val") for t in LOSS_TERMS]
    out = {k: float(metrics[k]) for k in keep if k in metrics}
    out.update(
        {k: float(metrics[k]) for k in ("samples_per_s", "epoch_seconds", *SKILL_METRICS) if k in metrics}
    )
    return out


def _fit(p: PretrainPlan, on_epoch: Callable[[dict[str, Any]], None] | None) -> Any:
    """Run the trainer in a thread; meanwhile, log every epoch the workers report as it arrives."""
    import mlflow
    from ray.util.queue import Empty, Queue

    progress = Queue(actor_options={"num_cpus": 0})
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = _trainer(p, progress).fit()
        except BaseException as err:  # handed to the caller below
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="rare-ecg-fit", daemon=True)
    thread.start()
    while True:
        done = not thread.is_alive()
        try:
            metrics = progress.get(timeout=0.5)
        except Empty:
            if done:
                break
            continue
        mlflow.log_metrics(epoch_metrics_for_mlflow(metrics), step=int(metrics["epoch"]))
        if on_epoch is not None:
            on_epoch(metrics)
    thread.join()
    progress.shutdown()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def _registered(run_id: str, epoch: int) -> str | None:
    """The encoder version this run already registered for this final epoch (an idempotent re-run)."""
    from mlflow import MlflowClient

    for mv in MlflowClient().search_model_versions(f"name = '{ENCODER_NAME}' and run_id = '{run_id}'"):
        if mv.tags.get("epochs") == str(epoch):
            return str(mv.version)
    return None


def run_pretrain_job(
    cfg: PretrainConfig,
    settings: Settings,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Pretrain an encoder from the lake; returns the job's summary (the CLI's JSON line).

    Every input is checked first (`plan_pretraining`, which starts Ray when it is not running, once the
    lake checks pass): a bad one raises LakeInputError before a worker starts."""
    import mlflow

    from rare_ecg.model.network import EcgModel

    started = time.perf_counter()
    p = plan_pretraining(cfg, settings)
    use_experiment(settings.mlflow_tracking_uri, cfg.experiment)
    existing = find_run(RUN_NAME_TAG, p.run_name)
    with mlflow.start_run(run_id=existing, run_name=None if existing else p.run_name) as run:
        if existing is None:
            mlflow.set_tags(
                {RUN_NAME_TAG: p.run_name, "config_hash": p.config_hash, "git_commit": git_commit()}
            )
            mlflow.log_params(_params(p))
            _log_inputs(p.snapshot)
        checkpoint, state = trained_or_finished(
            p.storage_path, p.run_name, p.cfg.epochs, existing is not None, lambda: _fit(p, on_epoch)
        )
        history: list[dict[str, Any]] = state["history"]
        final = history[-1]
        version = None
        score_tags: dict[str, Any] = {}
        if cfg.register_model:
            version = _registered(run.info.run_id, int(state["epoch"]))
            if version is None:
                model = EcgModel(p.model_cfg)
                model.load_state_dict(state["model"])
                # knn references from training normals; the record score chosen on validation
                model, score_tags = attach_score(model, p.snapshot, p.plan, choose=True, seed=cfg.seed)
                mlflow.log_params({f"score.{k}": v for k, v in score_tags.items()})
                version = _register(p, model, run.info.run_id, int(state["epoch"]), final, score_tags)
    return {
        "run_id": run.info.run_id,
        "run_name": p.run_name,
        "model_name": ENCODER_NAME if cfg.register_model else None,
        "model_version": version,
        "model_uri": f"models:/{ENCODER_NAME}/{version}" if version else None,
        "lake": p.snapshot.lake,
        "table_versions": p.snapshot.versions,
        "windows": p.windows,
        "epochs": int(state["epoch"]),
        "resumed_from_epoch": int(history[-1]["resumed_from_epoch"]) if history else 0,
        "final": {k: round(v, 5) for k, v in epoch_metrics_for_mlflow(final).items()},
        "record_score": score_tags.get("record_score"),
        "record_score_validation_auroc": score_tags.get("record_score_validation_auroc"),
        "workers": cfg.workers,
        "checkpoint": checkpoint,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _register(
    p: PretrainPlan,
    model: Any,
    run_id: str,
    epoch: int,
    final: dict[str, Any],
    score_tags: dict[str, Any],
) -> str:
    lineage = {
        "lake": p.snapshot.lake,
        "table_versions": p.snapshot.versions,
        "preprocessing_version": p.preprocessing_version,
        "git_commit": git_commit(),
        "config_hash": p.config_hash,
        "model_fs_hz": p.model_cfg.fs_hz,
    }
    metadata = {"kind": "encoder", "run_name": p.run_name, "epochs": epoch, **lineage}
    uri = log_model(model, metadata)
    tags: dict[str, Any] = {
        "lake": p.snapshot.lake,
        **{f"{t}_version": v for t, v in p.snapshot.versions.items()},
        "preprocessing_version": p.preprocessing_version,
        "git_commit": lineage["git_commit"],
        "config_hash": p.config_hash,
        "model_fs_hz": p.model_cfg.fs_hz,
        "run_name": p.run_name,
        "epochs": epoch,
        "training_records": "normal only" if p.cfg.normal_only else "all",
    }
    if p.normal_labels_version is not None:
        tags[f"{ECG_LABELS}_version"] = p.normal_labels_version
    if "val_total" in final:
        tags["val_total"] = round(float(final["val_total"]), 5)
    if "val_inpainting_skill" in final:
        tags["inpainting_skill"] = round(float(final["val_inpainting_skill"]), 4)
    tags.update(score_tags)
    return register_model(uri, ENCODER_NAME, tags)
