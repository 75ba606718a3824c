"""A generated cohort goes through the same ingestion as real data: 0 rejects, the documented label
frequencies and the ground-truth masks arrive in the lake."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake.schema import ECG_ANNOTATIONS, ECG_LABELS, ECG_RECORDS
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig

pytestmark = [pytest.mark.timeout(400), pytest.mark.usefixtures("ray_session")]


@pytest.mark.parametrize(("layout", "fs_hz"), [("ptbxl", 500), ("ptbxl", 100), ("mimic", 500)])
def test_synthetic_archive_ingests_with_its_labels_and_masks(layout: str, fs_hz: int, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    synth = generate_archive(
        SynthConfig(out=archive, patients=25, seed=11, fs_hz=fs_hz, layout=layout, workers=2)
    )
    lake = tmp_path / "lake"
    summary = run_ingest(
        IngestOptions(
            archive=archive,
            layout=layout,
            lake=str(lake),
            run_id="s1",
            fs_hz=fs_hz if layout == "ptbxl" else None,
        )
    )
    assert (summary.ingested, summary.rejected) == (synth["records"], 0), summary.rejects_by_reason
    assert summary.unmapped_labels == {}  # every generated label maps back onto its SCP code

    records = pl.read_delta(str(lake / ECG_RECORDS))
    labels = pl.read_delta(str(lake / ECG_LABELS))
    per_record = labels.group_by("record_id").agg(pl.col("label").unique())
    counts = Counter(code for codes in per_record["label"].to_list() for code in codes)
    assert dict(counts) == synth["label_counts"]
    for code, freq in synth["label_frequency"].items():
        assert counts[code] / records.height == pytest.approx(freq, abs=1e-5)

    with open(archive / "annotations.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    ann = pl.read_delta(str(lake / ECG_ANNOTATIONS)).join(
        records.select("record_id", "source_path", "fs_hz", "n_samples"), on="record_id"
    )
    wanted = {p for p in records["source_path"].to_list()}
    expected = {
        (r["source_path"], r["label"], r["lead"], int(r["start_sample"]), int(r["end_sample"]))
        for r in truth
        if r["source_path"] in wanted
    }
    got = set(ann.select("source_path", "label", "lead", "start_sample", "end_sample").iter_rows())
    assert got == expected and len(got) > 0
    assert (ann["end_sample"] <= ann["n_samples"]).all() and (ann["start_sample"] < ann["end_sample"]).all()
    assert ann["label"].is_in(labels["label"].drop_nulls().unique().to_list()).all()
