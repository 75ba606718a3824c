"""The fine-tuning job on the driver (stage 2): check every input, start from a registered encoder or from
scratch, run the Ray Train harness of pretraining in its fine-tuning mode, keep the epoch that did best on
validation, choose per-label thresholds on validation, and register the classifier with its metadata.

The label vocabulary is every canonical label with a positive among the training split's labelled
records (or the config's list); a record without any mapped label is unknown and stays out.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from rare_ecg.archive.labels import canonical_vocabulary
from rare_ecg.config import FinetuneConfig, Settings
from rare_ecg.evaluation.labels import label_matrix
from rare_ecg.evaluation.predict import choose_thresholds, split_predictions
from rare_ecg.lake.files import parquet_files_dataset
from rare_ecg.lake.paths import normalize_lake, storage_options, table_uri
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_WAVEFORMS
from rare_ecg.metrics import label_sets
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel, with_labels
from rare_ecg.registry import CLASSIFIER_NAME, ENCODER_NAME, load_model, log_model, register_model, set_alias
from rare_ecg.registry.tracking import find_run, use_experiment
from rare_ecg.runtime import cluster_cpus
from rare_ecg.train.data import (
    ATTRIBUTE_COLUMNS,
    WAVEFORM_COLUMNS,
    LakeInputError,
    LakeSnapshot,
    open_snapshot,
    split_plan,
)
from rare_ecg.train.data import waveform_rates as lake_rates
from rare_ecg.train.finetune_loop import FINETUNE, _labelled_task, finetune_loop_per_worker
from rare_ecg.train.job import DATA_CPUS, RUN_NAME_TAG, _log_inputs, git_commit
from rare_ecg.train.loop import (
    TRAIN_DATASET,
    VALIDATION_DATASET,
    LoopSpec,
    trained_or_finished,
)
from rare_ecg.train.scoring_choice import attach_score
from rare_ecg.train.splits import TEST, TRAIN, VALIDATION

EPOCH_METRICS = (
    "train_total",
    "train_classification",
    "val_classification",
    "val_macro_auroc",
    "samples_per_s",
    "epoch_seconds",
)


@dataclass(frozen=True)
class FinetunePlan:
    cfg: FinetuneConfig
    snapshot: LakeSnapshot  # ecg_records, ecg_waveforms and ecg_labels pinned
    plan: pl.DataFrame  # labelled records: record_id, split, n_windows, attributes
    labels: tuple[str, ...]
    targets: dict[str, np.ndarray]  # split -> (records of the split in plan order, L) uint8
    model_cfg: ModelConfig
    init_state: dict[str, Any]
    encoder: dict[str, Any] | None  # name, version, uri of the starting encoder; None from scratch
    spec: LoopSpec
    run_name: str
    storage_path: str
    config_hash: str
    preprocessing_version: str
    records: dict[str, int]  # split -> labelled records
    windows: dict[str, int]  # split -> 10 s windows


def _hash(cfg: FinetuneConfig, content_id: str, encoder: dict[str, Any] | None) -> str:
    """The job's identity: its config, the encoder, and the lake content it reads (not the version numbers:
    an idempotent re-ingest moves them without changing the data, and must not retrain)."""
    payload = cfg.model_dump(
        mode="json", exclude={"run_name", "storage_path", "register_model", "experiment"}
    )
    payload["lake_content"] = content_id
    payload["encoder_version"] = encoder and encoder["version"]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _latest_encoder() -> str:
    from mlflow import MlflowClient

    versions = MlflowClient().search_model_versions(f"name = '{ENCODER_NAME}'")
    if not versions:
        raise LakeInputError(
            f"no registered {ENCODER_NAME}: run `rare-ecg pretrain` first, pass --encoder, or --from-scratch"
        )
    return f"models:/{ENCODER_NAME}/{max(int(v.version) for v in versions)}"


def _labels_version(lake: str, wanted: int | None) -> int:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        latest = DeltaTable(table_uri(lake, ECG_LABELS), storage_options=storage_options()).version()
    except TableNotFoundError:
        raise LakeInputError(f"the lake {lake} has no {ECG_LABELS} table: fine-tuning needs labels") from None
    version = latest if wanted is None else wanted
    if not 0 <= version <= latest:
        raise LakeInputError(f"{ECG_LABELS} has no version {version}; versions 0-{latest} exist")
    return version


def vocabulary(
    y_train_all: np.ndarray, candidates: list[str], wanted: tuple[str, ...] | None
) -> tuple[str, ...]:
    """The classifier's labels: ``wanted`` (each must be canonical and have a training positive), else
    every canonical label with a training positive, in canonical order."""
    positives = dict(zip(candidates, y_train_all.sum(0).tolist(), strict=True))
    if wanted is None:
        return tuple(label for label in candidates if positives[label] > 0)
    unknown = [x for x in wanted if x not in positives]
    if unknown:
        raise LakeInputError(
            f"labels {unknown} are not canonical SCP-ECG codes (the lake's vocabulary: "
            f"{len(candidates)} codes, e.g. {candidates[:5]})"
        )
    absent = [x for x in wanted if positives[x] == 0]
    if absent:
        raise LakeInputError(f"labels {absent} have no positive in the training split; drop them from labels")
    return tuple(wanted)


def _starting_model(
    cfg: FinetuneConfig, labels: tuple[str, ...], rates: list[int]
) -> tuple[EcgModel, dict | None]:
    import torch

    if cfg.from_scratch and cfg.encoder is not None:
        raise LakeInputError("give either an encoder or from_scratch, not both")
    if cfg.from_scratch:
        try:
            model_cfg = ModelConfig.from_dict(
                {
                    **cfg.model,
                    "fs_hz": cfg.model_fs_hz,
                    "d_model": cfg.d_model,
                    "n_layers": cfg.n_layers,
                    "n_heads": cfg.n_heads,
                    "labels": labels,
                }
            )
        except TypeError as err:
            raise LakeInputError(f"model: {err}; known fields: {sorted(ModelConfig().to_dict())}") from None
        torch.manual_seed(cfg.seed)
        return EcgModel(model_cfg), None
    uri = cfg.encoder or _latest_encoder()
    encoder, meta = load_model(uri)  # ModelNotFound (a ValueError) for an unknown reference
    if rates != [encoder.cfg.fs_hz]:
        raise LakeInputError(
            f"encoder {uri} (version {meta['registered_version']}) was trained at {encoder.cfg.fs_hz} Hz; "
            f"the lake's ecg_waveforms are at {rates} Hz"
        )
    torch.manual_seed(cfg.seed)  # the new classifier's initial weights
    info = {"name": meta["registered_name"], "version": meta["registered_version"], "uri": uri}
    return with_labels(encoder, labels), info


def plan_finetuning(cfg: FinetuneConfig, settings: Settings) -> FinetunePlan:
    """Every check of the job's inputs; raises a ValueError with a one-line reason before any worker.
    Starts Ray (or joins RAY_ADDRESS) when it is not running, once the lake and model checks pass."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    lake = normalize_lake(cfg.lake or settings.lake)
    versions = {
        t: v
        for t, v in ((ECG_RECORDS, cfg.records_version), (ECG_WAVEFORMS, cfg.waveforms_version))
        if v is not None
    }
    base = open_snapshot(lake, versions)
    snapshot = LakeSnapshot(lake, {**base.versions, ECG_LABELS: _labels_version(lake, cfg.labels_version)})
    rates = lake_rates(snapshot)
    if cfg.from_scratch and rates != [cfg.model_fs_hz]:
        raise LakeInputError(
            f"model_fs_hz={cfg.model_fs_hz} does not match the lake's ecg_waveforms, stored at {rates} Hz"
        )
    plan = split_plan(snapshot)
    ecg_labels = snapshot.read(ECG_LABELS, ["record_id", "label"])
    candidates = canonical_vocabulary()
    labelled, y_all = label_matrix(ecg_labels, plan["record_id"].to_list(), candidates)
    plan, y_all = plan.filter(pl.Series(labelled)), y_all[labelled]
    in_split = {s: (plan["split"] == s).to_numpy() for s in (TRAIN, VALIDATION, TEST)}
    if not in_split[TRAIN].any():
        raise LakeInputError(
            f"the train split of {lake} is empty: no labelled record with a waveform "
            f"({int(labelled.size)} records with waveforms, {int(labelled.sum())} labelled)"
        )
    if not y_all[in_split[TRAIN]].any():
        raise LakeInputError(f"the train split of {lake} has no positive of any canonical label")
    if not in_split[VALIDATION].any():
        raise LakeInputError(
            f"the validation split of {lake} has no labelled record: model selection and thresholds need it"
        )
    labels = vocabulary(y_all[in_split[TRAIN]], candidates, cfg.labels)
    cols = [candidates.index(x) for x in labels]
    targets = {s: y_all[m][:, cols] for s, m in in_split.items()}
    model, encoder = _starting_model(cfg, labels, rates)
    cpus = cluster_cpus(settings)  # Ray starts here, once every input above is known good
    if cfg.workers * cfg.cpus_per_worker + DATA_CPUS > cpus:
        raise LakeInputError(
            f"{cfg.workers} workers x {cfg.cpus_per_worker} CPUs (+{DATA_CPUS} for data feeding) do not fit "
            f"the cluster's {cpus:g} CPUs; lower workers or cpus_per_worker"
        )
    hashed = _hash(cfg, snapshot.content_id(), encoder)
    pp = snapshot.read(ECG_WAVEFORMS, ["preprocessing_version"])["preprocessing_version"].unique().to_list()
    spec = LoopSpec(
        mode=FINETUNE,
        model=model.cfg.to_dict(),
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        seed=cfg.seed,
        weights={
            "aux_weight": cfg.aux_weight,
            "bce": float(cfg.loss == "bce"),
            "gamma_neg": cfg.gamma_neg,
            "gamma_pos": cfg.gamma_pos,
            "clip": cfg.clip,
        },
        threads=cfg.threads_per_worker or max(1, math.floor(cfg.cpus_per_worker)),
        validate=True,
    )
    counts = plan.group_by("split").agg(pl.len(), pl.col("n_windows").sum())
    return FinetunePlan(
        cfg=cfg,
        snapshot=snapshot,
        plan=plan,
        labels=labels,
        targets=targets,
        model_cfg=model.cfg,
        init_state=model.state_dict(),
        encoder=encoder,
        spec=spec,
        run_name=cfg.run_name or f"finetune-{hashed}",
        storage_path=str(Path(cfg.storage_path or "train-runs").expanduser().resolve()),
        config_hash=hashed,
        preprocessing_version=",".join(sorted(pp)),
        records={s: int(n) for s, n, _ in counts.rows()},
        windows={s: int(w) for s, _, w in counts.rows()},
    )


