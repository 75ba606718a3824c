"""`rare-ecg export`: a registered classifier version -> its inference graph in ONNX, logged to MLflow as
an ONNX model with an explicit tensor signature and linked to the version by tags:

- ``scoring.onnx_uri``: the logged ONNX model the scoring job serves for this version;
- ``scoring.precision``: fp32, or int8 when the validation gate (rare_ecg.scoring.gate) accepted it;
- ``scoring.export_run_id`` and ``scoring.int8_gate``: the export run, and the gate's verdict and reasons.

The scoring job reads those tags; a version never exported is exported (fp32) on first use.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import polars as pl

from rare_ecg.evaluation import Predictions, label_matrix
from rare_ecg.lake.schema import ECG_LABELS, ECG_WAVEFORMS
from rare_ecg.metrics import LabelSets, label_sets
from rare_ecg.model.network import EcgModel
from rare_ecg.scoring import onnx as onnx_io
from rare_ecg.scoring.cohort import CohortFilter, cohort_records, pin_versions, scan
from rare_ecg.scoring.gate import GateResult, int8_gate
from rare_ecg.scoring.runner import onnx_runner, score_rows
from rare_ecg.scoring.windows import QualityPolicy, skip_reason
from rare_ecg.train.splits import VALIDATION

log = logging.getLogger(__name__)

EXPERIMENT = "rare-ecg-export"
TAG_ONNX_URI = "scoring.onnx_uri"
TAG_PRECISION = "scoring.precision"
TAG_EXPORT_RUN = "scoring.export_run_id"
TAG_GATE = "scoring.int8_gate"
ONNX_FILE = "model.onnx"
WAVE_COLUMNS = (
    "record_id",
    "fs_hz",
    "n_windows",
    "n_samples",
    "valid_samples",
    "signal",
    "lead_mask",
    "quality_flags",
    "beat_positions",
)


@dataclass
class ExportResult:
    model_name: str
    model_version: str
    precision: str
    onnx_uri: str
    export_run_id: str
    gate: dict[str, Any] | None = None
    tensors: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def thresholds(metadata: dict[str, Any], labels: tuple[str, ...]) -> np.ndarray:
    """Per-label decision thresholds saved with the classifier (chosen on validation), else 0.5."""
    saved = metadata.get("thresholds") or {}
    if isinstance(saved, list):
        saved = dict(zip(labels, saved, strict=False))
    return np.asarray([float(saved.get(label, 0.5)) for label in labels], dtype=np.float32)


def model_label_sets(metadata: dict[str, Any], labels: tuple[str, ...], y: np.ndarray) -> LabelSets:
    """Rare and common labels as the classifier recorded them (its training prevalence), else from ``y``."""
    rare = metadata.get("rare_labels")
    if rare is not None:
        rare_set = tuple(x for x in labels if x in set(rare))
        common = tuple(x for x in labels if x not in set(rare))
        prevalence = {k: float(v) for k, v in (metadata.get("train_prevalence") or {}).items()}
        return LabelSets(rare=rare_set, common=common, excluded=(), prevalence=prevalence)
    return label_sets(y, labels, min_common_positives=1)


def validation_predictions(
    model: EcgModel, metadata: dict[str, Any], sessions: dict[str, Any], lake: str, batch_size: int = 64
) -> tuple[dict[str, Predictions], LabelSets]:
    """Probabilities of each session on the labelled validation records of the lake (single process)."""
    versions = pin_versions(lake)
    records = cohort_records(lake, CohortFilter(split=VALIDATION), versions)
    if ECG_LABELS not in versions or records.is_empty():
        raise ValueError(f"lake {lake} has no labelled validation records for the int8 gate")
    labels = model.cfg.labels
    labelled, y = label_matrix(
        scan(lake, ECG_LABELS, versions[ECG_LABELS]).collect(), records["record_id"].to_list(), labels
    )
    records = records.filter(pl.Series(labelled))
    y = y[labelled]
    waves = (
        scan(lake, ECG_WAVEFORMS, versions[ECG_WAVEFORMS])
        .select(WAVE_COLUMNS)
        .join(records.lazy().select("record_id"), on="record_id", how="semi")
        .collect()
    )
    policy = QualityPolicy(fs_hz=model.cfg.fs_hz)
    usable = [
        skip_reason(flags, np.asarray(mask), valid, fs, policy) is None
        for flags, mask, valid, fs in waves.select(
            "quality_flags", "lead_mask", "valid_samples", "fs_hz"
        ).rows()
    ]
    waves = waves.filter(pl.Series(usable)).sort("record_id")
    keep = records["record_id"].is_in(waves["record_id"].implode()).to_numpy()
    records, y = records.filter(pl.Series(keep)), y[keep]
    rows = waves.to_arrow()
    cut = thresholds(metadata, labels)
    out = {}
    for name, session in sessions.items():
        probs = score_rows(rows, model.cfg, onnx_runner(session), batch_size).probs
        out[name] = Predictions(
            labels=labels,
            y_true=y,
            y_prob=probs,
            y_pred=probs >= cut,
            sex=records["sex"].to_list(),
            age_years=records["age"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
            patient_ids=records["patient_key"].fill_null(records["record_id"]).to_numpy(),
        )
    return out, model_label_sets(metadata, labels, y)


def _experiment_id(tracking_uri: str) -> str:
    import mlflow

    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return str(exp.experiment_id)
    location = None
    if tracking_uri.startswith("sqlite:///"):
        # beside the database, never ./mlruns of whatever folder the job runs in
        location = str(Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts")
    return str(mlflow.create_experiment(EXPERIMENT, artifact_location=location))


def export_model(
    model: EcgModel,
    metadata: dict[str, Any],
    *,
    tracking_uri: str,
    int8: bool = False,
    lake: str | None = None,
    max_label_drop: float = 0.005,
    max_subgroup_drop: float = 0.01,
) -> ExportResult:
    """Export a loaded registered model (``registry.load_model``), gate int8 if asked, log and link it."""
    import mlflow
    from mlflow import MlflowClient

    name, version = str(metadata["registered_name"]), str(metadata["registered_version"])
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="rare-ecg-export-") as tmp:
        fp32 = onnx_io.export_fp32(model, Path(tmp) / "fp32.onnx")
        chosen, precision, gate = fp32, onnx_io.PRECISION_FP32, None
        if int8:
            if lake is None:
                raise ValueError("--int8 needs a lake (--lake or RARE_ECG_LAKE) for the validation gate")
            q8 = onnx_io.quantize_int8(fp32, Path(tmp) / "int8.onnx")
            gate = gate_int8(model, metadata, fp32, q8, lake, max_label_drop, max_subgroup_drop)
            if gate.accepted:
                chosen, precision = q8, onnx_io.PRECISION_INT8
            else:
                log.warning("int8 refused, keeping fp32: %s", "; ".join(gate.reasons))
        with mlflow.start_run(
            experiment_id=_experiment_id(tracking_uri), run_name=f"export-{name}-{version}"
        ) as run:
            mlflow.set_tags(
                {
                    "rare_ecg.job": "export",
                    "classifier": name,
                    "classifier_version": version,
                    "precision": precision,
                }
            )
            if gate is not None:
                mlflow.log_dict(gate.to_dict(), "int8_gate.json")
                mlflow.log_metrics(
                    {
                        k: v
                        for k, v in (
                            ("int8_max_label_auroc_drop", gate.max_label_drop),
                            ("int8_max_subgroup_auroc_drop", gate.max_subgroup_drop),
                            ("int8_max_prob_diff", gate.max_prob_diff),
                        )
                        if np.isfinite(v)
                    }
                )
            info = mlflow.onnx.log_model(
                onnx.load(str(chosen)),
                name="onnx",
                signature=onnx_io.mlflow_signature(chosen),
                pip_requirements=["onnxruntime", "numpy"],
                save_as_external_data=False,
            )
            tensors = onnx_io.tensor_specs(chosen)
        client = MlflowClient()
        tags = {
            TAG_ONNX_URI: str(info.model_uri),
            TAG_PRECISION: precision,
            TAG_EXPORT_RUN: run.info.run_id,
            TAG_GATE: "not requested"
            if gate is None
            else ("accepted" if gate.accepted else "refused: " + "; ".join(gate.reasons))[:4000],
        }
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    return ExportResult(
        model_name=name,
        model_version=version,
        precision=precision,
        onnx_uri=str(info.model_uri),
        export_run_id=run.info.run_id,
        gate=None if gate is None else gate.to_dict(),
        tensors=tensors,
    )


def gate_int8(
    model: EcgModel,
    metadata: dict[str, Any],
    fp32: Path,
    q8: Path,
    lake: str,
    max_label_drop: float,
    max_subgroup_drop: float,
) -> GateResult:
    sessions = {"fp32": onnx_io.open_session(fp32, 2), "int8": onnx_io.open_session(q8, 2)}
    try:
        preds, sets = validation_predictions(model, metadata, sessions, lake)
    except ValueError as err:
        return GateResult(False, [str(err)], 0, float("nan"), float("nan"), float("nan"))
    return int8_gate(preds["fp32"], preds["int8"].y_prob, sets, max_label_drop, max_subgroup_drop)


def scoring_graph(name: str, version: str, dst: Path) -> tuple[Path, str] | None:
    """The ONNX file exported for this version (downloaded into ``dst``) and its precision; None when the
    version was never exported."""
    import mlflow
    from mlflow import MlflowClient

    tags = MlflowClient().get_model_version(name, version).tags
    uri = tags.get(TAG_ONNX_URI)
    if not uri:
        return None
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))
    files = sorted(local.rglob("*.onnx"))
    if not files:
        raise ValueError(f"the export {uri} linked to {name} version {version} holds no .onnx file")
    return files[0], tags.get(TAG_PRECISION, onnx_io.PRECISION_FP32)
