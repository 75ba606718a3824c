"""Per-file statistics in the Delta log: readers skip files by recorded_at (and the other STATS_COLUMNS)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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


def test_a_file_written_in_row_groups_has_the_statistics_of_all_its_rows(tmp_path: Path) -> None:
    """PartFileWriter (one file per worker task, a row group per batch): the file holds every row, one
    row group per write, and its Delta statistics bound all of them, whichever piece held the extreme."""
    from rare_ecg.lake.schema import ECG_ANNOTATIONS, SCHEMAS

    schema = SCHEMAS[ECG_ANNOTATIONS]

    def rows(ids: list[str], starts: list[int]) -> pa.Table:
        n = len(ids)
        return pa.table(
            {"record_id": ids, "label": ["PVC"] * n, "lead": ["II"] * n, "start_sample": starts,
             "end_sample": [s + 10 for s in starts], "ingest_run_id": ["r"] * n},
            schema=schema,
        )  # fmt: skip

    pieces = [rows(["m", "c"], [5, 7]), rows(["x", "d"], [1, 9]), rows(["b"], [3])]
    writer = commit.PartFileWriter(str(tmp_path), ECG_ANNOTATIONS, "r")
    for piece in pieces:
        writer.write(piece)
    (part,) = writer.close()
    whole = pa.concat_tables(pieces)
    assert part.num_rows == 5
    assert json.loads(part.stats) == json.loads(commit.file_stats(whole, ["record_id", "label"]))
    stats = json.loads(part.stats)
    assert (stats["minValues"]["record_id"], stats["maxValues"]["record_id"]) == ("b", "x")
    parquet = pq.ParquetFile(tmp_path / ECG_ANNOTATIONS / part.path)
    assert parquet.metadata.num_row_groups == 3
    assert parquet.read().equals(whole)


def test_ingest_tasks_are_equal_shares_a_multiple_of_the_workers() -> None:
    """The staged listing files cut into tasks: every file once and in order, a multiple of the workers
    of about equal size (both workers start together and finish together: each task boundary costs a
    worker Ray Data's gap before its next task), and none over the cap unless one file is."""
    from rare_ecg.ingest.pipeline import MAX_TASK_REFS, _task_groups

    staged = [(f"f{i}", 64) for i in range(16)] + [(f"g{i}", 256) for i in range(400)]
    sizes = {uri: n for uri, n in staged}
    groups = _task_groups(staged, workers=2)
    assert [uri for group in groups for uri in group] == [uri for uri, _ in staged]
    refs = [sum(sizes[u] for u in group) for group in groups]
    assert len(groups) % 2 == 0 and max(refs) <= MAX_TASK_REFS
    assert max(refs) - min(refs) <= 256  # equal up to one staged file
    assert len(groups) == 2 * -(-sum(refs) // (2 * MAX_TASK_REFS))
    assert _task_groups([("only", 10)], workers=2) == [["only"]]
    assert _task_groups([(f"h{i}", 64) for i in range(4)], workers=2) == [["h0", "h1"], ["h2", "h3"]]
    assert _task_groups([("big", 10 * MAX_TASK_REFS), ("small", 5)], workers=2) == [["big"], ["small"]]
    three = _task_groups([(f"k{i}", 64) for i in range(10)], workers=3)
    assert [len(g) for g in three] == [4, 3, 3]
