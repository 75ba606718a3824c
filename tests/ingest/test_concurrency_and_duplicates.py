"""Content duplicates (the same ECG under another record name) and concurrent ingest runs on one lake:
every record lands exactly once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_REJECTS, ECG_WAVEFORMS
from tests.archive_fixtures import ptbxl_subset

pytestmark = [pytest.mark.timeout(300)]
REPO = Path(__file__).resolve().parents[2]


def read(lake: Path, table: str) -> pl.DataFrame:
    return pl.read_delta(str(lake / table))


def _renamed_copy(folder: Path, name: str, new_name: str) -> None:
    """A byte-identical signal under a new record name: another header (record line and file name),
    so another file checksum, but the same ECG."""
    text = (folder / f"{name}.hea").read_text().replace(name, new_name)
    (folder / f"{new_name}.hea").write_text(text)
    shutil.copy(folder / f"{name}.dat", folder / f"{new_name}.dat")


def _wfdb_archive(shared_data: Path, dst: Path, n: int) -> Path:
    src = shared_data / "ptbxl-sample" / "records100" / "00000"
    dst.mkdir(parents=True)
    for i in range(1, n + 1):
        for ext in (".hea", ".dat"):
            shutil.copy(src / f"{i:05d}_lr{ext}", dst / f"{i:05d}_lr{ext}")
    return dst


@pytest.mark.usefixtures("ray_session")
def test_the_same_signal_under_another_name_is_a_duplicate_in_one_run_and_across_runs(
    shared_data: Path, tmp_path: Path
) -> None:
    archive = _wfdb_archive(shared_data, tmp_path / "archive", 4)
    _renamed_copy(archive, "00002_lr", "zz_copy_of_2")
    lake = tmp_path / "lake"

    def run(run_id: str) -> dict:
        return run_ingest(
            IngestOptions(archive=archive, layout="wfdb", lake=str(lake), run_id=run_id)
        ).to_dict()

    first = run("r1")
    assert (first["ingested"], first["rejected"]) == (4, 1)
    reject = read(lake, ECG_REJECTS).row(0, named=True)
    assert (reject["source_path"], reject["reason"]) == ("zz_copy_of_2", "duplicate")
    assert "00002_lr" in reject["detail"]  # names the record it duplicates

    _renamed_copy(archive, "00003_lr", "aa_copy_of_3")  # sorts before its original: still a duplicate
    second = run("r2")
    assert (second["ingested"], second["skipped_existing"], second["rejected"]) == (0, 4, 2)
    rejects = read(lake, ECG_REJECTS).filter(pl.col("source_path") == "aa_copy_of_3").row(0, named=True)
    assert rejects["reason"] == "duplicate"
    assert "wfdb/00003_lr" in rejects["detail"] and ECG_RECORDS in rejects["detail"]
    records = read(lake, ECG_RECORDS)
    assert sorted(records["source_path"].to_list()) == [f"{i:05d}_lr" for i in range(1, 5)]
    assert records["signal_sha256"].n_unique() == 4
    assert read(lake, ECG_WAVEFORMS).height == 4


@pytest.mark.usefixtures("ray_session")
def test_one_ecg_is_one_record_whatever_rate_is_read(shared_data: Path, tmp_path: Path) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 6))
    lake = tmp_path / "lake"

    def run(run_id: str, fs_hz: int) -> dict:
        opts = IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id=run_id, fs_hz=fs_hz)
        return run_ingest(opts).to_dict()

    assert run("at-500", 500)["ingested"] == 5
    ids_500 = set(read(lake, ECG_RECORDS)["record_id"].to_list())
    again = run("at-100", 100)
    assert (again["ingested"], again["rejected"]) == (0, 5)
    records = read(lake, ECG_RECORDS)
    assert set(records["record_id"].to_list()) == ids_500 and records.height == 5
    assert set(read(lake, ECG_REJECTS)["reason"].to_list()) == {"duplicate"}
    assert read(lake, ECG_WAVEFORMS).height == 5


class _OtherRun:
    """At this run's records commit, another whole run of the same archive commits first."""

    def __init__(self, opts: IngestOptions) -> None:
        self.opts = opts
        self.calls = 0

    def __call__(self, table: str) -> None:
        if table == ECG_RECORDS and self.calls == 0:
            self.calls += 1
            other = run_ingest(self.opts)
            assert other.ingested == 10