def _dataset(p: FinetunePlan, split: str, read_cpus: float = 0.25) -> Any:
    """The windows of ``split``'s labelled records with their targets, streamed by Ray Data."""
    import ray

    attributes = p.plan.filter(pl.col("split") == split).select("record_id", *ATTRIBUTE_COLUMNS).to_arrow()
    attributes = attributes.set_column(0, "record_id", pc.cast(attributes["record_id"], pa.string()))
    task = partial(
        _labelled_task,
        attributes_ref=ray.put(attributes),
        targets_ref=ray.put(p.targets[split]),
        n_leads=p.model_cfg.n_leads,
        window=p.model_cfg.n_samples,
    )
    return parquet_files_dataset(
        p.snapshot.files(ECG_WAVEFORMS), WAVEFORM_COLUMNS, num_cpus=read_cpus
    ).map_batches(task, batch_format="pyarrow", num_cpus=read_cpus)


def _trainer(p: FinetunePlan, progress: Any) -> Any:
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cfg = p.cfg
    return TorchTrainer(
        finetune_loop_per_worker,
        train_loop_config={"spec": p.spec.to_dict(), "init_state": p.init_state, "progress": progress},
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
        datasets={TRAIN_DATASET: _dataset(p, TRAIN), VALIDATION_DATASET: _dataset(p, VALIDATION)},
        dataset_config=DataConfig(datasets_to_split="all"),
    )


