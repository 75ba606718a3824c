"""The driver streams an archive's listing into Ray Data: its memory does not grow with the archive."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from rare_ecg.archive.ptbxl import PtbxlReader
from rare_ecg.archive.record import RecordRef
from rare_ecg.ingest.pipeline import STAGING_PREFIX, IngestOptions, run_ingest

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("ray_session")]

N_ROWS = 3000
# bytes of index text per record: the listing is ~48 MB, far above one staged file (at most
# SPOOL_BATCHES * 64 refs: ~4 MB here)
PAD = 16_000


def big_index_archive(root: Path) -> Path:
    """A PTB-XL index of N_ROWS records with bulky index rows and no signal files (every record is
    rejected as missing, so the run is quick while its listing is large)."""
    root.mkdir()
    columns = ["ecg_id", "patient_id", "age", "sex", "recording_date", "scp_codes", "strat_fold"]
    with open(root / "ptbxl_database.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*columns, "filename_lr", "filename_hr"])
        for i in range(1, N_ROWS + 1):
            scp = f"{{'NORM': 100.0, 'PAD{i}': '{'x' * PAD}'}}"
            path = f"records100/{i:05d}_lr"
            writer.writerow(
                [i, 1000 + i, 50, 0, "1990-01-01 00:00:00", scp, 1, path, path.replace("lr", "hr")]
            )
    return root


def test_the_driver_never_holds_the_whole_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrow's allocator counts every byte the driver's listing tables hold: sample it as refs stream out
    samples: list[int] = []
    original = PtbxlReader.list_refs

    def sampled(self: PtbxlReader) -> Iterator[RecordRef]:
        for i, ref in enumerate(original(self)):
            if i % 50 == 0:
                samples.append(pa.total_allocated_bytes())
            yield ref
        samples.append(pa.total_allocated_bytes())

    monkeypatch.setattr(PtbxlReader, "list_refs", sampled)
    lake = tmp_path / "lake"
    summary = run_ingest(
        IngestOptions(big_index_archive(tmp_path / "archive"), "ptbxl", str(lake), "run-stream", fs_hz=100)
    )
    assert summary.records_in == N_ROWS
    assert summary.rejects_by_reason == {"missing_file": N_ROWS}
    listing_bytes = N_ROWS * PAD
    growth = max(samples) - samples[0]
    assert growth < listing_bytes / 8, (
        f"driver held {growth / 2**20:.1f} MiB of a {listing_bytes / 2**20:.0f} MiB listing"
    )
    assert not list(lake.glob(f"{STAGING_PREFIX}*")), "the staged listing outlived its run"


def test_the_staged_listing_is_removed_when_a_run_fails(tmp_path: Path) -> None:
    lake = tmp_path / "lake"

    def fail(done: int, total: int, seconds: float) -> None:
        assert list(lake.glob(f"{STAGING_PREFIX}*")), (
            "the listing is staged under the lake while the run lasts"
        )
        raise RuntimeError("interrupted")

    opts = IngestOptions(big_index_archive(tmp_path / "archive"), "ptbxl", str(lake), "run-fail", fs_hz=100)
    with pytest.raises(RuntimeError, match="interrupted"):
        run_ingest(opts, progress=fail)
    assert not list(lake.glob(f"{STAGING_PREFIX}*"))
