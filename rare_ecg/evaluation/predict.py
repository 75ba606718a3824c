"""A registered classifier over one split of the lake: the split's labelled records, scored the way the
scoring job scores them (same quality rules, same 10 s windows, same per-record aggregation), with their
targets in the model's label order. Used to choose thresholds on validation (fine-tuning) and to evaluate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from rare_ecg.evaluation.labels import label_matrix
from rare_ecg.evaluation.metrics_rows import Predictions
from rare_ecg.lake.schema import ECG_LABELS, ECG_WAVEFORMS
from rare_ecg.model.network import EcgModel
from rare_ecg.scoring.cohort import CohortFilter, cohort_records, scan
from rare_ecg.scoring.export import WAVE_COLUMNS
from rare_ecg.scoring.runner import score_rows, torch_runner
from rare_ecg.scoring.windows import QualityPolicy, skip_reason


class SplitInputError(ValueError):
    """The split cannot be evaluated (no records, no labels, no positives, ...)."""


@dataclass(frozen=True)
class SplitPredictions:
    predictions: Predictions
    record_ids: list[str]
    age_pred: np.ndarray  # (n,) years
    sex_female_prob: np.ndarray  # (n,)
    anomaly_maps: list[np.ndarray]  # per record (12, kept windows x map segments), windows side by side
    lead_masks: np.ndarray  # (n, 12) bool
    n_records: int  # records of the split with a waveform
    n_unlabelled: int  # left out: no mapped label at all (unknown, not negative)
    skipped_by_reason: dict[str, int]  # left out by the scoring job's quality rules


def split_predictions(
    lake: str,
    split: str,
    model: EcgModel,
    versions: dict[str, int],
    thresholds: np.ndarray | None = None,
    batch_size: int = 64,
) -> SplitPredictions:
    """Score ``split``'s labelled records (tables at ``versions``) with ``model`` (torch, one process).

    Raises SplitInputError for an empty split and for a split whose records hold no positive of any
    label in the model's vocabulary."""
    labels = model.cfg.labels
    if not labels:
        raise SplitInputError("the model has no label vocabulary: it is not a classifier")
    if ECG_LABELS not in versions:
        raise SplitInputError(f"lake {lake} has no {ECG_LABELS} table: nothing to evaluate against")
    records = cohort_records(lake, CohortFilter(split=split), versions)
    waves = (
        scan(lake, ECG_WAVEFORMS, versions[ECG_WAVEFORMS])
        .select(WAVE_COLUMNS)
        .join(records.lazy().select("record_id"), on="record_id", how="semi")
        .collect()
        .sort("record_id")
    )
    if waves.is_empty():
        raise SplitInputError(f"the {split} split of {lake} is empty (no record with a waveform)")
    ecg_labels = scan(lake, ECG_LABELS, versions[ECG_LABELS]).select("record_id", "label").collect()
    labelled, _ = label_matrix(ecg_labels, waves["record_id"].to_list(), labels)
    policy = QualityPolicy(fs_hz=model.cfg.fs_hz)
    reasons = [
        skip_reason(flags, np.asarray(mask), valid, fs, policy)
        for flags, mask, valid, fs in waves.select(
            "quality_flags", "lead_mask", "valid_samples", "fs_hz"
        ).rows()
    ]
    skipped = Counter(r for r, keep in zip(reasons, labelled, strict=True) if keep and r is not None)
    usable = np.asarray([r is None for r in reasons]) & labelled
    waves = waves.filter(pl.Series(usable))
    if waves.is_empty():
        raise SplitInputError(
            f"the {split} split of {lake} has no labelled record the model can score "
            f"({len(reasons)} records, {int((~labelled).sum())} unlabelled, skipped {dict(skipped)})"
        )
    ids = waves["record_id"].to_list()
    _, y = label_matrix(ecg_labels, ids, labels)
    if not y.any():
        raise SplitInputError(
            f"the {split} split of {lake} has no positive of any of the model's {len(labels)} labels "
            f"({len(ids)} labelled records)"
        )
    meta = pl.DataFrame({"record_id": ids}).join(records, on="record_id", how="left")
    out = score_rows(waves.to_arrow(), model.cfg, torch_runner(model), batch_size)
    cut = np.full(len(labels), 0.5, np.float32) if thresholds is None else np.asarray(thresholds, np.float32)
    pred = Predictions(
        labels=tuple(labels),
        y_true=y,
        y_prob=out.probs,
        y_pred=out.probs >= cut,
        sex=meta["sex"].to_list(),
        age_years=meta["age"].cast(pl.Float64).fill_null(float("nan")).to_numpy(),
        patient_ids=meta["patient_key"].fill_null(meta["record_id"]).to_numpy(),
    )
    return SplitPredictions(
        predictions=pred,
        record_ids=ids,
        age_pred=out.age,
        sex_female_prob=out.sex_female_prob,
        anomaly_maps=out.anomaly_map,
        lead_masks=np.asarray(waves["lead_mask"].to_list(), dtype=bool).reshape(len(ids), -1),
        n_records=len(reasons),
        n_unlabelled=int((~labelled).sum()),
        skipped_by_reason=dict(skipped),
    )


def choose_thresholds(y_true: np.ndarray, y_prob: np.ndarray, default: float = 0.5) -> np.ndarray:
    """Per label, the probability cut that maximises F1 on (validation) targets; ``default`` for a label
    without positives there (nothing to choose from)."""
    y = np.asarray(y_true).astype(bool)
    p = np.asarray(y_prob, dtype=np.float64)
    out = np.full(y.shape[1], default, dtype=np.float64)
    for j in range(y.shape[1]):
        n_pos = int(y[:, j].sum())
        if n_pos == 0:
            continue
        order = np.argsort(-p[:, j], kind="stable")
        scores, hits = p[order, j], y[order, j]
        tp = np.cumsum(hits)
        k = np.arange(1, len(scores) + 1)
        f1 = 2 * tp / (k + n_pos)
        last = np.r_[scores[1:] != scores[:-1], True]  # a cut can only fall between distinct scores
        best = int(np.argmax(np.where(last, f1, -1.0)))
        out[j] = float(scores[best])
    return out
