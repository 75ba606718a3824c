"""Per-file statistics in the Delta log: readers skip files by recorded_at (and the other STATS_COLUMNS)."""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa

from rare_ecg.lake import commit


def test_timestamps_get_min_and_max_that_bound_every_row() -> None:
    t = pa.table(
        {
            "recorded_at": pa.array(
                [datetime(2020, 1, 1, 8, 0, 0, 250_400), None, datetime(2021, 6, 30, 23, 59, 59, 999_001)],
                pa.timestamp("us"),
            ),
            "rejected_at": pa.array([datetime(2026, 1, 2, 3, 4, 5)] * 3, pa.timestamp("us", tz="UTC")),
        }
    )
    stats = json.loads(commit.file_stats(t, ["recorded_at", "rejected_at"]))
    assert stats["minValues"]["recorded_at"] == "2020-01-01 08:00:00.250"  # floored to the millisecond
    assert stats["maxValues"]["recorded_at"] == "2021-07-01 00:00:00.000"  # rounded up: still a bound
    assert stats["nullCount"]["recorded_at"] == 1
    assert stats["minValues"]["rejected_at"] == "2026-01-02T03:04:05.000Z"
