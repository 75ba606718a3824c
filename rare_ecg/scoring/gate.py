"""The int8 gate: an int8 graph replaces fp32 only if, on the validation split, no label's AUROC drops by
more than ``max_label_drop`` and no subgroup's macro AUROC (sex, age band; all / rare / common labels)
by more than ``max_subgroup_drop``. Otherwise fp32 stays, and the reasons are logged with the export."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rare_ecg.evaluation.metrics_rows import METRIC_AUROC, Predictions, metric_rows
from rare_ecg.metrics import LabelSets
from rare_ecg.metrics.subgroups import LARGEST_GAP

MAX_LABEL_AUROC_DROP = 0.005
MAX_SUBGROUP_AUROC_DROP = 0.01


@dataclass
class GateResult:
    accepted: bool
    reasons: list[str]  # why it was refused (empty when accepted)
    n_records: int
    max_label_drop: float  # largest per-label AUROC drop fp32 -> int8 (NaN: no label evaluable)
    max_subgroup_drop: float
    max_prob_diff: float  # largest |p_int8 - p_fp32| over records and labels
    label_drops: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _auroc_rows(pred: Predictions, sets: LabelSets) -> dict[tuple[str, str, str], float]:
    rows = metric_rows(pred, sets, n_boot=1)
    return {
        (r["group_kind"], r["group"], r["label_set"]): r["value"]
        for r in rows
        if r["metric"] == METRIC_AUROC and r["group"] != LARGEST_GAP and r["value"] is not None
    }


def int8_gate(
    fp32: Predictions,
    int8_probs: np.ndarray,
    sets: LabelSets,
    max_label_drop: float = MAX_LABEL_AUROC_DROP,
    max_subgroup_drop: float = MAX_SUBGROUP_AUROC_DROP,
) -> GateResult:
    """Compare the int8 graph's probabilities with fp32's on the same validation records."""
    q = np.asarray(int8_probs, dtype=np.float64)
    quant = Predictions(
        labels=fp32.labels,
        y_true=fp32.y_true,
        y_prob=q,
        y_pred=fp32.y_pred,
        sex=fp32.sex,
        age_years=fp32.age_years,
        patient_ids=fp32.patient_ids,
    )
    base, other = _auroc_rows(fp32, sets), _auroc_rows(quant, sets)
    labels = set(fp32.labels)
    label_drops = {k[2]: base[k] - other.get(k, float("nan")) for k in base if k[2] in labels}
    group_drops = {k: base[k] - other.get(k, float("nan")) for k in base if k[2] not in labels}
    reasons = []
    if not label_drops:
        reasons.append(f"no label has both classes among the {len(fp32.y_true)} validation records")
    for label, drop in sorted(label_drops.items()):
        if not drop <= max_label_drop:
            reasons.append(f"AUROC of {label} drops by {drop:.4f} > {max_label_drop}")
    for (kind, group, label_set), drop in sorted(group_drops.items()):
        if kind != "overall" and not drop <= max_subgroup_drop:
            reasons.append(
                f"macro AUROC ({label_set} labels) of {kind} {group} drops by {drop:.4f} > {max_subgroup_drop}"
            )
    diff = np.abs(q - np.asarray(fp32.y_prob, dtype=np.float64))
    return GateResult(
        accepted=not reasons,
        reasons=reasons,
        n_records=len(fp32.y_true),
        max_label_drop=max(label_drops.values(), default=float("nan")),
        max_subgroup_drop=max(
            (d for (kind, _, _), d in group_drops.items() if kind != "overall"), default=float("nan")
        ),
        max_prob_diff=float(diff.max()) if diff.size else float("nan"),
        label_drops=label_drops,
    )
