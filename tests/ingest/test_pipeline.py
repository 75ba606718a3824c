"""The ingestion job end to end on a real local Ray and real Delta tables in temp folders."""

from __future__ import annotations

import ast
import csv
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import wfdb
from deltalake import DeltaTable

from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.ingest.rows import decode_signal
from rare_ecg.lake.schema import (
    ECG_LABELS,
    ECG_RECORDS,
    ECG_REJECTS,
    ECG_WAVEFORMS,
    SCHEMAS,
)
from rare_ecg.signals.rpeaks import detect_r_peaks
from tests.archive_fixtures import ptbxl_subset

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("ray_session")]


def read(lake: Path, table: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / table))


@pytest.fixture(scope="module")
def ptbxl_lake_100(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    lake = tmp_path_factory.mktemp("lake100")
    opts = IngestOptions(
        archive=shared_data / "ptbxl-sample", layout="ptbxl", lake=str(lake), run_id="run-a", fs_hz=100
    )
    return lake, run_ingest(opts).to_dict()


def test_ptbxl_sample_ingests_every_record_with_its_labels(
    ptbxl_lake_100: tuple[Path, dict], shared_data: Path
) -> None:
    lake, summary = ptbxl_lake_100
    assert summary["records_in"] == 250
    assert summary["ingested"] == 250
    assert summary["rejected"] == 0
    records = read(lake, ECG_RECORDS)
    assert records.height == 250
    assert records["record_id"].n_unique() == 250
    assert set(records["fs_hz"].to_list()) == {100.0}

    with open(shared_data / "ptbxl-sample" / "ptbxl_database.csv", newline="") as fh:
        index = {r["filename_lr"]: r for r in csv.DictReader(fh)}
    expected = {path: set(ast.literal_eval(r["scp_codes"])) for path, r in index.items()}
    labels = read(lake, ECG_LABELS).join(records.select("record_id", "source_path"), on="record_id")
    got = {p: set(g["label"].to_list()) for (p,), g in labels.group_by("source_path")}
    assert got == expected
    assert labels["label"].null_count() == 0
    assert summary["labels"] == sum(len(v) for v in expected.values())
    # likelihood 0 still counts as present (PTB-XL convention)
    rec1 = records.filter(pl.col("source_path") == "records100/00000/00001_lr")["record_id"][0]
    lvolt = labels.filter((pl.col("record_id") == rec1) & (pl.col("label") == "LVOLT"))
    assert lvolt["likelihood"].to_list() == [0.0]

    # demographics: PTB-XL sex 0 = male; ages capped at 90; folds carried
    row = records.filter(pl.col("source_path") == "records100/00000/00002_lr").row(0, named=True)
    assert (row["sex"], row["age"], row["age_band"], row["split_fold"]) == ("male", 19.0, "<40", 2)
    assert records["age"].max() <= 90
    assert records["split_fold"].null_count() == 0


def test_native_signal_is_lossless_and_waveforms_are_model_ready(
    ptbxl_lake_100: tuple[Path, dict], shared_data: Path
) -> None:
    lake, _ = ptbxl_lake_100
    records = read(lake, ECG_RECORDS).sort("source_path").head(5)
    for row in records.iter_rows(named=True):
        ref = wfdb.rdrecord(str(shared_data / "ptbxl-sample" / row["source_path"]), physical=False)
        digital = decode_signal(row["signal"], row["signal_dtype"], len(row["lead_names"]))
        np.testing.assert_array_equal(digital, ref.d_signal.T)
        np.testing.assert_allclose(row["adc_gain"], ref.adc_gain)
        assert row["lead_names"][3] == "aVR"  # AVR normalised

    waves = read(lake, ECG_WAVEFORMS)
    assert waves.height == 250
    assert set(waves["n_samples"].to_list()) == {1000}
    assert set(waves["fs_hz"].to_list()) == {100}
    signals = np.asarray(waves["signal"].list.to_array(12 * 1000).to_numpy()).reshape(-1, 12, 1000)
    assert signals.dtype == np.float32
    mask = np.asarray(waves["lead_mask"].to_list())
    present = signals[mask]
    assert np.allclose(present.mean(axis=-1), 0, atol=0.05)
    sd = present.std(axis=-1)
    assert np.median(sd) == pytest.approx(1.0, abs=0.01)
    assert sd.max() <= 1.0 + 1e-4  # clipping at 8 SD can only shrink it
    assert np.abs(present).max() <= 8.0 + 1e-5


def test_beat_positions_are_the_detectors_r_peaks_of_the_stored_signal(
    ptbxl_lake_100: tuple[Path, dict], shared_data: Path
) -> None:
    lake, _ = ptbxl_lake_100
    waves = read(lake, ECG_WAVEFORMS).join(
        read(lake, ECG_RECORDS).select("record_id", "source_path"), on="record_id"
    )
    assert waves.schema["beat_positions"] == pl.List(pl.Int32)
    # detected from the filter spectrum the stored signal comes from: the peaks detect_r_peaks finds on
    # the stored signal, each within one sample (tests/signals/test_preprocess.py: nearly all identical)
    for row in waves.sort("source_path").head(8).iter_rows(named=True):
        signal = np.asarray(row["signal"], dtype=np.float32).reshape(12, row["n_samples"])
        expected = detect_r_peaks(signal[:, : row["valid_samples"]], row["fs_hz"])
        assert len(row["beat_positions"]) == len(expected)
        assert np.abs(np.asarray(row["beat_positions"]) - expected).max() <= 1
    # and they are heart beats: every record of the sample has some, at physiological intervals
    counts = waves["beat_positions"].list.len()
    assert counts.min() >= 4
    rr_s = np.concatenate([np.diff(b) for b in waves["beat_positions"].to_list()]) / 100.0
    assert 0.25 <= np.median(rr_s) <= 1.5
    # against the raw record: peaks of the native 100 Hz lead II sit within 50 ms of the stored ones
    row = waves.filter(pl.col("source_path") == "records100/00000/00001_lr").row(0, named=True)
    ref = wfdb.rdrecord(str(shared_data / "ptbxl-sample" / row["source_path"]))
    native = detect_r_peaks(ref.p_signal.T, ref.fs)
    stored = np.asarray(row["beat_positions"])
    assert len(native) == len(stored)
    assert np.abs(native - stored).max() <= 5


def test_no_raw_patient_identifier_reaches_the_lake(
    ptbxl_lake_100: tuple[Path, dict], shared_data: Path
) -> None:
    lake, _ = ptbxl_lake_100
    with open(shared_data / "ptbxl-sample" / "ptbxl_database.csv", newline="") as fh:
        raw_ids = {r["patient_id"].removesuffix(".0") for r in csv.DictReader(fh)}
    records = read(lake, ECG_RECORDS)
    keys = records["patient_key"].drop_nulls()
    assert keys.n_unique() == len(raw_ids)  # one key per patient: longitudinal queries still work
    for table in (ECG_RECORDS, ECG_LABELS, ECG_WAVEFORMS):
        df = read(lake, table)
        for name, dtype in df.schema.items():
            if dtype == pl.String:
                values = set(df[name].drop_nulls().to_list())
                assert not values & raw_ids, f"raw patient id in {table}.{name}"


def test_tables_keep_the_contract_schema_and_every_reader_reads_them(
    ptbxl_lake_100: tuple[Path, dict],
) -> None:
    lake, _ = ptbxl_lake_100
    for table in (ECG_RECORDS, ECG_LABELS, ECG_WAVEFORMS, ECG_REJECTS):
        dt = DeltaTable(str(lake / table))
        assert [f.name for f in dt.schema().fields] == SCHEMAS[table].names
        n_delta = dt.count()
        assert pl.scan_delta(str(lake / table)).select(pl.len()).collect().item() == n_delta
        history = dt.history()
        assert history[0]["rare_ecg.run_id"] == "run-a"


def test_records_files_carry_recorded_at_statistics_that_bound_their_rows(
    ptbxl_lake_100: tuple[Path, dict],
) -> None:
    """Readers skip files by time: every records file has a min/max recorded_at in the Delta log."""
    import pyarrow as pa

    lake, _ = ptbxl_lake_100
    actions = pa.table(DeltaTable(str(lake / ECG_RECORDS)).get_add_actions(flatten=True))
    records = read(lake, ECG_RECORDS)
    lo, hi = actions.column("min.recorded_at").to_pylist(), actions.column("max.recorded_at").to_pylist()
    assert None not in lo and None not in hi
    assert min(lo) <= records["recorded_at"].min() and max(hi) >= records["recorded_at"].max()


def test_rerun_adds_nothing_and_a_grown_archive_adds_only_new_records(
    shared_data: Path, tmp_path: Path
) -> None:
    src = shared_data / "ptbxl-sample"
    archive = ptbxl_subset(src, tmp_path / "archive", range(1, 31))
    lake = tmp_path / "lake"

    def run(run_id: str) -> dict:
        return run_ingest(
            IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id=run_id, fs_hz=100)
        ).to_dict()

    first = run("r1")
    assert first["ingested"] == 30
    n_labels = read(lake, ECG_LABELS).height
    assert n_labels == first["labels"] > 30
    versions = {t: DeltaTable(str(lake / t)).version() for t in (ECG_RECORDS, ECG_LABELS, ECG_WAVEFORMS)}

    again = run("r1")  # a retried run with the same id: a no-op
    assert again["already_committed"] is True
    assert {t: DeltaTable(str(lake / t)).version() for t in versions} == versions

    fresh = run("r2")  # a new run over the same archive: every record already there
    assert (fresh["ingested"], fresh["skipped_existing"], fresh["rejected"]) == (0, 30, 0)
    assert read(lake, ECG_RECORDS).height == 30
    assert read(lake, ECG_LABELS).height == n_labels

    ptbxl_subset(src, archive, range(1, 46))  # the archive grows by 15 records
    grown = run("r3")
    assert (grown["ingested"], grown["skipped_existing"]) == (15, 30)
    records = read(lake, ECG_RECORDS)
    assert records.height == 45
    assert records["record_id"].n_unique() == 45
    assert records.group_by("ingest_run_id").len().sort("ingest_run_id").rows() == [("r1", 30), ("r3", 15)]


