"""The reader training, fine-tuning and scoring stream lake files with (rare_ecg.lake.files)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rare_ecg.lake.files import parquet_files_dataset

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("ray_session")]


def test_every_row_of_every_file_once_and_only_the_columns_asked_for(tmp_path: Path) -> None:
    paths = []
    for f, rows in enumerate((10, 3)):
        table = pa.table(
            {"record_id": [f"r{f}-{i}" for i in range(rows)], "x": list(range(rows)), "y": [0.5] * rows}
        )
        paths.append(str(tmp_path / f"part-{f}.parquet"))
        pq.write_table(table, paths[-1], row_group_size=4)  # 3 + 1 row groups
    blocks = list(
        parquet_files_dataset(paths, ["record_id", "x"], num_cpus=0.25).iter_batches(
            batch_format="pyarrow", batch_size=None
        )
    )
    # read a row group at a time; Ray Data's output buffer joins them up to its target block size
    assert sorted(b.num_rows for b in blocks) == [3, 10]
    assert all(b.column_names == ["record_id", "x"] for b in blocks)  # only the columns asked for
    ids = sorted(i for b in blocks for i in b.column("record_id").to_pylist())
    assert ids == sorted([f"r0-{i}" for i in range(10)] + [f"r1-{i}" for i in range(3)])
    # each execution (an epoch) reads the files again
    again = parquet_files_dataset(paths, ["x"], num_cpus=0.25)
    assert again.count() == again.count() == 13
