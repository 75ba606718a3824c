"""Archive readers: one per layout, all yielding the same EcgRecord.

``open_archive(root, layout)`` returns a reader; ``reader.list_refs()`` streams the records the archive
knows of without reading signals, and ``reader.read(ref)`` reads one (or raises RecordError with a
reject reason). Readers hold only their root and options, so they pickle into Ray tasks.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from rare_ecg.archive.base import ArchiveReader
from rare_ecg.archive.fields import FLAG_IMPLAUSIBLE_AGE
from rare_ecg.archive.folder import FolderReader
from rare_ecg.archive.mimic import RECORD_LIST_CSV, MimicReader
from rare_ecg.archive.ptbxl import DATABASE_CSV, PtbxlReader

LAYOUTS = ("ptbxl", "mimic", "challenge", "wfdb")
PTBXL_DEFAULT_FS_HZ = 100  # the model rate (METHOD.md): read PTB-XL's records100 unless told otherwise

__all__ = [
    "FLAG_IMPLAUSIBLE_AGE",
    "LAYOUTS",
    "ArchiveReader",
    "example_archive_path",
    "open_archive",
]


def open_archive(root: Path | str, layout: str, *, fs_hz: int | None = None) -> ArchiveReader:
    """The reader for the archive at ``root`` in ``layout`` (one of LAYOUTS).

    ``fs_hz`` picks PTB-XL's copy (100 -> records100, 500 -> records500; default 100). The other layouts
    store one rate per record and are read at that native rate, so they ignore it.
    Raises ValueError naming the offending value for an unknown layout, a missing root or index table,
    or a PTB-XL rate that is not stored.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown archive layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    path = Path(root)
    if not path.is_dir():
        raise ValueError(f"archive root {str(root)!r} is not a directory")
    if layout == "ptbxl":
        _require(path / DATABASE_CSV, layout)
        return PtbxlReader(path, fs_hz=PTBXL_DEFAULT_FS_HZ if fs_hz is None else fs_hz)
    if layout == "mimic":
        _require(path / RECORD_LIST_CSV, layout)
        return MimicReader(path)
    return FolderReader(path, layout=layout)


def _require(index: Path, layout: str) -> None:
    if not index.is_file():
        raise ValueError(f"{index} does not exist; a {layout} archive has {index.name} at its root")


def example_archive_path() -> Path:
    """The built-in example archive: 20 real PTB-XL records (ecg_id 1-20, both rates; CC BY 4.0)."""
    return Path(str(files("rare_ecg") / "resources" / "example_ptbxl"))
