"""The method of METHOD.md in plain PyTorch: network, objectives, anomaly maps, training steps, export."""

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
