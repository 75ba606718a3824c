"""A whole ingest into an s3:// lake on an S3-compatible server (moto's server mode on 127.0.0.1): every
write, Delta log and Parquet part files alike, goes through RARE_ECG_STORAGE_OPTIONS."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake.files import parquet_files_dataset
from rare_ecg.lake.paths import STORAGE_OPTIONS_ENV
from rare_ecg.lake.schema import ECG_LABELS, ECG_RECORDS, ECG_WAVEFORMS
from tests.archive_fixtures import ptbxl_subset

pytestmark = [pytest.mark.timeout(300)]
BUCKET = "rare-ecg-lake"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3_options(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """moto's S3 server in its own process (delta-rs calls hold the GIL: a server thread in this
    process would stall them), on a free port of 127.0.0.1, with one bucket."""
    pytest.importorskip("moto.server")

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    options = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
        "aws_conditional_put": "etag",
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"moto server did not start on port {port}") from None
                time.sleep(0.2)
        _client(endpoint).create_bucket(Bucket=BUCKET)
        monkeypatch.setenv(STORAGE_OPTIONS_ENV, json.dumps(options))
        yield options
    finally:
        server.terminate()
        server.wait(timeout=30)


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )


@pytest.mark.usefixtures("ray_session")
def test_ingest_into_an_s3_lake_and_a_rerun_adds_nothing(
    shared_data: Path, tmp_path: Path, s3_options: dict[str, str]
) -> None:
    archive = ptbxl_subset(shared_data / "ptbxl-sample", tmp_path / "archive", range(1, 9))
    lake = f"s3://{BUCKET}/lake"

    def run(run_id: str) -> dict:
        opts = IngestOptions(archive=archive, layout="ptbxl", lake=lake, run_id=run_id, fs_hz=100)
        return run_ingest(opts).to_dict()

    assert run("s3-1")["ingested"] == 8
    second = run("s3-2")
    assert (second["ingested"], second["skipped_existing"]) == (0, 8)

    def read(table: str) -> pl.DataFrame:
        return pl.read_delta(f"{lake}/{table}", storage_options=s3_options)

    for table in (ECG_RECORDS, ECG_WAVEFORMS):
        df = read(table)
        assert df.height == df["record_id"].n_unique() == 8
    assert read(ECG_LABELS)["record_id"].n_unique() == 8
    # nothing went to a local folder named like the bucket: every part file is in the object store
    assert not Path(BUCKET).exists() and not (Path.cwd() / "s3:").exists()
    client = _client(s3_options["AWS_ENDPOINT_URL"])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="lake/")["Contents"]]
    assert any(k.startswith(f"lake/{ECG_RECORDS}/source=ptbxl/part-") for k in keys)
    assert any(k.startswith(f"lake/{ECG_RECORDS}/_delta_log/") for k in keys)

    # what training and scoring stream the lake with: the driver's storage options reach the read
    # tasks (this session's Ray workers started before the test set them in the environment)
    uris = DeltaTable(f"{lake}/{ECG_WAVEFORMS}", storage_options=s3_options).file_uris()
    ds = parquet_files_dataset(uris, ["record_id", "n_windows", "signal"], num_cpus=0.25)
    streamed = pl.from_arrow(pa.concat_tables(ds.iter_batches(batch_format="pyarrow", batch_size=None)))
    assert isinstance(streamed, pl.DataFrame) and streamed.columns == ["record_id", "n_windows", "signal"]
    stored = read(ECG_WAVEFORMS).select(streamed.columns)
    assert streamed.sort("record_id").equals(stored.sort("record_id"))
