"""Typed configuration: environment settings, and the job configs that YAML files under jobs/configs/ hold.

Each job config is a strict, frozen pydantic model (unknown keys are errors) with a `kind`, so a typo in a
scheduled job's YAML fails at load time with the offending key, not halfway through a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LAYOUTS = ("ptbxl", "mimic", "challenge", "wfdb")
Layout = Literal["ptbxl", "mimic", "challenge", "wfdb"]


class Settings(BaseSettings):
    """Where things live, from the environment (embedded defaults: local folder, sqlite, local Ray)."""

    model_config = SettingsConfigDict(extra="ignore")

    lake: str = Field(default="lake", validation_alias="RARE_ECG_LAKE")
    mlflow_tracking_uri: str = Field(default="sqlite:///mlflow.db", validation_alias="MLFLOW_TRACKING_URI")
    ray_address: str | None = Field(default=None, validation_alias="RAY_ADDRESS")


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(JobConfig):
    kind: Literal["ingest"] = "ingest"
    archive: Path | None = None  # None: the built-in example archive (20 real PTB-XL records)
    layout: Layout = "ptbxl"
    lake: str | None = None  # None: RARE_ECG_LAKE, else ./lake
    fs_hz: int | None = Field(default=None, description="native rate to read where an archive has several")
    source: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$"
    )  # archive name; default layout
    model_fs_hz: Literal[100, 500] = 100
    notch_hz: float | None = Field(default=None, gt=0)
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    batch_size: int = Field(default=64, ge=1, le=4096)
    workers: int | None = Field(default=None, ge=1)
    cpus_per_worker: float = Field(default=0.5, gt=0, le=64)

    @field_validator("fs_hz")
    @classmethod
    def _fs(cls, v: int | None) -> int | None:
        if v is not None and not 50 <= v <= 2000:
            raise ValueError(f"fs_hz {v} is outside 50-2000 Hz")
        return v


class PretrainConfig(JobConfig):
    """Stage 1 (METHOD.md) on Ray Train: self-supervised pretraining from the lake (rare_ecg.train.job)."""

    kind: Literal["pretrain"] = "pretrain"
    lake: str | None = None  # None: RARE_ECG_LAKE, else ./lake
    # Same name again: the run resumes from its last checkpoint. None: derived from this config and the
    # pinned table versions (so an identical re-run resumes, or finds the run done and adds nothing).
    run_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    storage_path: str | None = None  # Ray Train checkpoints; None: ./train-runs
    records_version: int | None = Field(default=None, ge=0)  # None: the latest version at start
    waveforms_version: int | None = Field(default=None, ge=0)
    split: Literal["train", "validation", "test"] = "train"  # pretraining leaves evaluation patients unseen
    validation_split: Literal["train", "validation", "test"] | None = "validation"
    model_fs_hz: Literal[100, 500] = 100  # must be the rate of the lake's ecg_waveforms
    d_model: int = Field(default=128, ge=8, le=1024)
    n_layers: int = Field(default=3, ge=1, le=24)
    n_heads: int = Field(default=4, ge=1, le=32)
    # other ModelConfig fields (mask ratios, visible_weight, beat_phase, ...); unknown names are errors
    model: dict[str, float | int | str | bool | None] = Field(default_factory=dict)
    epochs: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=2, le=4096)
    lr: float = Field(default=1e-3, gt=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int = 0
    global_weight: float = Field(default=1.0, ge=0)
    local_weight: float = Field(default=1.0, ge=0)
    trend_weight: float = Field(default=1.0, ge=0)
    attributes_weight: float = Field(default=1.0, ge=0)
    # train on the split's records labelled NORM only (ecg_labels at its latest version, pinned); the
    # validation split keeps every record, so the score is still chosen on normal vs abnormal
    normal_only: bool = False
    workers: int = Field(default=1, ge=1, le=512)
    cpus_per_worker: float = Field(default=1.0, gt=0, le=64)
    threads_per_worker: int | None = Field(default=None, ge=1, le=64)  # None: the worker's CPU share
    max_failures: int = Field(default=2, ge=1, le=100)  # worker-group restarts from the last checkpoint
    experiment: str = "rare-ecg-pretrain"
    register_model: bool = True  # register the encoder as rare-ecg-encoder


class FinetuneConfig(JobConfig):
    """Stage 2 (METHOD.md) on the same Ray Train harness: a classifier from the lake (rare_ecg.train.finetune)."""

    kind: Literal["finetune"] = "finetune"
    lake: str | None = None  # None: RARE_ECG_LAKE, else ./lake
    # models:/rare-ecg-encoder/<version> or @<alias>; None (and not from_scratch): the latest encoder version
    encoder: str | None = None
    from_scratch: bool = False  # the baseline: the same network from random weights
    run_name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")  # same name: resume
    storage_path: str | None = None  # Ray Train checkpoints; None: ./train-runs
    records_version: int | None = Field(default=None, ge=0)  # None: the latest version at start
    waveforms_version: int | None = Field(default=None, ge=0)
    labels_version: int | None = Field(default=None, ge=0)
    labels: tuple[str, ...] | None = None  # None: every canonical label with a training positive
    model_fs_hz: Literal[100, 500] = 100  # must be the lake's rate (and the encoder's)
    # from scratch only (an encoder brings its own sizes)
    d_model: int = Field(default=128, ge=8, le=1024)
    n_layers: int = Field(default=3, ge=1, le=24)
    n_heads: int = Field(default=4, ge=1, le=32)
    model: dict[str, float | int | str | bool | None] = Field(default_factory=dict)
    epochs: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=2, le=4096)
    lr: float = Field(default=3e-4, gt=0, le=1)
    weight_decay: float = Field(default=0.01, ge=0)
    seed: int = 0
    loss: Literal["asl", "bce"] = "asl"  # bce: the baseline's loss
    gamma_neg: float = Field(default=4.0, ge=0)
    gamma_pos: float = Field(default=1.0, ge=0)
    clip: float = Field(default=0.05, ge=0, lt=1)
    aux_weight: float = Field(default=0.1, ge=0)  # pretraining terms kept as auxiliaries
    rare_threshold: float = Field(default=0.01, gt=0, lt=1)  # training prevalence below which a label is rare
    min_common_positives: int = Field(default=10, ge=1)
    workers: int = Field(default=1, ge=1, le=512)
    cpus_per_worker: float = Field(default=1.0, gt=0, le=64)
    threads_per_worker: int | None = Field(default=None, ge=1, le=64)
    max_failures: int = Field(default=2, ge=1, le=100)
    experiment: str = "rare-ecg-finetune"
    register_model: bool = True  # register as rare-ecg-classifier
    alias: str = Field(default="challenger", pattern=r"^[A-Za-z0-9_-]{1,64}$")


class EvaluateConfig(JobConfig):
    """`rare-ecg evaluate`: a registered classifier on one split -> subgroup_metrics + MLflow."""

    kind: Literal["evaluate"] = "evaluate"
    lake: str | None = None  # None: RARE_ECG_LAKE, else ./lake
    model: str = "models:/rare-ecg-classifier@challenger"
    split: Literal["train", "validation", "test"] = "test"
    n_boot: int = Field(default=200, ge=1, le=100_000)  # patient-bootstrap resamples of the CIs
    seed: int = 0
    batch_size: int = Field(default=64, ge=1, le=4096)


class ExportConfig(JobConfig):
    """`rare-ecg export`: a registered classifier version -> ONNX in MLflow, linked to the version."""

    kind: Literal["export"] = "export"
    model: str = "models:/rare-ecg-classifier@champion"
    int8: bool = False  # quantise, and keep int8 only if the validation gate accepts it
    lake: str | None = None  # the validation split of the int8 gate; None: RARE_ECG_LAKE
    max_label_auroc_drop: float = Field(default=0.005, ge=0, le=1)
    max_subgroup_auroc_drop: float = Field(default=0.01, ge=0, le=1)


class ScoreConfig(JobConfig):
    """`rare-ecg score`: a cohort of the lake scored by one registered classifier version."""

    kind: Literal["score"] = "score"
    lake: str | None = None  # None: RARE_ECG_LAKE, else ./lake
    model: str = "models:/rare-ecg-classifier@champion"
    fallback_to_challenger: bool = False  # an alias @champion that does not exist -> @challenger
    cohort: str = "all"  # rare_ecg.scoring.cohort: all | source=..;from=..;to=..;patients=..;split=..
    run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,128}$")
    batch_size: int = Field(default=64, ge=1, le=4096)  # windows per ONNX Runtime call (benchmarks/score.py)
    actors: int | None = Field(default=None, ge=1)  # default: the cluster's CPUs / threads_per_actor
    threads_per_actor: int = Field(default=1, ge=1, le=64)  # ORT intra-op threads = the actor's CPU share
    min_leads: int = Field(default=6, ge=1, le=12)  # fewer usable leads: skipped (too_few_leads)
    min_signal_s: float = Field(default=5.0, ge=0)  # less real signal: skipped (too_short)
    skip_flags: tuple[str, ...] = ("nan_samples",)  # ecg_waveforms quality flags that skip a record
    subgroup_metrics: bool = True  # where the cohort has labels
    n_boot: int = Field(default=200, ge=1)


def load_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping, got {type(data).__name__}")
    return data