class Killed(RuntimeError):
    pass


@pytest.mark.parametrize("killed_at", [ECG_WAVEFORMS, ECG_RECORDS])
def test_a_run_killed_before_its_commit_leaves_no_rows_and_its_retry_completes(
    shared_data: Path, tmp_path: Path, killed_at: str
) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 21))
    lake = tmp_path / "lake"
    opts = IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id="r1", fs_hz=100)

    def kill(table: str) -> None:
        if table == killed_at:
            raise Killed(table)

    with pytest.raises(Killed):
        run_ingest(opts, before_commit=kill)
    # nothing of the killed table (and nothing after it) is visible, though its files were written
    assert not DeltaTable.is_deltatable(str(lake / killed_at))
    assert not DeltaTable.is_deltatable(str(lake / ECG_RECORDS))
    assert any((lake / killed_at).rglob("*.parquet"))

    retry = run_ingest(opts)
    assert retry.ingested == 20
    records = read(lake, ECG_RECORDS)
    labels = read(lake, ECG_LABELS)
    assert records.height == 20
    assert labels.height == labels.unique(["record_id", "label"]).height  # no label written twice
    assert read(lake, ECG_WAVEFORMS).height == 20


def test_duplicates_are_rejected_deterministically(shared_data: Path, tmp_path: Path) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 11))
    # record 10 becomes an exact copy of record 3 (same header and signal bytes)
    for col, suffix in (("records100", "lr"), ("records500", "hr")):
        for ext in (".hea", ".dat"):
            shutil.copy(
                archive / f"{col}/00000/00003_{suffix}{ext}", archive / f"{col}/00000/00010_{suffix}{ext}"
            )
    lake = tmp_path / "lake"
    summary = run_ingest(
        IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id="r1", fs_hz=100, batch_size=3)
    )
    assert (summary.ingested, summary.rejected) == (9, 1)
    rejects = read(lake, ECG_REJECTS)
    assert rejects.select("source_path", "reason").rows() == [("records100/00000/00010_lr", "duplicate")]
    assert "records100/00000/00003_lr" in rejects["detail"][0]
    paths = set(read(lake, ECG_RECORDS)["source_path"].to_list())
    assert "records100/00000/00003_lr" in paths and "records100/00000/00010_lr" not in paths
    assert read(lake, ECG_WAVEFORMS).height == 9
    assert summary.records_in == read(lake, ECG_RECORDS).height + rejects.height


