"""Per-label metrics, rare and common label sets, macro means and the common-rare gap (METHOD.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from rare_ecg.metrics.ranking import auprc, auroc

RARE_PREVALENCE = 0.01  # training prevalence below which a label is rare
MIN_COMMON_POSITIVES = 10  # a common label needs at least this many training positives

STATUS_OK = "ok"
STATUS_NO_POSITIVES = "no_positives"
STATUS_NO_NEGATIVES = "no_negatives"


@dataclass(frozen=True)
class LabelSets:
    rare: tuple[str, ...]  # 0 < training prevalence < threshold
    common: tuple[str, ...]  # prevalence >= threshold and at least min_common_positives positives
    excluded: tuple[str, ...]  # no training positives, or too few to count as common
    prevalence: dict[str, float]  # training prevalence of every label


def label_sets(
    train_labels: np.ndarray,
    labels: Sequence[str],
    threshold: float = RARE_PREVALENCE,
    min_common_positives: int = MIN_COMMON_POSITIVES,
) -> LabelSets:
    """Split a vocabulary by prevalence in the (n, L) {0, 1} training targets."""
    y = np.asarray(train_labels).astype(bool)
    if y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"train_labels shape {y.shape} does not match {len(labels)} labels")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"rare threshold must be in (0, 1); got {threshold}")
    n_pos = y.sum(0)
    prevalence = n_pos / max(1, y.shape[0])
    rare, common, excluded = [], [], []
    for label, p, k in zip(labels, prevalence, n_pos, strict=True):
        if k > 0 and p < threshold:
            rare.append(label)
        elif k >= min_common_positives and p >= threshold:
            common.append(label)
        else:
            excluded.append(label)
    return LabelSets(
        rare=tuple(rare),
        common=tuple(common),
        excluded=tuple(excluded),
        prevalence={label: float(p) for label, p in zip(labels, prevalence, strict=True)},
    )


@dataclass(frozen=True)
class LabelMetric:
    label: str
    n: int
    n_pos: int
    auroc: float  # NaN unless status is "ok"
    auprc: float
    status: str  # "ok" | "no_positives" | "no_negatives"


def per_label_metrics(y_true: np.ndarray, y_score: np.ndarray, labels: Sequence[str]) -> list[LabelMetric]:
    """AUROC and AUPRC of every label of (n, L) targets and scores; a label lacking a class is
    reported with its status and NaN metrics."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 2 or y.shape[1] != len(labels):
        raise ValueError(f"targets {y.shape} and scores {s.shape} must both be (n, {len(labels)})")
    out = []
    for j, label in enumerate(labels):
        n_pos = int(y[:, j].sum())
        status = STATUS_NO_POSITIVES if n_pos == 0 else STATUS_NO_NEGATIVES if n_pos == len(y) else STATUS_OK
        out.append(
            LabelMetric(
                label=label,
                n=len(y),
                n_pos=n_pos,
                auroc=auroc(y[:, j], s[:, j]),
                auprc=auprc(y[:, j], s[:, j]),
                status=status,
            )
        )
    return out


def macro(values: Iterable[float]) -> float:
    """Mean of the finite values (labels without positives drop out); NaN when none is finite."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def macro_metric(
    per_label: Sequence[LabelMetric], subset: Iterable[str] | None, metric: str = "auroc"
) -> float:
    """Macro mean of ``metric`` ("auroc" | "auprc") over the labels in ``subset`` (None: all labels)."""
    if metric not in ("auroc", "auprc"):
        raise ValueError(f"metric {metric!r} is not one of 'auroc', 'auprc'")
    keep = None if subset is None else set(subset)
    return macro(getattr(m, metric) for m in per_label if keep is None or m.label in keep)


def common_rare_gap(per_label: Sequence[LabelMetric], sets: LabelSets) -> float:
    """macro AUROC(common) - macro AUROC(rare)."""
    return macro_metric(per_label, sets.common) - macro_metric(per_label, sets.rare)


def gap_reduction(gap_method: float, gap_baseline: float) -> float:
    """1 - gap(method) / gap(baseline); NaN when the baseline has no positive gap to reduce."""
    if not np.isfinite(gap_baseline) or gap_baseline <= 0 or not np.isfinite(gap_method):
        return float("nan")
    return 1.0 - gap_method / gap_baseline


@dataclass(frozen=True)
class LabelReport:
    per_label: list[LabelMetric]
    sets: LabelSets
    macro_auroc: dict[str, float]  # keys "all", "rare", "common"
    macro_auprc: dict[str, float]
    gap: float


def label_report(
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: Sequence[str],
    train_labels: np.ndarray,
    threshold: float = RARE_PREVALENCE,
    min_common_positives: int = MIN_COMMON_POSITIVES,
) -> LabelReport:
    """Everything label-level of one evaluation: per-label metrics, sets from training prevalence, macros."""
    per_label = per_label_metrics(y_true, y_score, labels)
    sets = label_sets(train_labels, labels, threshold, min_common_positives)
    subsets: dict[str, Iterable[str] | None] = {"all": None, "rare": sets.rare, "common": sets.common}
    return LabelReport(
        per_label=per_label,
        sets=sets,
        macro_auroc={k: macro_metric(per_label, v, "auroc") for k, v in subsets.items()},
        macro_auprc={k: macro_metric(per_label, v, "auprc") for k, v in subsets.items()},
        gap=common_rare_gap(per_label, sets),
    )