@pytest.mark.usefixtures("ray_session")
def test_a_run_overtaken_at_its_commit_drops_what_the_other_run_committed(
    shared_data: Path, tmp_path: Path
) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 11))
    lake = tmp_path / "lake"

    def opts(run_id: str) -> IngestOptions:
        return IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id=run_id, fs_hz=100)

    # run a has written and committed its labels and waveforms when run b commits everything
    summary = run_ingest(opts("a"), before_commit=_OtherRun(opts("b")))
    assert (summary.ingested, summary.skipped_existing, summary.rejected) == (0, 10, 0)
    for table in (ECG_RECORDS, ECG_WAVEFORMS):
        df = read(lake, table)
        assert df.height == df["record_id"].n_unique() == 10, table
        assert set(df["ingest_run_id"].to_list()) == {"b"}
    labels = read(lake, ECG_LABELS)
    assert labels.height == labels.unique(["record_id", "label"]).height
    assert set(labels["ingest_run_id"].to_list()) == {"b"}
    assert not Path(lake / ECG_REJECTS).exists() or read(lake, ECG_REJECTS).is_empty()


def test_two_concurrent_ingest_processes_commit_every_record_exactly_once(
    shared_data: Path, tmp_path: Path
) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 41))
    lake = tmp_path / "lake"
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    args = [sys.executable, "-m", "rare_ecg.cli", "ingest", "--archive", str(archive), "--layout", "ptbxl",
            "--fs", "100", "--lake", str(lake)]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*args, "--run-id", f"p{i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        for i in (1, 2)
    ]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    summaries = [json.loads(out.strip().splitlines()[-1]) for out, _ in results]
    assert sum(s["ingested"] for s in summaries) == 40
    assert all(s["ingested"] + s["skipped_existing"] == 40 for s in summaries)
    for table in (ECG_RECORDS, ECG_WAVEFORMS):
        df = read(lake, table)
        assert df.height == df["record_id"].n_unique() == 40, table
    labels = read(lake, ECG_LABELS)
    assert labels.height == labels.unique(["record_id", "label"]).height
    assert labels["record_id"].n_unique() == 40


@pytest.mark.usefixtures("ray_session")
def test_a_run_overtaken_on_a_lake_with_records_rejects_the_signal_the_other_run_committed(
    shared_data: Path, tmp_path: Path
) -> None:
    """The lake already holds records when run a starts (the late check reads only what was committed
    after a's snapshot); run b commits record 1's signal under another name while a is at its commit."""
    lake = tmp_path / "lake"
    before = _wfdb_archive(shared_data, tmp_path / "before", 8)
    for i in range(1, 6):  # the lake holds records 6-8 of another archive
        for ext in (".hea", ".dat"):
            (before / f"{i:05d}_lr{ext}").unlink()
    assert run_ingest(IngestOptions(before, "wfdb", str(lake), "before")).ingested == 3
    archive_a = _wfdb_archive(shared_data, tmp_path / "a", 5)
    archive_b = _wfdb_archive(shared_data, tmp_path / "b", 1)
    _renamed_copy(archive_b, "00001_lr", "zz_renamed_1")
    for ext in (".hea", ".dat"):
        (archive_b / f"00001_lr{ext}").unlink()

    class _OtherArchive:
        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, table: str) -> None:
            if table == ECG_RECORDS and self.calls == 0:
                self.calls += 1
                other = run_ingest(IngestOptions(archive_b, "wfdb", str(lake), "b", source="other"))
                assert other.ingested == 1

    summary = run_ingest(IngestOptions(archive_a, "wfdb", str(lake), "a"), before_commit=_OtherArchive())
    assert (summary.ingested, summary.rejected) == (4, 1)
    records = read(lake, ECG_RECORDS)
    assert records.height == records["record_id"].n_unique() == 3 + 1 + 4
    assert records["signal_sha256"].n_unique() == 8  # record 1's signal once, under b's name
    assert records.filter(pl.col("ingest_run_id") == "b")["source_path"].to_list() == ["zz_renamed_1"]
    reject = read(lake, ECG_REJECTS).filter(pl.col("run_id") == "a").row(0, named=True)
    assert (reject["source_path"], reject["reason"]) == ("00001_lr", "duplicate")
    assert "other/zz_renamed_1" in reject["detail"]
    waveforms = read(lake, ECG_WAVEFORMS)
    assert waveforms.height == 8 and waveforms["record_id"].n_unique() == 8
