"""Evaluation: predictions and lake labels -> subgroup_metrics rows (shared by scoring and evaluation)."""

from rare_ecg.evaluation.labels import label_matrix
from rare_ecg.evaluation.metrics_rows import METRICS, Predictions, metric_rows, metrics_table

__all__ = ["METRICS", "Predictions", "label_matrix", "metric_rows", "metrics_table"]
