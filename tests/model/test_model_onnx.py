"""The inference graph exports to ONNX with a dynamic batch axis, and ONNX Runtime matches PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inference import INPUT_NAMES, OUTPUT_NAMES, InferenceGraph, export_onnx
from rare_ecg.model.inputs import model_inputs
from rare_ecg.model.network import EcgModel, with_references

TOLERANCE = 1e-4


@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("beat_phase", "record_score"),
    [(False, "weighted_top"), (True, "beat_dev_top")],  # beat_phase with beat_copy
)
def test_onnx_runtime_matches_pytorch_at_any_batch_size(
    tmp_path: Path, tiny_config: ModelConfig, beat_phase: bool, record_score: str
) -> None:
    cfg = ModelConfig.from_dict(
        {
            **tiny_config.to_dict(),
            "beat_phase": beat_phase,
            "beat_copy": beat_phase,
            "record_score": record_score,
        }
    )
    model = EcgModel(cfg)
    model = with_references(model, torch.randn(7, 4 * cfg.d_model))  # the knn buffer travels too
    cfg = model.cfg
    model.eval()
    path = export_onnx(model, tmp_path / "model.onnx")
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in graph.graph.output] == list(OUTPUT_NAMES)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch in (1, 5):
        signal = rng.normal(size=(batch, 12, cfg.n_samples)).astype(np.float32)
        lead_mask = np.ones((batch, 12), dtype=np.float32)
        lead_mask[0, [3, 9]] = 0.0  # missing leads travel through the exported graph too
        peaks = [np.sort(rng.choice(cfg.n_samples, 12, replace=False)) for _ in range(batch)]
        inputs = model_inputs(signal, lead_mask > 0, peaks, cfg)
        got = session.run(None, inputs.feeds())
        with torch.no_grad():
            x, _, beat_start, phase, neighbours = inputs.torch()
            want = InferenceGraph(model)(x, torch.from_numpy(lead_mask), beat_start, phase, neighbours)
        shapes = [(batch, 3), (batch,), (batch, 12, cfg.map_segments), (batch,), (batch,)]
        for name, g, w, shape in zip(OUTPUT_NAMES, got, want, shapes, strict=True):
            assert g.shape == shape, name
            np.testing.assert_allclose(g, w.numpy(), atol=TOLERANCE, rtol=0, err_msg=name)
        assert ((got[0] >= 0) & (got[0] <= 1)).all()


def test_export_needs_a_label_vocabulary_and_an_ecg_only_score(
    tmp_path: Path, tiny_config: ModelConfig
) -> None:
    model = EcgModel(ModelConfig.from_dict({**tiny_config.to_dict(), "labels": ()}))
    with pytest.raises(ValueError, match="label vocabulary"):
        export_onnx(model, tmp_path / "m.onnx")
    model = EcgModel(ModelConfig.from_dict({**tiny_config.to_dict(), "record_score": "age_gap"}))
    with pytest.raises(ValueError, match="ECG only"):
        export_onnx(model, tmp_path / "m.onnx")