def epoch_metrics_for_mlflow(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in EPOCH_METRICS if k in metrics and math.isfinite(float(metrics[k]))}


def _fit(p: FinetunePlan, on_epoch: Callable[[dict[str, Any]], None] | None) -> Any:
    """The trainer in a thread; meanwhile every epoch the workers report is logged as it arrives."""
    import mlflow
    from ray.util.queue import Empty, Queue

    progress = Queue(actor_options={"num_cpus": 0})
    outcome: dict[str, Any] = {}

    def fit() -> None:
        try:
            outcome["result"] = _trainer(p, progress).fit()
        except BaseException as err:  # handed to the caller below
            outcome["error"] = err

    thread = threading.Thread(target=fit, name="rare-ecg-finetune", daemon=True)
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


def _registered(run_id: str, best_epoch: int, epochs: int) -> str | None:
    from mlflow import MlflowClient

    for mv in MlflowClient().search_model_versions(f"name = '{CLASSIFIER_NAME}' and run_id = '{run_id}'"):
        if mv.tags.get("epochs") == str(epochs) and mv.tags.get("best_epoch") == str(best_epoch):
            return str(mv.version)
    return None


def classifier_metadata(
    p: FinetunePlan, thresholds: np.ndarray, best: dict[str, Any], epochs: int, val_positives: np.ndarray
) -> dict[str, Any]:
    """What travels with the registered classifier (registry metadata.json; scoring reads it)."""
    sets = label_sets(p.targets[TRAIN], p.labels, p.cfg.rare_threshold, p.cfg.min_common_positives)
    return {
        "kind": "classifier",
        "labels": list(p.labels),
        "thresholds": {x: round(float(t), 6) for x, t in zip(p.labels, thresholds, strict=True)},
        "threshold_rule": "max F1 on the validation split; 0.5 where validation has no positive",
        "labels_without_validation_positives": [
            x for x, k in zip(p.labels, val_positives, strict=True) if k == 0
        ],
        "rare_labels": list(sets.rare),
        "common_labels": list(sets.common),
        "excluded_labels": list(sets.excluded),
        "rare_threshold": p.cfg.rare_threshold,
        "train_prevalence": {x: round(v, 6) for x, v in sets.prevalence.items()},
        "train_positives": dict(zip(p.labels, p.targets[TRAIN].sum(0).astype(int).tolist(), strict=True)),
        "preprocessing_version": p.preprocessing_version,
        "model_fs_hz": p.model_cfg.fs_hz,
        "encoder": p.encoder,
        "encoder_version": p.encoder["version"] if p.encoder else None,
        "from_scratch": p.encoder is None,
        "loss": p.cfg.loss,
        "lake": p.snapshot.lake,
        "table_versions": p.snapshot.versions,
        "records": p.records,
        "run_name": p.run_name,
        "config_hash": p.config_hash,
        "git_commit": git_commit(),
        "epochs": epochs,
        "best_epoch": int(best["epoch"]),
        "selection_score": float(best["score"]),
    }


