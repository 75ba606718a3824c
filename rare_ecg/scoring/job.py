"""The export and score jobs: a validated config in, a summary dict out. Every bad input (unknown model or
alias, a malformed or empty cohort, a model whose rate or vocabulary does not fit the lake) raises
ValueError before any scoring work."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rare_ecg.archive.labels import canonical_vocabulary
from rare_ecg.config import ExportConfig, ScoreConfig, Settings
from rare_ecg.model.network import EcgModel
from rare_ecg.registry import ModelNotFound, load_model, resolve
from rare_ecg.scoring import onnx as onnx_io
from rare_ecg.scoring.cohort import parse_cohort
from rare_ecg.scoring.export import export_model, scoring_graph, thresholds
from rare_ecg.scoring.pipeline import ScoreOptions, ScoringModel, new_run_id, prepare, run_score
from rare_ecg.scoring.windows import QualityPolicy

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "@champion", "@challenger"


def resolve_model(uri: str, fallback_to_challenger: bool) -> str:
    """The concrete ``models:/name/version`` behind ``uri``; @champion falls back to @challenger only
    when the config says so."""
    try:
        name, version = resolve(uri)
    except ModelNotFound:
        if not (fallback_to_challenger and uri.endswith(CHAMPION)):
            raise
        fallback = uri.removesuffix(CHAMPION) + CHALLENGER
        log.warning("%s does not exist: falling back to %s (fallback_to_challenger)", uri, fallback)
        name, version = resolve(fallback)
    return f"models:/{name}/{version}"


def check_vocabulary(model: EcgModel, metadata: dict[str, Any]) -> None:
    labels = model.cfg.labels
    if not labels:
        raise ValueError(f"{metadata.get('model_uri')} has no label vocabulary: it is not a classifier")
    unknown = sorted(set(labels) - set(canonical_vocabulary()))
    if unknown:
        raise ValueError(
            f"{metadata.get('model_uri')}'s label vocabulary does not match the lake's canonical SCP-ECG "
            f"codes: {unknown} are not among them"
        )


def _mlflow(settings: Settings) -> None:
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)


def run_export_job(cfg: ExportConfig, settings: Settings) -> dict[str, Any]:
    _mlflow(settings)
    model, metadata = load_model(resolve_model(cfg.model, False))
    check_vocabulary(model, metadata)
    result = export_model(
        model,
        metadata,
        tracking_uri=settings.mlflow_tracking_uri,
        int8=cfg.int8,
        lake=cfg.lake or settings.lake,
        max_label_drop=cfg.max_label_auroc_drop,
        max_subgroup_drop=cfg.max_subgroup_auroc_drop,
    )
    return result.to_dict()


def scoring_model(model: EcgModel, metadata: dict[str, Any], settings: Settings) -> ScoringModel:
    """The version's exported graph (exported in fp32 now if it never was) and its facts."""
    name, version = str(metadata["registered_name"]), str(metadata["registered_version"])
    with tempfile.TemporaryDirectory(prefix="rare-ecg-score-") as tmp:
        found = scoring_graph(name, version, Path(tmp))
        if found is None:
            log.info("%s version %s was never exported: exporting it (fp32)", name, version)
            export_model(model, metadata, tracking_uri=settings.mlflow_tracking_uri)
            found = scoring_graph(name, version, Path(tmp))
        assert found is not None
        path, precision = found
        onnx_bytes = path.read_bytes()
    return ScoringModel(
        name=name,
        version=version,
        cfg=model.cfg,
        thresholds=thresholds(metadata, model.cfg.labels),
        precision=precision,
        onnx=onnx_bytes,
        metadata=metadata,
    )


def score_options(cfg: ScoreConfig, settings: Settings, fs_hz: int) -> ScoreOptions:
    return ScoreOptions(
        lake=cfg.lake or settings.lake,
        run_id=cfg.run_id or new_run_id(),
        cohort=parse_cohort(cfg.cohort),
        batch_size=cfg.batch_size,
        actors=cfg.actors,
        threads_per_actor=cfg.threads_per_actor,
        quality=QualityPolicy(
            fs_hz=fs_hz, min_leads=cfg.min_leads, min_signal_s=cfg.min_signal_s, skip_flags=cfg.skip_flags
        ),
        subgroup_metrics=cfg.subgroup_metrics,
        n_boot=cfg.n_boot,
    )


def run_score_job(
    cfg: ScoreConfig,
    settings: Settings,
    *,
    progress: Callable[[int, int, float], None] | None = None,
    before_commit: Callable[[str], None] | None = None,
    after_write: Callable[[list[str]], None] | None = None,
    start_ray: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """``start_ray`` joins or starts Ray once the inputs are known to be good (bad input fails first)."""
    parse_cohort(cfg.cohort)  # a malformed filter fails before MLflow is touched
    _mlflow(settings)
    model, metadata = load_model(resolve_model(cfg.model, cfg.fallback_to_challenger))
    check_vocabulary(model, metadata)
    opts = score_options(cfg, settings, model.cfg.fs_hz)
    probe = ScoringModel(
        name=str(metadata["registered_name"]),
        version=str(metadata["registered_version"]),
        cfg=model.cfg,
        thresholds=thresholds(metadata, model.cfg.labels),
        precision=onnx_io.PRECISION_FP32,
        onnx=b"",
    )
    versions, records = prepare(opts, probe)  # empty cohort, rate mismatch: before the export
    served = scoring_model(model, metadata, settings)
    if start_ray is not None:
        start_ray()
    summary = run_score(
        opts,
        served,
        versions=versions,
        records=records,
        progress=progress,
        before_commit=before_commit,
        after_write=after_write,
    )
    return summary.to_dict()
