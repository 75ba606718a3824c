"""Point-level localization AUROC of anomaly maps against ground-truth masks."""

from __future__ import annotations

import numpy as np

from rare_ecg.metrics.ranking import auroc


def localization_auroc(anomaly_maps: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """AUROC of every map point as a detector of the annotated (abnormal) points, pooled over records.

    ``anomaly_maps`` and ``truth`` have the same shape, e.g. (records, leads, samples); ``valid``
    (broadcastable to it, e.g. the lead mask as (records, leads, 1)) leaves out points such as absent
    leads. NaN when the kept points hold no annotated or no unannotated point.
    """
    m = np.asarray(anomaly_maps, dtype=np.float64)
    t = np.asarray(truth).astype(bool)
    if m.shape != t.shape:
        raise ValueError(f"anomaly_maps shape {m.shape} does not match truth shape {t.shape}")
    keep = (
        np.ones(m.shape, dtype=bool) if valid is None else np.broadcast_to(np.asarray(valid, bool), m.shape)
    )
    return auroc(t[keep], m[keep])
