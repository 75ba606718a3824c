"""Ground-truth localization of synthetic cohorts: ``annotations.csv`` at an archive's root.

Columns ``source_path,label,lead,start_sample,end_sample`` (samples at the record's native rate, end
exclusive), written by the synthetic cohort generator. Loaded once per process and file version, so a
reader shipped to many Ray tasks parses it once per worker, not once per record.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

from rare_ecg.archive.record import REASON_BAD_METADATA, Annotation, RecordError
from rare_ecg.signals.leads import normalize_lead_name

ANNOTATIONS_FILE = "annotations.csv"
ANNOTATION_COLUMNS = ("source_path", "label", "lead", "start_sample", "end_sample")


def annotations_for(root: Path, source_path: str) -> list[Annotation]:
    """The annotations of one record; empty when the archive has no annotations.csv.

    Raises RecordError(bad_metadata) when the file is malformed: ground truth is never half-attached.
    """
    path = root / ANNOTATIONS_FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return []
    try:
        loaded = _load(str(path), stat.st_mtime_ns, stat.st_size)
    except ValueError as exc:
        # Not a crash: every record of the archive lands in ecg_rejects, naming the broken line.
        raise RecordError(REASON_BAD_METADATA, str(exc)) from exc
    return list(loaded.get(source_path, ()))


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int, size: int) -> dict[str, tuple[Annotation, ...]]:
    """Parse the whole file; mtime and size are part of the cache key so a rewritten file is re-read."""
    by_record: dict[str, list[Annotation]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ANNOTATION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {list(ANNOTATION_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            try:
                start, end = int(row["start_sample"]), int(row["end_sample"])
            except ValueError:
                raise ValueError(
                    f"{path} line {line}: start/end samples {row['start_sample']!r}, {row['end_sample']!r} "
                    "are not integers"
                ) from None
            lead = normalize_lead_name(row["lead"]) or row["lead"].strip()
            by_record.setdefault(row["source_path"], []).append(
                Annotation(label=row["label"], lead=lead, start_sample=start, end_sample=end)
            )
    return {k: tuple(v) for k, v in by_record.items()}
