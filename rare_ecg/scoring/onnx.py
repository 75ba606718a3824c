"""The model's inference graph as ONNX: fp32 export, dynamic int8 quantisation, its tensor signature and
the ONNX Runtime session a scoring actor opens once.

The graph itself is ``rare_ecg.model.inference.InferenceGraph`` (one graph, defined by the model
package); this module only exports, quantises and serves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from rare_ecg.model.inference import export_onnx
from rare_ecg.model.network import EcgModel

PRECISION_FP32 = "fp32"
PRECISION_INT8 = "int8"
# Dynamic int8 of the matrix products only: convolutions as ConvInteger were 3x slower than fp32 here,
# and static QDQ was slower than fp32 for this transformer (STACK-NOTES.md).
INT8_OP_TYPES = ("MatMul", "Gemm")

_ONNX_TO_NUMPY = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.BOOL: np.bool_,
}


def export_fp32(model: EcgModel, path: str | Path) -> Path:
    """The model's inference graph as one self-contained fp32 .onnx file with a dynamic batch axis."""
    return export_onnx(model.eval(), path)


def quantize_int8(fp32_path: str | Path, int8_path: str | Path) -> Path:
    """Dynamic int8 of the MatMuls with ``reduce_range`` (7-bit weights). Without it, probabilities were
    off by up to 0.13 on this CPU (AVX2 without VNNI: int8 products overflow); with it about 0.01."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        Path(fp32_path),
        Path(int8_path),
        op_types_to_quantize=list(INT8_OP_TYPES),
        reduce_range=True,
        weight_type=QuantType.QInt8,
    )
    return Path(int8_path)


def open_session(model: str | Path | bytes, threads: int) -> ort.InferenceSession:
    """One session per actor; ``threads`` = the actor's CPU share (ORT ignores Ray's OMP setting, so an
    unset thread count would oversubscribe the machine by the number of actors)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])


def tensor_specs(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The graph's inputs and outputs (name, numpy dtype, shape with -1 for dynamic axes), read from the
    file itself so the signature always matches what was exported."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def spec(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dtype = _ONNX_TO_NUMPY.get(t.elem_type)
            if dtype is None:
                raise ValueError(f"tensor {v.name} has an ONNX element type {t.elem_type} with no numpy twin")
            shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
            out.append({"name": v.name, "dtype": np.dtype(dtype).name, "shape": shape})
        return out

    return {"inputs": spec(graph.input), "outputs": spec(graph.output)}


def mlflow_signature(path: str | Path) -> Any:
    """An explicit MLflow TensorSpec signature (pyfunc needs one for ONNX models)."""
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    specs = tensor_specs(path)

    def schema(items: list[dict[str, Any]]) -> Schema:
        return Schema([TensorSpec(np.dtype(s["dtype"]), tuple(s["shape"]), s["name"]) for s in items])

    return ModelSignature(inputs=schema(specs["inputs"]), outputs=schema(specs["outputs"]))
