"""The method of METHOD.md in plain PyTorch: network, objectives, anomaly maps, training steps, export.

Names load on first use (PEP 562): the training data path imports ``rare_ecg.model.config`` and
``rare_ecg.model.inputs`` in Ray Data tasks, which then need no torch (2-3 s of start-up per worker
process here)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "AnomalyMap": "anomaly",
    "anomaly_map": "anomaly",
    "MEASUREMENTS": "config",
    "SCORE_CANDIDATES": "config",
    "ModelConfig": "config",
    "InferenceGraph": "inference",
    "export_onnx": "inference",
    "macs_per_ecg": "inference",
    "INPUT_NAMES": "inputs",
    "ModelInputs": "inputs",
    "model_inputs": "inputs",
    "window_beat_positions": "inputs",
    "EcgModel": "network",
    "Outputs": "network",
    "with_labels": "network",
    "with_references": "network",
    "ClassifierLoss": "objectives",
    "Batch": "training",
    "FinetuneSettings": "training",
    "PretrainWeights": "training",
    "finetune_step": "training",
    "load_checkpoint": "training",
    "make_optimizer": "training",
    "pretrain_step": "training",
    "save_checkpoint": "training",
}

__all__ = [
    "INPUT_NAMES",
    "MEASUREMENTS",
    "SCORE_CANDIDATES",
    "AnomalyMap",
    "Batch",
    "ClassifierLoss",
    "EcgModel",
    "FinetuneSettings",
    "InferenceGraph",
    "ModelConfig",
    "ModelInputs",
    "Outputs",
    "PretrainWeights",
    "anomaly_map",
    "export_onnx",
    "finetune_step",
    "load_checkpoint",
    "macs_per_ecg",
    "make_optimizer",
    "model_inputs",
    "pretrain_step",
    "save_checkpoint",
    "window_beat_positions",
    "with_labels",
    "with_references",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from rare_ecg.model.anomaly import AnomalyMap, anomaly_map
    from rare_ecg.model.config import MEASUREMENTS, SCORE_CANDIDATES, ModelConfig
    from rare_ecg.model.inference import InferenceGraph, export_onnx, macs_per_ecg
    from rare_ecg.model.inputs import INPUT_NAMES, ModelInputs, model_inputs, window_beat_positions
    from rare_ecg.model.network import EcgModel, Outputs, with_labels, with_references
    from rare_ecg.model.objectives import ClassifierLoss
    from rare_ecg.model.training import (
        Batch,
        FinetuneSettings,
        PretrainWeights,
        finetune_step,
        load_checkpoint,
        make_optimizer,
        pretrain_step,
        save_checkpoint,
    )
