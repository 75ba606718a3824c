"""The method of METHOD.md in plain PyTorch: network, objectives, anomaly maps, training steps, export."""

from rare_ecg.model.anomaly import AnomalyMap, anomaly_map
from rare_ecg.model.config import MEASUREMENTS, ModelConfig
from rare_ecg.model.inference import InferenceGraph, export_onnx, macs_per_ecg
from rare_ecg.model.network import EcgModel, Outputs, with_labels
from rare_ecg.model.objectives import ClassifierLoss, choose_beat_starts
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
    "MEASUREMENTS",
    "AnomalyMap",
    "Batch",
    "ClassifierLoss",
    "EcgModel",
    "FinetuneSettings",
    "InferenceGraph",
    "ModelConfig",
    "Outputs",
    "PretrainWeights",
    "anomaly_map",
    "choose_beat_starts",
    "export_onnx",
    "finetune_step",
    "load_checkpoint",
    "macs_per_ecg",
    "make_optimizer",
    "pretrain_step",
    "save_checkpoint",
    "with_labels",
]
