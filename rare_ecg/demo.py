"""`rare-ecg demo`: the whole pipeline on embedded defaults, everything kept under one folder.

It ingests the built-in example archive (20 real PTB-XL records) and a generated synthetic cohort (with
rare anomalies and ground-truth masks) into WORKDIR/lake, pretrains and registers the encoder, fine-tunes
and evaluates a classifier, then scores the whole lake with it; re-running it adds nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import polars as pl

from rare_ecg.config import IngestConfig, PretrainConfig, Settings
from rare_ecg.ingest.job import run_ingest_job
from rare_ecg.lake.schema import ECG_ANNOTATIONS, ECG_LABELS, ECG_RECORDS, ECG_REJECTS, ECG_WAVEFORMS
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig

log = logging.getLogger(__name__)

DEMO_PATIENTS = 60
DEMO_SEED = 2026
# Pretraining sized for about a minute on 2 cores: a small network, a few epochs over the demo lake.
DEMO_PRETRAIN: dict[str, Any] = {"d_model": 64, "n_layers": 2, "n_heads": 4, "epochs": 3, "batch_size": 16}


def _table_rows(lake: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in (ECG_RECORDS, ECG_LABELS, ECG_ANNOTATIONS, ECG_WAVEFORMS, ECG_REJECTS):
        path = lake / table
        out[table] = pl.scan_delta(str(path)).select(pl.len()).collect().item() if path.exists() else 0
    return out


def run_demo(workdir: Path) -> dict[str, Any]:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    lake = workdir / "lake"
    settings = Settings.model_validate(
        {"RARE_ECG_LAKE": str(lake), "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    )
    log.info("demo 1/4: ingesting the built-in example archive (20 real PTB-XL records) into %s", lake)
    example = run_ingest_job(IngestConfig(layout="ptbxl", fs_hz=500, lake=str(lake)), settings)

    archive = workdir / "synthetic-archive"
    log.info("demo 2/4: generating a synthetic cohort of %d patients in %s", DEMO_PATIENTS, archive)
    synth = generate_archive(
        SynthConfig(
            out=archive, patients=DEMO_PATIENTS, seed=DEMO_SEED, fs_hz=500, layout="ptbxl", workers=2
        ),
        overwrite=True,  # same seed, same bytes: re-ingesting it adds nothing
    )
    log.info("demo 3/4: ingesting the synthetic cohort")
    # its own source name: its paths (records500/00000/00001_hr...) are the example archive's paths too
    cohort = run_ingest_job(
        IngestConfig(archive=archive, layout="ptbxl", fs_hz=500, lake=str(lake), source="synthetic"), settings
    )
    log.info("demo 4/4: pretraining the encoder on Ray Train (stage 1) and registering it in MLflow")
    from rare_ecg.train.job import run_pretrain_job
    from rare_ecg.train.progress import print_epoch

    pretrain = run_pretrain_job(
        PretrainConfig(lake=str(lake), storage_path=str(workdir / "train-runs"), **DEMO_PRETRAIN),
        settings,
        on_epoch=print_epoch,
    )
    log.info("demo stage 2: fine-tuning the classifier from the encoder, evaluating it on the test split")
    from rare_ecg.demo_stage2 import finetune_and_evaluate, score_lake

    stage2 = finetune_and_evaluate(lake, workdir, settings, pretrain["model_uri"])
    log.info("demo scoring: exporting the classifier to ONNX and scoring the whole demo lake")
    scoring = score_lake(lake, settings, stage2["classifier"]["model_uri"])
    return {
        "workdir": str(workdir),
        "lake": str(lake),
        "tables": _table_rows(lake),
        "ingest_example": {k: example[k] for k in ("run_id", "ingested", "rejected", "skipped_existing")},
        "synthetic_records": synth.get("records"),
        "ingest_synthetic": {
            k: cohort[k] for k in ("run_id", "ingested", "rejected", "skipped_existing", "annotations")
        },
        "labels_in_synthetic_cohort": cohort["label_counts"],
        "encoder": {
            k: pretrain[k]
            for k in ("model_uri", "model_version", "run_id", "run_name", "epochs", "table_versions", "final")
        },
        **stage2,  # classifier; evaluation: rare / common AUROC, largest subgroup gap with n
        "scoring": scoring,
    }
