"""Every archive layout and every kind of bad input through the real pipeline: nothing crashes, nothing
is lost (records in = ecg_records rows + ecg_rejects rows), each bad record ends where it should."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.ingest.rows import FLAG_UNMAPPED_LABEL
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_REJECTS, ECG_WAVEFORMS
from tests.archive_fixtures import (
    make_bad_inputs,
    make_challenge_fixture,
    make_mimic_fixture,
    make_wfdb_fixture,
)

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("ray_session")]


def read(lake: Path, table: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / table))


@pytest.mark.parametrize("layout", ["ptbxl", "mimic", "challenge", "wfdb"])
def test_every_kind_of_bad_input_is_rejected_or_flagged_never_lost(
    layout: str, shared_data: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    expected = make_bad_inputs(archive, layout, fs_hz=100, sample=shared_data / "ptbxl-sample")
    lake = tmp_path / "lake"
    summary = run_ingest(
        IngestOptions(archive=archive, layout=layout, lake=str(lake), run_id="bad-1", fs_hz=100, batch_size=4)
    )
    records = read(lake, ECG_RECORDS)
    rejects = read(lake, ECG_REJECTS)
    assert summary.records_in == len(expected)
    assert records.height + rejects.height == len(expected)
    assert rejects["source_path"].n_unique() == rejects.height

    by_path_reject = {r["source_path"]: r for r in rejects.iter_rows(named=True)}
    by_path_record = {r["source_path"]: r for r in records.iter_rows(named=True)}
    for kind, bad in expected.items():
        if bad.reason is not None:
            assert bad.source_path in by_path_reject, f"{kind}: not in ecg_rejects"
            got = by_path_reject[bad.source_path]
            assert got["reason"] == bad.reason, f"{kind}: {got['reason']} ({got['detail']})"
            assert got["detail"], kind
            assert bad.source_path not in by_path_record
            if bad.duplicate_of:
                assert bad.duplicate_of in got["detail"]
        else:
            assert bad.source_path in by_path_record, (
                f"{kind}: not ingested ({by_path_reject.get(bad.source_path)})"
            )
            flags = by_path_record[bad.source_path]["quality_flags"]
            if bad.flag:
                assert bad.flag in flags, f"{kind}: flags {flags}"
            if bad.unmapped_label:
                assert FLAG_UNMAPPED_LABEL in flags
    # an unknown label is kept with its source code, and counted
    unknown = expected["unknown_label"]
    labels = read(lake, ECG_LABELS)
    kept = labels.filter(pl.col("record_id") == by_path_record[unknown.source_path]["record_id"])
    assert kept.filter(pl.col("label").is_null())["source_code"].to_list() == [unknown.unmapped_label]
    assert summary.unmapped_labels.get(str(unknown.unmapped_label)) == 1
    # flagged records still have a model-ready waveform with the bad lead masked out
    waves = read(lake, ECG_WAVEFORMS).filter(
        pl.col("record_id") == by_path_record[expected["nan_lead"].source_path]["record_id"]
    )
    assert waves["lead_mask"][0].to_list()[3] is False  # aVR was all invalid samples
    # re-running adds neither records nor rejects
    again = run_ingest(
        IngestOptions(archive=archive, layout=layout, lake=str(lake), run_id="bad-2", fs_hz=100)
    )
    assert again.ingested == 0
    assert read(lake, ECG_REJECTS).height == rejects.height
    assert read(lake, ECG_RECORDS).height == records.height


def test_mimic_layout_brings_measurements_and_report_labels(shared_data: Path, tmp_path: Path) -> None:
    archive = tmp_path / "mimic"
    fixture = make_mimic_fixture(archive, n=6, sample=shared_data / "ptbxl-sample")
    lake = tmp_path / "lake"
    summary = run_ingest(IngestOptions(archive=archive, layout="mimic", lake=str(lake), run_id="m1"))
    assert (summary.ingested, summary.rejected) == (6, 0)
    records = read(lake, ECG_RECORDS)
    assert set(records["fs_hz"].to_list()) == {500.0}
    assert records["hr_bpm"].null_count() == 0 and records["qrs_ms"].null_count() == 0
    assert records["hr_bpm"].min() > 30 and records["hr_bpm"].max() < 200
    labels = read(lake, ECG_LABELS).join(records.select("record_id", "source_path"), on="record_id")
    for rec in fixture:
        got = set(labels.filter(pl.col("source_path") == rec.source_path)["label"].drop_nulls().to_list())
        assert got == set(rec.codes), rec.source_path
        row = records.filter(pl.col("source_path") == rec.source_path).row(0, named=True)
        assert (row["sex"], row["age"]) == (rec.sex, rec.age)
    # MIMIC writes aVF before aVL: the waveform table is in canonical order whatever the file order
    assert all(mask for masks in read(lake, ECG_WAVEFORMS)["lead_mask"].to_list() for mask in masks)


@pytest.mark.parametrize(
    ("layout", "builder"), [("challenge", make_challenge_fixture), ("wfdb", make_wfdb_fixture)]
)
def test_folder_layouts_ingest_any_rate_and_length(
    layout: str, builder, shared_data: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    archive = tmp_path / layout
    fixture = builder(archive, sample=shared_data / "ptbxl-sample")
    lake = tmp_path / "lake"
    summary = run_ingest(IngestOptions(archive=archive, layout=layout, lake=str(lake), run_id="f1"))
    assert (summary.ingested, summary.rejected) == (len(fixture), 0), summary.rejects_by_reason
    records = read(lake, ECG_RECORDS)
    waves = read(lake, ECG_WAVEFORMS).join(
        records.select("record_id", "source_path", "fs_hz", "n_samples"), on="record_id"
    )
    for rec in fixture:
        row = waves.filter(pl.col("source_path") == rec.source_path).row(0, named=True)
        assert row["fs_hz_right"] == pytest.approx(rec.fs_hz)
        assert row["n_samples_right"] == rec.n_samples
        duration_s = rec.n_samples / rec.fs_hz
        assert row["valid_samples"] == round(duration_s * 100)  # resampled to the model rate
        assert row["n_windows"] == max(1, -(-row["valid_samples"] // 1000))
        present = {lead for lead, ok in zip(
            ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"), row["lead_mask"], strict=True
        ) if ok}  # fmt: skip
        assert present <= set(rec.lead_names)
