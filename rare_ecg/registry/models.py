"""Log, register, alias and load the project's models (encoder and classifier alike) in MLflow.

A logged model is an MLflow pyfunc whose `predict` runs the served inference graph
(`rare_ecg.model.inference.InferenceGraph`) with an explicit tensor signature; next to it travel three
plain artifacts that `load_model` reads without going through pyfunc: the state dict, the
`ModelConfig` and a metadata JSON (lineage: lake tables and versions, preprocessing version, model
rate, git commit, config hash, ... whatever the job that trained it records).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import OUTPUT_NAMES, InferenceGraph, example_inputs
from rare_ecg.model.network import EcgModel
from rare_ecg.quiet import dropped_warnings

ENCODER_NAME = "rare-ecg-encoder"
CLASSIFIER_NAME = "rare-ecg-classifier"

ARTIFACT_PATH = "model"  # the logged model's name inside its run
_STATE = "state_dict.pt"
_CONFIG = "model_config.json"
_METADATA = "metadata.json"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$")


class ModelNotFound(ValueError):
    """A model URI that names no registered version (unknown name, version or alias)."""


def _pip_requirements() -> list[str]:
    # MLflow would infer torch's local build tag (+cpu), which no index serves
    return [f"torch=={torch.__version__.split('+')[0]}", "numpy", "rare-ecg"]


def _signature(model: EcgModel) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    from rare_ecg.model import inference

    inputs = example_inputs(model, batch=2)
    graph = InferenceGraph(model).eval()
    with torch.no_grad():
        outputs = graph(*inputs)

    def spec(name: str, t: torch.Tensor) -> TensorSpec:
        return TensorSpec(t.numpy().dtype, (-1, *t.shape[1:]), name)

    return ModelSignature(
        inputs=Schema([spec(n, t) for n, t in zip(inference.INPUT_NAMES, inputs, strict=True)]),
        outputs=Schema([spec(n, t) for n, t in zip(OUTPUT_NAMES, outputs, strict=True)]),
    )


def _read_model(folder: Path) -> tuple[EcgModel, dict[str, Any]]:
    cfg = ModelConfig.from_dict(json.loads((folder / _CONFIG).read_text()))
    model = EcgModel(cfg)
    state = torch.load(folder / _STATE, map_location="cpu", weights_only=True)
    ref = state.get("reference")
    if ref is not None and ref.shape != model.reference.shape and ref.shape[0] == 0:
        state["reference"] = model.reference  # an empty reference set saved at the older width
    elif ref is not None and ref.shape != model.reference.shape:
        raise ValueError(
            f"the model's knn reference set has width {ref.shape[1]}, this version embeds in "
            f"{model.reference.shape[1]}: re-register it (pretrain or fine-tune again)"
        )
    model.load_state_dict(state)
    model.eval()
    return model, json.loads((folder / _METADATA).read_text())


class EcgPyfunc:
    """The pyfunc face of a logged model: a dict of named input arrays -> a dict of named outputs."""

    def load_context(self, context: Any) -> None:
        self.model, self.metadata = _read_model(Path(context.artifacts["model_files"]))

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        from rare_ecg.model import inference

        tensors = [torch.as_tensor(np.asarray(model_input[name])) for name in inference.INPUT_NAMES]
        with torch.no_grad():
            outputs = InferenceGraph(self.model).eval()(*tensors)
        return {name: t.numpy() for name, t in zip(OUTPUT_NAMES, outputs, strict=True)}


def log_model(model: EcgModel, metadata: Mapping[str, Any]) -> str:
    """Log ``model`` into the active MLflow run; returns the logged model's URI (for `register_model`)."""
    import mlflow
    import mlflow.pyfunc

    pyfunc_cls = type("EcgPyfuncModel", (EcgPyfunc, mlflow.pyfunc.PythonModel), {})
    with tempfile.TemporaryDirectory(prefix="rare-ecg-model-") as tmp:
        folder = Path(tmp) / "model_files"
        folder.mkdir()
        torch.save(model.state_dict(), folder / _STATE)
        (folder / _CONFIG).write_text(json.dumps(model.cfg.to_dict(), sort_keys=True))
        (folder / _METADATA).write_text(json.dumps(dict(metadata), sort_keys=True, default=str))
        # the signature is given; MLflow still tries predict's type hints first and warns that it can't
        with dropped_warnings("Failed to infer signature from type hint"):
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_PATH,
                python_model=pyfunc_cls(),
                artifacts={"model_files": str(folder)},
                signature=_signature(model),
                pip_requirements=_pip_requirements(),
            )
    return str(info.model_uri)


def register_model(model_uri: str, name: str, tags: Mapping[str, Any]) -> str:
    """Register a logged model under ``name`` with ``tags`` on the new version; returns the version."""
    import mlflow

    from rare_ecg.runtime import quiet_mlflow

    quiet_mlflow()
    version = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return str(version.version)


def set_alias(name: str, alias: str, version: str | int) -> None:
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, str(version))


def resolve(model_uri: str) -> tuple[str, str]:
    """`models:/name/3` or `models:/name@alias` -> (name, concrete version); ModelNotFound if none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    match = _URI.match(model_uri)
    if match is None:
        raise ModelNotFound(
            f"model URI {model_uri!r} is not of the form models:/<name>/<version> or models:/<name>@<alias>"
        )
    name, version, alias = match["name"], match["version"], match["alias"]
    client = MlflowClient()
    try:
        mv = (
            client.get_model_version(name, version)
            if version is not None
            else client.get_model_version_by_alias(name, alias)
        )
    except MlflowException as err:
        raise ModelNotFound(f"no registered model version for {model_uri!r}: {err.message}") from None
    return name, str(mv.version)


def load_model(model_uri: str) -> tuple[EcgModel, dict[str, Any]]:
    """The registered model behind ``model_uri`` (in eval mode) and its metadata, where the concrete
    version it resolved to is recorded (`registered_name`, `registered_version`, `run_id`)."""
    import mlflow
    from mlflow import MlflowClient

    name, version = resolve(model_uri)
    mv = MlflowClient().get_model_version(name, version)
    with tempfile.TemporaryDirectory(prefix="rare-ecg-load-") as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        )
        model, metadata = _read_model(local / "artifacts" / "model_files")
    metadata.update(
        {"registered_name": name, "registered_version": version, "run_id": mv.run_id, "model_uri": model_uri}
    )
    return model, metadata
