"""Localization AUROC of the coarse anomaly maps against `ecg_annotations` (synthetic cohorts have them).

A map cell (lead, segment of map_segments per 10 s window, windows side by side) is abnormal when an
annotated span of that lead overlaps it; spans are at the native rate and are brought to the model rate.
Pooled over the split's annotated records, absent leads left out (rare_ecg.metrics.localization_auroc).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from rare_ecg.evaluation.predict import SplitPredictions
from rare_ecg.lake.schema import ECG_ANNOTATIONS, ECG_RECORDS
from rare_ecg.metrics import localization_auroc
from rare_ecg.model.config import ModelConfig
from rare_ecg.scoring.cohort import scan
from rare_ecg.signals.leads import CANONICAL_LEADS, normalize_lead_name


def annotation_truth(spans: pl.DataFrame, native_fs_hz: float, width: int, cfg: ModelConfig) -> np.ndarray:
    """(12, width) bool map cells overlapped by ``spans`` (lead, start_sample, end_sample at the native rate)."""
    truth = np.zeros((cfg.n_leads, width), dtype=bool)
    cell = cfg.n_samples / cfg.map_segments  # model-rate samples per map cell
    scale = cfg.fs_hz / native_fs_hz
    for lead, start, end in spans.select("lead", "start_sample", "end_sample").rows():
        name = normalize_lead_name(lead)
        if name is None:
            continue
        first = int(np.floor(start * scale / cell))
        last = int(np.ceil(end * scale / cell))
        truth[CANONICAL_LEADS.index(name), max(first, 0) : min(last, width)] = True
    return truth


def split_localization(
    lake: str, sp: SplitPredictions, cfg: ModelConfig, versions: dict[str, int]
) -> tuple[float, int, int]:
    """(localization AUROC, annotated records, annotated cells) of the split at the pinned ``versions``
    (ecg_annotations absent: no annotation); NaN where no record of the split is annotated."""
    if ECG_ANNOTATIONS not in versions:
        return float("nan"), 0, 0
    ids = sp.record_ids
    spans = (
        scan(lake, ECG_ANNOTATIONS, versions[ECG_ANNOTATIONS])
        .filter(pl.col("record_id").is_in(ids))
        .select("record_id", "lead", "start_sample", "end_sample")
        .collect()
    )
    if spans.is_empty():
        return float("nan"), 0, 0
    fs = dict(
        scan(lake, ECG_RECORDS)
        .filter(pl.col("record_id").is_in(ids))
        .select("record_id", "fs_hz")
        .collect()
        .rows()
    )
    maps, truths, valid = [], [], []
    for i, (rid, group) in enumerate((r, spans.filter(pl.col("record_id") == r)) for r in ids):
        if group.is_empty():
            continue
        amap = np.asarray(sp.anomaly_maps[i])
        truth = annotation_truth(group, float(fs[rid]), amap.shape[1], cfg)
        maps.append(amap.ravel())
        truths.append(truth.ravel())
        valid.append(np.repeat(sp.lead_masks[i], amap.shape[1]))
    m, t, v = np.concatenate(maps), np.concatenate(truths), np.concatenate(valid)
    return localization_auroc(m, t, v), len(maps), int(t[v].sum())
