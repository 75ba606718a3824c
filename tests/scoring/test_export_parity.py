"""The exported graph matches PyTorch on real records read from the lake; int8 with reduce_range stays
close; the tensor signature is explicit with a dynamic batch axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rare_ecg.model.inference import OUTPUT_NAMES
from rare_ecg.model.network import EcgModel
from rare_ecg.scoring.onnx import open_session, quantize_int8, tensor_specs
from rare_ecg.scoring.runner import onnx_runner, score_rows, torch_runner

from .conftest import LABELS, waveform_rows

pytestmark = pytest.mark.timeout(300)


def test_onnx_matches_torch_on_every_output_for_real_records(
    example_lake: Path, classifier: EcgModel, fp32_onnx: Path
) -> None:
    rows = waveform_rows(example_lake)
    assert rows.num_rows == 20
    want = score_rows(rows, classifier.cfg, torch_runner(classifier), batch_size=8)
    got = score_rows(rows, classifier.cfg, onnx_runner(open_session(fp32_onnx, threads=1)), batch_size=7)
    assert got.probs.shape == (20, len(LABELS))
    np.testing.assert_allclose(got.probs, want.probs, atol=1e-4, rtol=0)
    # the records differ: the graph is not returning a constant
    assert np.ptp(want.probs, axis=0).max() > 1e-3
    np.testing.assert_allclose(got.anomaly_score, want.anomaly_score, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.stack(got.anomaly_map), np.stack(want.anomaly_map), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got.age, want.age, atol=1e-3, rtol=1e-5)
    np.testing.assert_allclose(got.sex_female_prob, want.sex_female_prob, atol=1e-4, rtol=0)
    assert np.stack(got.anomaly_map).shape == (20, 12, classifier.cfg.map_segments)


def test_signature_is_explicit_with_a_dynamic_batch(fp32_onnx: Path, classifier: EcgModel) -> None:
    specs = tensor_specs(fp32_onnx)
    inputs = {s["name"]: s for s in specs["inputs"]}
    assert inputs["signal"] == {
        "name": "signal",
        "dtype": "float32",
        "shape": [-1, 12, classifier.cfg.n_samples],
    }
    outputs = {s["name"]: s for s in specs["outputs"]}
    assert list(outputs) == list(OUTPUT_NAMES)
    assert outputs["probs"]["shape"] == [-1, len(LABELS)]


def test_int8_with_reduce_range_stays_close_to_fp32(
    example_lake: Path, classifier: EcgModel, fp32_onnx: Path, tmp_path: Path
) -> None:
    q8 = quantize_int8(fp32_onnx, tmp_path / "int8.onnx")
    ops = {n.op_type for n in __import__("onnx").load(str(q8)).graph.node}
    assert "MatMulInteger" in ops and "ConvInteger" not in ops
    rows = waveform_rows(example_lake)
    fp = score_rows(rows, classifier.cfg, onnx_runner(open_session(fp32_onnx, 1)), 16)
    q = score_rows(rows, classifier.cfg, onnx_runner(open_session(q8, 1)), 16)
    diff = np.abs(q.probs - fp.probs).max()
    assert 0 < diff < 0.05
