"""Data feeding: records longer than 10 s give every window, each with its own R peaks and targets."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa

from rare_ecg.model.config import MEASUREMENTS
from rare_ecg.train.data import ATTRIBUTE_COLUMNS, windows_of_block


def test_each_window_of_a_long_record_becomes_a_row_and_records_outside_the_split_are_dropped() -> None:
    n_leads, window = 12, 1000
    long = np.arange(n_leads * 2 * window, dtype=np.float32)  # 20 s: two windows
    short = -np.ones(n_leads * window, dtype=np.float32)
    block = pa.table(
        {
            "record_id": ["long", "other-split", "short"],
            "n_windows": pa.array([2, 1, 1], pa.int16()),
            "n_samples": pa.array([2 * window, window, window], pa.int32()),
            "signal": pa.array([long, short, short], pa.list_(pa.float32())),
            "lead_mask": pa.array([[True] * 12, [True] * 12, [True] * 11 + [False]], pa.list_(pa.bool_())),
            "beat_positions": pa.array([[100, 900, 1100, 1950], [5], [500]], pa.list_(pa.int32())),
        }
    )
    attributes = pa.table(
        {
            "record_id": ["short", "long"],
            "age": pa.array([30.0, 70.0], pa.float32()),
            "sex_female": pa.array([None, 1.0], pa.float32()),
            **{m: pa.array([None, 1.0], pa.float32()) for m in MEASUREMENTS},
        }
    )
    out = windows_of_block(block, attributes, n_leads, window)
    assert out["signal"].shape == (3, n_leads, window)
    whole = long.reshape(n_leads, 2 * window)
    np.testing.assert_array_equal(out["signal"][0], whole[:, :window])
    np.testing.assert_array_equal(out["signal"][1], whole[:, window:])
    np.testing.assert_array_equal(out["signal"][2], short.reshape(n_leads, window))
    assert [list(b) for b in out["beat_positions"]] == [[100, 900], [100, 950], [500]]
    np.testing.assert_array_equal(out["age"], [70.0, 70.0, 30.0])
    assert np.isnan(out["sex_female"][2]) and out["sex_female"][0] == 1.0
    assert out["lead_mask"][2].sum() == 11 and out["lead_mask"][:2].all()
    assert set(out) == {"signal", "lead_mask", "beat_positions", *ATTRIBUTE_COLUMNS}


def test_the_data_path_of_ray_data_tasks_needs_no_torch() -> None:
    """Ray Data's read and window tasks import these modules in fresh worker processes: torch there
    cost 2-3 s of every training run's first epoch."""
    code = (
        "import sys; import rare_ecg.train.data, rare_ecg.lake.files, rare_ecg.model.inputs; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"
