"""The annotations sidecar: the generator writes annotations.parquet beside annotations.csv, and a reader
gets each record's annotations from the row groups that can hold it, never the whole file."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from rare_ecg.archive import annotations as ann
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig


def test_parquet_sidecar_matches_the_csv_and_is_read_by_row_group(tmp_path: Path) -> None:
    root = tmp_path / "a"
    generate_archive(SynthConfig(out=root, patients=6, seed=3, fs_hz=100, prevalence={"WPW": 1.0}))
    with open(root / "annotations.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and pq.read_table(root / "annotations.parquet").num_rows == len(rows)
    expected: dict[str, list[tuple]] = defaultdict(list)
    for r in rows:
        expected[r["source_path"]].append((r["label"], int(r["start_sample"]), int(r["end_sample"])))

    # small row groups, so most of the file lies outside any one record's groups
    ann.write_annotations_parquet(root / "annotations.csv", root / "annotations.parquet", row_group_rows=4)
    n_groups = pq.ParquetFile(root / "annotations.parquet").metadata.num_row_groups
    assert n_groups > 3
    ann._row_group.cache_clear()
    for source_path, want in expected.items():
        got = [(a.label, a.start_sample, a.end_sample) for a in ann.annotations_for(root, source_path)]
        assert got == want, source_path
        # at most the groups that overlap this record's rows (rows of one record are contiguous)
        assert ann._row_group.cache_info().currsize <= 2
    assert ann.annotations_for(root, "records100/99999/no_such_record") == []
    loaded = ann._row_group.cache_info()
    assert loaded.misses < len(expected) + n_groups  # one group read per group boundary, not per record