def test_a_record_changed_in_place_is_rejected_not_added_twice(shared_data: Path, tmp_path: Path) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 6))
    lake = tmp_path / "lake"

    def run(run_id: str) -> dict:
        return run_ingest(
            IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id=run_id, fs_hz=100)
        ).to_dict()

    assert run("r1")["ingested"] == 5
    dat = archive / "records100/00000/00002_lr.dat"
    data = bytearray(dat.read_bytes())
    data[100] ^= 0xFF  # the file changes after it was ingested
    dat.write_bytes(bytes(data))
    second = run("r2")
    assert (second["ingested"], second["skipped_existing"], second["rejected"]) == (0, 4, 1)
    records = read(lake, ECG_RECORDS)
    assert records.height == records["record_id"].n_unique() == 5
    reject = read(lake, ECG_REJECTS).row(0, named=True)
    assert (reject["source_path"], reject["reason"]) == ("records100/00000/00002_lr", "duplicate")
    assert "other file contents" in reject["detail"]


def test_two_archives_with_the_same_paths_live_in_one_lake_under_their_own_source(
    shared_data: Path, tmp_path: Path
) -> None:
    """Two PTB-XL-layout archives share relative paths (records100/00000/00001_lr...): their source names
    keep their record ids apart; without one, the second archive's records are rejected, never merged."""
    first = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "a", range(1, 6))
    second = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "b", range(1, 6))
    dat = second / "records100/00000/00001_lr.dat"
    data = bytearray(dat.read_bytes())
    data[50] ^= 0x01
    dat.write_bytes(bytes(data))
    lake = tmp_path / "lake"

    def run(archive: Path, run_id: str, source: str | None) -> dict:
        opts = IngestOptions(
            archive=archive, layout="ptbxl", lake=str(lake), run_id=run_id, fs_hz=100, source=source
        )
        return run_ingest(opts).to_dict()

    assert run(first, "r1", None)["ingested"] == 5
    assert run(second, "r2", "hospital-b")["ingested"] == 1  # its 4 other records are byte copies of a's
    records = read(lake, ECG_RECORDS)
    assert records.height == records["record_id"].n_unique()
    assert sorted(records.group_by("source").len().rows()) == [("hospital-b", 1), ("ptbxl", 5)]
    rejects = read(lake, ECG_REJECTS)
    assert sorted(rejects["reason"].to_list()) == ["duplicate"] * 4  # same signal bytes as archive a
    assert set(rejects["source"].to_list()) == {"hospital-b"}


def test_the_ingest_dataset_settings_do_not_leak_into_later_ray_data_jobs(
    shared_data: Path, tmp_path: Path
) -> None:
    """Ingest turns off two Ray Data scheduling defaults for its own dataset (benchmarks/README.md);
    the driver's DataContext has its own values again afterwards."""
    import ray

    ctx = ray.data.DataContext.get_current()
    before = (ctx.op_resource_reservation_enabled, ctx.downstream_capacity_backpressure_ratio)
    ctx.op_resource_reservation_enabled, ctx.downstream_capacity_backpressure_ratio = True, 3.0
    try:
        archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 9))
        summary = run_ingest(
            IngestOptions(
                archive=archive, layout="ptbxl", lake=str(tmp_path / "lake"), run_id="ctx", fs_hz=100
            )
        )
        assert summary.ingested == 8
        assert (ctx.op_resource_reservation_enabled, ctx.downstream_capacity_backpressure_ratio) == (
            True,
            3.0,
        )
    finally:
        ctx.op_resource_reservation_enabled, ctx.downstream_capacity_backpressure_ratio = before
