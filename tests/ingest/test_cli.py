"""`rare-ecg ingest` as schedulers run it: a subprocess, its exit code, its last-line JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from deltalake import DeltaTable
from pydantic import ValidationError

from rare_ecg.archive import PTBXL_DEFAULT_FS_HZ
from rare_ecg.config import IngestConfig, Settings, load_yaml
from rare_ecg.ingest.job import run_ingest_job
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_REJECTS, ECG_WAVEFORMS

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "jobs" / "configs"


def cli(*args: str, timeout: float = 240, ray_address: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    if ray_address is not None:
        env["RAY_ADDRESS"] = ray_address
    return subprocess.run(
        [sys.executable, "-m", "rare_ecg.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
        check=False,
    )


@pytest.mark.timeout(600)
def test_ingest_cli_500hz_twice_exits_zero_and_the_second_run_adds_nothing(
    shared_data: Path, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    args = (
        "ingest",
        "--archive",
        str(shared_data / "ptbxl-sample"),
        "--layout",
        "ptbxl",
        "--lake",
        str(lake),
    )
    first = cli(*args, "--fs", "500", "--run-id", "cli-1")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    # PTB-XL's ecg_id 138 and 144 are byte copies of 137 and 143 at 500 Hz (same patient, same time,
    # another record name): the same ECG twice, rejected as duplicates naming the original
    assert (summary["records_in"], summary["ingested"], summary["rejected"]) == (250, 248, 2)
    assert "248 ingested" in first.stderr  # the human summary
    assert "ingest: 250/250 records" in first.stderr  # progress lines

    second = cli(*args, "--fs", "500")
    assert second.returncode == 0, second.stderr[-3000:]
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert (again["ingested"], again["skipped_existing"]) == (0, 248)

    for table in (ECG_RECORDS, ECG_LABELS, ECG_WAVEFORMS, ECG_REJECTS):
        n_polars = pl.scan_delta(str(lake / table)).select(pl.len()).collect().item()
        assert n_polars == DeltaTable(str(lake / table)).count()
    assert pl.read_delta(str(lake / ECG_RECORDS)).height == 248
    assert set(pl.read_delta(str(lake / ECG_RECORDS))["fs_hz"].to_list()) == {500.0}
    rejects = pl.read_delta(str(lake / ECG_REJECTS)).sort("source_path")
    assert rejects["source_path"].to_list() == ["records500/00000/00138_hr", "records500/00000/00144_hr"]
    assert set(rejects["reason"].to_list()) == {"duplicate"}
    assert "00137_hr" in rejects["detail"][0] and "00143_hr" in rejects["detail"][1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("ingest", "--archive", "/nonexistent/archive", "--layout", "ptbxl"), "/nonexistent/archive"),
        (("ingest", "--archive", ".", "--layout", "dicom"), "dicom"),
        (("ingest", "--fs", "7"), "fs_hz"),
        (("ingest", "--run-id", "bad id with spaces"), "run_id"),
        (("ingest", "--config", "/nonexistent.yaml"), "/nonexistent.yaml"),
    ],
)
@pytest.mark.timeout(120)
def test_bad_input_exits_nonzero_with_a_one_line_reason(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    # a cluster address nothing answers at: bad input is reported before any cluster is contacted
    result = cli(*args, "--lake", str(tmp_path / "lake"), ray_address="127.0.0.1:9")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("rare-ecg: error:")]
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "lake" / ECG_RECORDS).exists()


def test_shipped_job_configs_are_valid() -> None:
    files = sorted(CONFIGS.glob("*.yaml"))
    assert files
    for path in files:
        data = load_yaml(path)
        if data.get("kind") == "ingest":
            IngestConfig(**data)


@pytest.mark.timeout(300)
@pytest.mark.usefixtures("ray_session")
def test_the_job_module_and_the_cli_make_the_same_records(tmp_path: Path) -> None:
    """jobs/ingest.py (the shipped YAML) and `rare-ecg ingest` with its defaults read PTB-XL at one rate
    and give one ECG one record_id; the job calls the library, not the CLI."""
    shipped = load_yaml(CONFIGS / "ingest.yaml")
    assert IngestConfig(**shipped).fs_hz in (None, PTBXL_DEFAULT_FS_HZ)
    config = tmp_path / "ingest.yaml"
    config.write_text(yaml.safe_dump({**shipped, "lake": str(tmp_path / "job-lake")}))
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    job = subprocess.run(
        [sys.executable, "-m", "jobs.ingest", "--config", str(config)],
        capture_output=True, text=True, timeout=240, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    assert json.loads(job.stdout.strip().splitlines()[-1])["ingested"] == 20
    # what `rare-ecg ingest` runs with its defaults (its subprocess runs are tested above)
    run_ingest_job(IngestConfig(lake=str(tmp_path / "cli-lake")), Settings())

    def records(lake: str) -> list[tuple]:
        df = pl.read_delta(str(tmp_path / lake / ECG_RECORDS))
        return sorted(df.select("record_id", "source_path", "fs_hz", "checksum").rows())

    assert records("job-lake") == records("cli-lake")
    assert {r[2] for r in records("job-lake")} == {float(PTBXL_DEFAULT_FS_HZ)}

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"kind": "ingest", "layuot": "ptbxl"}))
    job = subprocess.run(
        [sys.executable, "-m", "jobs.ingest", "--config", str(bad)],
        capture_output=True, text=True, timeout=60, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert job.returncode == 2
    errors = [line for line in job.stderr.splitlines() if line.startswith("rare-ecg: error:")]
    assert errors == [f"rare-ecg: error: {bad}: layuot: Extra inputs are not permitted (got 'ptbxl')"]


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "ingest", "layuot": "ptbxl"},  # typo: unknown keys are errors
        {"kind": "ingest", "layout": "dicom"},
        {"kind": "ingest", "batch_size": 0},
        {"kind": "ingest", "model_fs_hz": 250},
        {"kind": "score"},
    ],
)
def test_invalid_job_configs_are_rejected(bad: dict, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValidationError):
        IngestConfig(**load_yaml(path))


@pytest.mark.timeout(600)
def test_a_process_killed_mid_run_leaves_no_rows_and_the_retry_completes(
    shared_data: Path, tmp_path: Path
) -> None:
    """SIGKILL the whole job (driver and its Ray processes) once workers have written part files."""
    import signal
    import time

    lake = tmp_path / "lake"
    args = [
        sys.executable, "-m", "rare_ecg.cli", "ingest", "--archive", str(shared_data / "ptbxl-sample"),
        "--layout", "ptbxl", "--fs", "500", "--lake", str(lake), "--run-id", "killed", "--batch-size", "4",
    ]  # fmt: skip
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    stderr = tmp_path / "killed-run.stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            args, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=err
        )
    try:
        deadline = time.monotonic() + 240
        while not list((lake / ECG_WAVEFORMS).rglob("*.parquet")):
            assert proc.poll() is None, (
                f"the run ended before it could be killed: {stderr.read_text()[-3000:]}"
            )
            assert time.monotonic() < deadline, "no part file appeared"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    for table in (ECG_RECORDS, ECG_LABELS, ECG_WAVEFORMS, ECG_REJECTS):
        assert not DeltaTable.is_deltatable(str(lake / table)), f"{table} was committed by a killed run"

    retry = cli("ingest", "--archive", str(shared_data / "ptbxl-sample"), "--layout", "ptbxl", "--fs", "500",
                "--lake", str(lake), "--run-id", "killed")  # fmt: skip
    assert retry.returncode == 0, retry.stderr[-3000:]
    records = pl.read_delta(str(lake / ECG_RECORDS))
    assert records.height == records["record_id"].n_unique() == 248  # and 2 duplicates (see above)
    assert pl.read_delta(str(lake / ECG_WAVEFORMS)).height == 248
