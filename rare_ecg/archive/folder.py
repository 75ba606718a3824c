"""Folders of WFDB records without an index table: the PhysioNet/CinC Challenge 2020/2021 layout and any
plain WFDB folder. Every ``.hea`` under the root (recursively) is one record.

Challenge headers carry ``#Age:``, ``#Sex:`` and ``#Dx:`` (SNOMED CT codes, comma separated) comment lines
and point at MATLAB ``.mat`` signals (format ``16x1+24``); plain WFDB folders may carry the same comments
(several WFDB distributions of 12-lead archives do), which are read when present.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rare_ecg.archive.annotations import annotations_for
from rare_ecg.archive.fields import parse_age, parse_sex
from rare_ecg.archive.labels import snomed_labels
from rare_ecg.archive.record import EcgRecord, RecordRef
from rare_ecg.archive.wfdb_io import comment_fields, read_wfdb_record

FOLDER_LAYOUTS = ("challenge", "wfdb")


@dataclass
class FolderReader:
    root: Path
    layout: str = "wfdb"  # "challenge" | "wfdb": the same reading, named for the lake's source column

    def __post_init__(self) -> None:
        if self.layout not in FOLDER_LAYOUTS:
            raise ValueError(f"folder layout {self.layout!r} is not one of {FOLDER_LAYOUTS}")

    def list_refs(self) -> Iterator[RecordRef]:
        for hea in walk_headers(self.root):
            yield RecordRef(source_path=hea)

    def read(self, ref: RecordRef) -> EcgRecord:
        raw = read_wfdb_record(self.root, ref.source_path)
        record = raw.to_record(self.layout, ref.source_path)
        comments = comment_fields(raw.header)
        record.age, record.flags = parse_age(comments.get("age"))
        record.sex = parse_sex(comments.get("sex"))
        dx = [code.strip() for code in comments.get("dx", "").split(",") if code.strip()]
        record.labels = snomed_labels(dx)
        record.annotations = annotations_for(self.root, ref.source_path)
        return record


def walk_headers(root: Path) -> Iterator[str]:
    """Root-relative paths (POSIX, no extension) of every ``.hea`` below root, in path order, yielded as
    found (one folder listing in memory per level), so a million-file archive streams instead of being
    listed up front. Hidden entries (``.name``) and symlinked folders (possible cycles) are skipped."""
    stack = [("", _sorted_entries(root))]
    while stack:
        prefix, entries = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
        elif entry.is_dir(follow_symlinks=False):
            stack.append((f"{prefix}{entry.name}/", _sorted_entries(Path(entry.path))))
        elif entry.name.endswith(".hea") and entry.is_file():
            yield prefix + entry.name.removesuffix(".hea")


def _sorted_entries(folder: Path) -> Iterator[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return iter(sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name))
