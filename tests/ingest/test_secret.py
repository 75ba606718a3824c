"""The patient-key secret: resolved once on the driver, handed to the workers (never read from their own
environment, never logged), and required when the run joins a Ray cluster."""

from __future__ import annotations

import csv
import logging
import pickle
import uuid
from pathlib import Path

import polars as pl
import pytest

from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake import identity
from rare_ecg.lake.schema import ECG_RECORDS
from tests.archive_fixtures import ptbxl_subset

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("ray_session")]


def test_the_drivers_secret_reaches_the_workers_and_is_never_logged(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # set after Ray started: the worker processes' own environment does not have it
    secret = f"driver-only-{uuid.uuid4().hex}"
    monkeypatch.setenv(identity.SECRET_ENV, secret)
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 6))
    lake = tmp_path / "lake"
    caplog.set_level(logging.DEBUG)
    run_ingest(IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id="r1", fs_hz=100))

    with open(archive / "ptbxl_database.csv", newline="") as fh:
        raw = {r["filename_lr"]: r["patient_id"].removesuffix(".0") for r in csv.DictReader(fh)}
    records = pl.read_delta(str(lake / ECG_RECORDS))
    expected = {p: identity.patient_key("ptbxl", pid, secret.encode()) for p, pid in raw.items()}
    assert dict(records.select("source_path", "patient_key").rows()) == expected
    assert secret not in caplog.text
    wrapped = identity.Secret(secret.encode())
    assert secret not in repr(wrapped) and secret not in str(wrapped)
    assert pickle.loads(pickle.dumps(wrapped)).reveal() == secret.encode()


def test_a_run_that_joins_a_cluster_without_a_secret_is_refused(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    monkeypatch.delenv(identity.SECRET_ENV, raising=False)
    monkeypatch.setenv("RAY_ADDRESS", ray.get_runtime_context().gcs_address)  # joined by address
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 3))
    lake = tmp_path / "lake"
    with pytest.raises(ValueError, match=identity.SECRET_ENV) as err:
        run_ingest(IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id="r1", fs_hz=100))
    assert "\n" not in str(err.value)
    assert not lake.exists() or not any(lake.rglob("*.parquet"))
