"""Choosing the record score on validation, never on test, and computing every candidate for records.

``record_candidates`` runs the anomaly map over records and returns every candidate's score;
``choose_record_score`` picks the label-free default (an ECG-only candidate) by validation AUROC of
normal vs abnormal records, reading only the rows marked "validation".
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from rare_ecg.metrics.ranking import auroc
from rare_ecg.model.anomaly import all_scores, anomaly_map
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel
from rare_ecg.model.scores import ECG_ONLY
from rare_ecg.model.training import Batch

VALIDATION = "validation"


@torch.no_grad()
def record_candidates(model: EcgModel, data: Batch, batch_size: int = 32) -> dict[str, np.ndarray]:
    """Every record-score candidate (rare_ecg.model.scores) for each record of ``data``; ``knn`` where
    the model carries reference embeddings, ``age_gap`` where ``data.age`` is given."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(data), batch_size):
        rows = data.subset(np.arange(start, min(len(data), start + batch_size)))
        x, lead_mask, beat_start, phase, neighbours = rows.inputs(model.cfg).torch()
        amap = anomaly_map(model, x, lead_mask, beat_start, phase, neighbours)
        age = None if rows.age is None else torch.from_numpy(np.asarray(rows.age, dtype=np.float32))
        for name, value in all_scores(amap, model, age).items():
            parts.setdefault(name, []).append(value.numpy())
    model.train(was_training)
    return {name: np.concatenate(v) for name, v in parts.items()}


def choose_record_score(
    candidates: Mapping[str, np.ndarray],
    abnormal: np.ndarray,
    split: np.ndarray,
    allowed: tuple[str, ...] = ECG_ONLY,
) -> tuple[str, float, dict[str, float]]:
    """The allowed candidate with the highest AUROC (abnormal vs normal) on the rows whose ``split`` is
    "validation"; returns its name, its validation AUROC and every allowed candidate's. No other row is
    read, so test records cannot influence the choice."""
    rows = np.flatnonzero(np.asarray(split) == VALIDATION)
    y = np.asarray(abnormal, dtype=bool)[rows]
    if rows.size == 0 or y.all() or not y.any():
        raise ValueError(
            "choosing a record score needs validation rows with both normal and abnormal records"
        )
    aurocs = {n: auroc(y, np.asarray(candidates[n])[rows]) for n in allowed if n in candidates}
    finite = {n: a for n, a in aurocs.items() if np.isfinite(a)}
    if not finite:
        raise ValueError(f"no allowed candidate among {sorted(candidates)} could be scored")
    best = max(finite, key=lambda n: (finite[n], n))
    return best, finite[best], aurocs


def with_record_score(model: EcgModel, name: str) -> EcgModel:
    """The same model (weights, references) whose inference graph computes record score ``name``."""
    cfg = ModelConfig.from_dict({**model.cfg.to_dict(), "record_score": name})
    out = EcgModel(cfg)
    out.load_state_dict(model.state_dict())
    out.train(model.training)
    return out
