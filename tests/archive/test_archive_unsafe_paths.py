"""No file outside the archive root is ever opened: headers, index tables and symlinks that point out of
the archive are rejected as unsafe_path before the file is opened (an audit hook records every open)."""

from __future__ import annotations

import csv
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from rare_ecg.archive import open_archive
from rare_ecg.archive.record import REASON_UNSAFE_PATH, RecordError, RecordRef

N = 1000
_OPENED: list[str] = []
_WATCHING = [False]


def _audit(event: str, args: tuple) -> None:
    if _WATCHING[0] and event == "open" and isinstance(args[0], str | bytes | Path):
        _OPENED.append(str(args[0] if not isinstance(args[0], bytes) else args[0].decode()))


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only while a test watches


@contextmanager
def watch_opens() -> Iterator[list[str]]:
    """The paths opened inside the block."""
    _OPENED.clear()
    _WATCHING[0] = True
    try:
        yield _OPENED
    finally:
        _WATCHING[0] = False


def _frames() -> bytes:
    t = np.arange(N) / 500.0
    return (np.sin(2 * np.pi * 1.2 * t) * 1000).astype("<i2").reshape(N, 1).tobytes()


def _header(signal_file: str) -> str:
    return f"r 1 500 {N}\n{signal_file} 16 1000/mV 16 0 0 0 0 II\n"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A large, valid-length signal file beside the archive: what an attacker would have read."""
    path = tmp_path / "secret.dat"
    path.write_bytes(_frames() * 50)
    return path


def _archive(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    (root / "recs").mkdir(parents=True)
    (root / "recs" / "good.hea").write_text(_header("good.dat"))
    (root / "recs" / "good.dat").write_bytes(_frames())
    return root


@pytest.mark.parametrize("kind", ["relative", "absolute", "symlink"])
def test_a_signal_file_outside_the_root_is_rejected_and_never_opened(
    tmp_path: Path, outside: Path, kind: str
) -> None:
    root = _archive(tmp_path)
    target = {
        "relative": "../../secret.dat",
        "absolute": str(outside),
        "symlink": "link.dat",
    }[kind]
    if kind == "symlink":
        (root / "recs" / "link.dat").symlink_to(outside)
    (root / "recs" / "evil.hea").write_text(_header(target))
    reader = open_archive(root, "wfdb")
    with watch_opens() as opened:
        assert reader.read(RecordRef("recs/good")).n_samples == N  # the good one still reads
        with pytest.raises(RecordError) as err:
            reader.read(RecordRef("recs/evil"))
    assert err.value.reason == REASON_UNSAFE_PATH
    assert "recs/evil" in err.value.detail and "outside the archive root" in err.value.detail
    assert str(outside) not in opened
    package = Path(open_archive.__code__.co_filename).resolve().parents[1]  # its label tables
    outside_root = [p for p in opened if not Path(p).resolve().is_relative_to(root.resolve())]
    assert all(Path(p).resolve().is_relative_to(package) for p in outside_root), outside_root


def test_a_header_symlinked_out_of_the_root_is_rejected_and_never_opened(tmp_path: Path) -> None:
    root = _archive(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.hea").write_text(_header("x.dat"))
    (elsewhere / "x.dat").write_bytes(_frames())
    (root / "recs" / "x.hea").symlink_to(elsewhere / "x.hea")
    with watch_opens() as opened, pytest.raises(RecordError) as err:
        open_archive(root, "wfdb").read(RecordRef("recs/x"))
    assert err.value.reason == REASON_UNSAFE_PATH
    assert not any("elsewhere" in p for p in opened)


def test_a_ptbxl_index_row_pointing_out_of_the_root_is_rejected(shared_data: Path, tmp_path: Path) -> None:
    root = tmp_path / "ptbxl"
    root.mkdir()
    src = shared_data / "ptbxl-sample"
    shutil.copy(src / "scp_statements.csv", root)
    with open(src / "ptbxl_database.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    # the record itself lies beside the archive: a perfectly valid ECG, but not the archive's
    beside = tmp_path / "beside"
    beside.mkdir()
    for ext in (".hea", ".dat"):
        shutil.copy(src / f"{row['filename_lr']}{ext}", beside / f"r{ext}")
    row["filename_lr"] = "../beside/r"
    with open(root / "ptbxl_database.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(row))
        writer.writeheader()
        writer.writerow(row)
    reader = open_archive(root, "ptbxl", fs_hz=100)
    (ref,) = list(reader.list_refs())
    with watch_opens() as opened, pytest.raises(RecordError) as err:
        reader.read(ref)
    assert err.value.reason == REASON_UNSAFE_PATH
    assert not any("beside" in p for p in opened)
