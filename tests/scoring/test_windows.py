"""Windows of long records, their beat positions, per-record aggregation and quality skips (pure numpy)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rare_ecg.scoring.windows import (
    REASON_RATE,
    REASON_TOO_FEW_LEADS,
    REASON_TOO_SHORT,
    QualityPolicy,
    aggregate,
    kept_windows,
    skip_reason,
    split_windows,
)

N = 1000  # 10 s at 100 Hz


def rows(n_windows: list[int], valid: list[int], peaks: list[list[int]]) -> pa.Table:
    signals = [np.full((12, k * N), float(i), np.float32).reshape(-1) for i, k in enumerate(n_windows)]
    for s, k in zip(signals, n_windows, strict=True):
        s.reshape(12, k * N)[:, :] += np.arange(k * N, dtype=np.float32) / 1e4  # position is recoverable
    return pa.table(
        {
            "signal": pa.array([s.tolist() for s in signals], pa.list_(pa.float32())),
            "lead_mask": pa.array([[True] * 12 for _ in n_windows], pa.list_(pa.bool_())),
            "n_windows": pa.array(n_windows, pa.int16()),
            "valid_samples": pa.array(valid, pa.int32()),
            "beat_positions": pa.array(peaks, pa.list_(pa.int32())),
        }
    )


def test_long_records_are_cut_into_windows_with_their_own_beats_and_a_padded_tail_is_dropped() -> None:
    assert kept_windows(3, 2 * N + N // 2, N) == [0, 1, 2]  # half a window of real signal: kept
    assert kept_windows(3, 2 * N + N // 2 - 1, N) == [0, 1]  # less: a window of padding, dropped
    assert kept_windows(1, 300, N) == [0]  # a short record still has its one window

    t = rows([1, 3], [N, 2 * N + 200], [[100, 900], [50, 1050, 1990, 2100]])
    w = split_windows(t, N)
    assert w.record.tolist() == [0, 1, 1] and w.window.tolist() == [0, 0, 1]
    assert w.signal.shape == (3, 12, N)
    np.testing.assert_allclose(w.signal[2, 0, :3], 1.0 + (N + np.arange(3)) / 1e4, rtol=1e-6)
    assert [p.tolist() for p in w.beat_positions] == [[100, 900], [50], [50, 990]]


def test_windows_aggregate_to_the_records_maximum_and_side_by_side_maps() -> None:
    record = np.array([0, 1, 1])
    probs = np.array([[0.1, 0.2], [0.3, 0.9], [0.8, 0.4]], np.float32)
    score = np.array([1.0, 2.0, 5.0], np.float32)
    amap = np.stack([np.full((12, 10), v, np.float32) for v in (1.0, 2.0, 3.0)])
    out = aggregate(record, 2, probs, score, amap, np.array([50.0, 60.0, 70.0]), np.array([0.2, 0.4, 0.6]))
    np.testing.assert_allclose(out.probs, [[0.1, 0.2], [0.8, 0.9]])
    np.testing.assert_allclose(out.anomaly_score, [1.0, 5.0])
    assert out.anomaly_map[0].shape == (12, 10) and out.anomaly_map[1].shape == (12, 20)
    np.testing.assert_allclose(out.anomaly_map[1][:, :10], 2.0)
    np.testing.assert_allclose(out.anomaly_map[1][:, 10:], 3.0)
    np.testing.assert_allclose(out.age, [50.0, 65.0])
    np.testing.assert_allclose(out.sex_female_prob, [0.2, 0.5])


def test_quality_policy_names_the_reason_a_record_is_skipped() -> None:
    policy = QualityPolicy(fs_hz=100, min_leads=6, min_signal_s=5.0, skip_flags=("nan_samples",))
    full = np.ones(12, bool)
    assert skip_reason([], full, 1000, 100, policy) is None
    assert skip_reason(["padded", "missing_lead"], full, 1000, 100, policy) is None
    assert skip_reason(["nan_samples"], full, 1000, 100, policy) == "nan_samples"
    assert skip_reason([], full, 5000, 500, policy) == REASON_RATE
    assert skip_reason([], np.arange(12) < 5, 1000, 100, policy) == REASON_TOO_FEW_LEADS
    assert skip_reason([], full, 499, 100, policy) == REASON_TOO_SHORT
