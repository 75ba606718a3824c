"""The MLflow model registry: one way to log, register, alias and load encoders and classifiers."""

from rare_ecg.registry.models import (
    CLASSIFIER_NAME,
    ENCODER_NAME,
    ModelNotFound,
    load_model,
    log_model,
    register_model,
    resolve,
    set_alias,
)

__all__ = [
    "CLASSIFIER_NAME",
    "ENCODER_NAME",
    "ModelNotFound",
    "load_model",
    "log_model",
    "register_model",
    "resolve",
    "set_alias",
]
