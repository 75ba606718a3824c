"""Evaluation metrics as pure numpy functions (METHOD.md, Evaluation)."""

from rare_ecg.metrics.attributes import age_mae, sex_auroc
from rare_ecg.metrics.bootstrap import bootstrap_ci, patient_resamples
from rare_ecg.metrics.calibration import expected_calibration_error
from rare_ecg.metrics.labels import (
    LabelMetric,
    LabelReport,
    LabelSets,
    common_rare_gap,
    gap_reduction,
    label_report,
    label_sets,
    macro_metric,
    per_label_metrics,
)
from rare_ecg.metrics.localization import localization_auroc
from rare_ecg.metrics.ranking import auprc, auroc, sensitivity_at_specificity
from rare_ecg.metrics.subgroups import MetricRow, age_bands, subgroup_metrics

__all__ = [
    "LabelMetric",
    "LabelReport",
    "LabelSets",
    "MetricRow",
    "age_bands",
    "age_mae",
    "auprc",
    "auroc",
    "bootstrap_ci",
    "common_rare_gap",
    "expected_calibration_error",
    "gap_reduction",
    "label_report",
    "label_sets",
    "localization_auroc",
    "macro_metric",
    "patient_resamples",
    "per_label_metrics",
    "sensitivity_at_specificity",
    "sex_auroc",
    "subgroup_metrics",
]
