"""PTB-XL: ``ptbxl_database.csv`` indexes ``records100/`` (100 Hz) and ``records500/`` (500 Hz) WFDB records.

Conventions (PTB-XL v1.0.1-v1.0.3): sex 0 = male, 1 = female; ages of 90 and over written as 300;
``patient_id`` is a float column (15709.0); ``scp_codes`` is a Python dict literal {code: likelihood}
in which likelihood 0 still means the statement is present; ``strat_fold`` 1-10.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import polars as pl

from rare_ecg.archive.annotations import annotations_for
from rare_ecg.archive.fields import normalize_patient_id, parse_age, parse_datetime, parse_float, parse_sex
from rare_ecg.archive.labels import scp_labels
from rare_ecg.archive.record import (
    REASON_BAD_METADATA,
    REASON_MISSING_FILE,
    EcgRecord,
    RecordError,
    RecordRef,
)
from rare_ecg.archive.wfdb_io import read_wfdb_record

DATABASE_CSV = "ptbxl_database.csv"
FILENAME_COLUMN = {100: "filename_lr", 500: "filename_hr"}
_META_COLUMNS = ("ecg_id", "patient_id", "age", "sex", "recording_date", "scp_codes", "strat_fold")


@dataclass
class PtbxlReader:
    root: Path
    fs_hz: int = 100  # which of PTB-XL's two copies to read: 100 (records100) or 500 (records500)
    layout: str = field(default="ptbxl", init=False)

    def __post_init__(self) -> None:
        if self.fs_hz not in FILENAME_COLUMN:
            raise ValueError(
                f"PTB-XL rate {self.fs_hz!r} Hz is not stored; choose one of {sorted(FILENAME_COLUMN)}"
            )

    def list_refs(self) -> Iterator[RecordRef]:
        path = self.root / DATABASE_CSV
        filename_column = FILENAME_COLUMN[self.fs_hz]
        columns = [*_META_COLUMNS, filename_column]
        available = pl.read_csv(path, n_rows=0).columns
        missing = [c for c in columns if c not in available]
        if missing:
            raise ValueError(f"{path} lacks columns {missing}; a PTB-XL database table has {columns}")
        # Strings throughout: read() interprets each cell, so one odd value never fails the whole table.
        # Batches keep memory flat for a million-row table.
        table = pl.scan_csv(path, infer_schema=False).select(columns)
        for batch in table.collect_batches(chunk_size=10_000):
            for row in batch.iter_rows(named=True):
                filename = (row.pop(filename_column) or "").strip()
                source_path = filename or f"{DATABASE_CSV}#ecg_id={row['ecg_id']}"
                ecg_id = (row["ecg_id"] or "").strip()
                yield RecordRef(
                    source_path=source_path,
                    meta={**row, "has_filename": bool(filename)},
                    key=f"ecg_id={ecg_id}" if ecg_id else None,  # one record_id for both rates
                )

    def read(self, ref: RecordRef) -> EcgRecord:
        meta = ref.meta
        if not meta.get("has_filename", True):
            raise RecordError(
                REASON_MISSING_FILE,
                f"{DATABASE_CSV} row ecg_id={meta.get('ecg_id')} has no {FILENAME_COLUMN[self.fs_hz]}",
            )
        raw = read_wfdb_record(self.root, ref.source_path)
        record = raw.to_record(self.layout, ref.source_path)
        record.age, record.flags = parse_age(meta.get("age"), ptbxl=True)
        record.sex = parse_sex(meta.get("sex"), ptbxl=True)
        record.patient_id = normalize_patient_id(meta.get("patient_id"))
        record.recorded_at = parse_datetime(meta.get("recording_date")) or record.recorded_at
        fold = parse_float(meta.get("strat_fold"))
        record.split_fold = int(fold) if fold is not None and fold.is_integer() else None
        record.labels = scp_labels(_parse_scp_codes(meta.get("scp_codes"), ref.source_path))
        record.annotations = annotations_for(self.root, ref.source_path)
        return record


def _parse_scp_codes(text: str | None, where: str) -> dict[str, float | None]:
    """``"{'NORM': 100.0, 'SR': 0.0}"`` -> {'NORM': 100.0, 'SR': 0.0}; an empty cell is no statements."""
    if text is None or not text.strip():
        return {}
    parsed = _scp_literal(text)
    if parsed is None:
        raise RecordError(
            REASON_BAD_METADATA, f"{where}: scp_codes {text!r} is not a dict literal {{'CODE': likelihood}}"
        )
    return dict(parsed)


# One ``'CODE': number`` item of the cell as PTB-XL writes it: parsed without the Python parser.
_SCP_ITEM = re.compile(r"\s*'([^'\\]*)'\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*")


@lru_cache(maxsize=4096)
def _scp_literal(text: str) -> tuple[tuple[str, float | None], ...] | None:
    """The parsed cell, or None when it is not a dict literal of string keys. Cells of the usual form
    are split with a regular expression; anything else goes through ``ast.literal_eval`` (which was a
    tenth of a worker's read time). Cached: PTB-XL has 5,466 distinct cells in 21,837 rows."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        items = [_SCP_ITEM.fullmatch(item) for item in body[1:-1].split(",")] if body[1:-1].strip() else []
        if all(m is not None for m in items):
            fast = {m.group(1): float(m.group(2)) for m in items if m is not None}
            return tuple((code, parse_float(lk)) for code, lk in fast.items())
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return None
    return tuple((code, parse_float(lk)) for code, lk in value.items())