def run_finetune_job(
    cfg: FinetuneConfig, settings: Settings, on_epoch: Callable[[dict[str, Any]], None] | None = None
) -> dict[str, Any]:
    """Fine-tune a classifier from the lake; returns the job's summary (the CLI's JSON line).

    Every input is checked first (`plan_finetuning`, which starts Ray when it is not running)."""
    import mlflow

    started = time.perf_counter()
    p = plan_finetuning(cfg, settings)
    use_experiment(settings.mlflow_tracking_uri, cfg.experiment)
    existing = find_run(RUN_NAME_TAG, p.run_name)
    with mlflow.start_run(run_id=existing, run_name=None if existing else p.run_name) as run:
        if existing is None:
            mlflow.set_tags(
                {
                    RUN_NAME_TAG: p.run_name,
                    "config_hash": p.config_hash,
                    "git_commit": git_commit(),
                    "encoder_version": str(p.encoder["version"]) if p.encoder else "scratch",
                }
            )
            params = {
                k: json.dumps(v) if isinstance(v, (dict, list, tuple)) else v
                for k, v in cfg.model_dump(mode="json").items()
            }
            params.update(
                {"n_labels": len(p.labels), **{f"{t}_version": v for t, v in p.snapshot.versions.items()}}
            )
            mlflow.log_params(params)
            _log_inputs(p.snapshot)
        checkpoint, state = trained_or_finished(
            p.storage_path, p.run_name, p.cfg.epochs, existing is not None, lambda: _fit(p, on_epoch)
        )
        best, epochs = state["best"], int(state["epoch"])
        model = EcgModel(p.model_cfg)
        model.load_state_dict(best["model"])
        model.eval()
        # the knn references in the fine-tuned embedding; the encoder's record-score choice is kept
        model, score_tags = attach_score(model, p.snapshot, p.plan, choose=False, seed=cfg.seed)
        val = split_predictions(p.snapshot.lake, VALIDATION, model, p.snapshot.versions)
        thresholds = choose_thresholds(val.predictions.y_true, val.predictions.y_prob)
        metadata = classifier_metadata(p, thresholds, best, epochs, val.predictions.y_true.sum(0))
        version = None
        if cfg.register_model:
            version = _registered(run.info.run_id, int(best["epoch"]), epochs)
            if version is None:
                version = _register(p, model, metadata, score_tags)
            set_alias(CLASSIFIER_NAME, cfg.alias, version)
    history: list[dict[str, Any]] = state["history"]
    return {
        "run_id": run.info.run_id,
        "run_name": p.run_name,
        "model_name": CLASSIFIER_NAME if cfg.register_model else None,
        "model_version": version,
        "model_uri": f"models:/{CLASSIFIER_NAME}/{version}" if version else None,
        "alias": cfg.alias if version else None,
        "encoder": p.encoder,
        "loss": cfg.loss,
        "labels": len(p.labels),
        "rare_labels": metadata["rare_labels"],
        "lake": p.snapshot.lake,
        "table_versions": p.snapshot.versions,
        "records": p.records,
        "windows": p.windows,
        "epochs": epochs,
        "best_epoch": int(best["epoch"]),
        "resumed_from_epoch": int(history[-1]["resumed_from_epoch"]) if history else 0,
        "final": {k: round(v, 5) for k, v in epoch_metrics_for_mlflow(history[-1]).items()},
        "workers": cfg.workers,
        "checkpoint": checkpoint,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _register(p: FinetunePlan, model: EcgModel, metadata: dict[str, Any], score_tags: dict[str, Any]) -> str:
    uri = log_model(model, metadata)
    tags: dict[str, Any] = {
        "lake": p.snapshot.lake,
        **{f"{t}_version": v for t, v in p.snapshot.versions.items()},
        "preprocessing_version": p.preprocessing_version,
        "model_fs_hz": p.model_cfg.fs_hz,
        "encoder_version": metadata["encoder_version"] or "scratch",
        "loss": p.cfg.loss,
        "n_labels": len(p.labels),
        "rare_labels": ",".join(metadata["rare_labels"]),
        "git_commit": metadata["git_commit"],
        "config_hash": p.config_hash,
        "run_name": p.run_name,
        "epochs": metadata["epochs"],
        "best_epoch": metadata["best_epoch"],
        **score_tags,
    }
    return register_model(uri, CLASSIFIER_NAME, tags)


def epoch_line(m: dict[str, Any]) -> str:
    val = (
        f"; val loss {m['val_classification']:.4f} macro AUROC {m['val_macro_auroc']:.3f}"
        if "val_classification" in m
        else ""
    )
    return (
        f"finetune: epoch {m['epoch']}/{m['epochs']} train loss {m['train_total']:.4f} "
        f"(classification {m['train_classification']:.4f}){val}; best epoch {m['best_epoch']}; "
        f"{m['samples_per_s']:.1f} samples/s; {m['epoch_seconds']:.0f} s"
    )


def summary_line(s: dict[str, Any]) -> str:
    model = (
        f"registered {s['model_name']} version {s['model_version']} @{s['alias']}"
        if s["model_version"]
        else "not registered"
    )
    start = f"encoder {s['encoder']['uri']} (v{s['encoder']['version']})" if s["encoder"] else "from scratch"
    return (
        f"finetune {s['run_name']}: {start}, {s['loss']}, {s['labels']} labels ({len(s['rare_labels'])} rare); "
        f"{s['epochs']} epochs, best {s['best_epoch']}; records {s['records']}; {model}; {s['seconds']:.0f} s"
    )
