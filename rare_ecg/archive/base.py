"""What every archive reader provides: a cheap listing of records, and reading one record."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from rare_ecg.archive.record import EcgRecord, RecordRef


class ArchiveReader(Protocol):
    layout: str
    root: Path

    def list_refs(self) -> Iterator[RecordRef]:
        """Every record the archive's index knows of, without reading signals (driver side, streaming).

        Index rows whose signal files are missing are still listed: reading them raises RecordError,
        so they land in ecg_rejects instead of vanishing.
        """
        ...

    def read(self, ref: RecordRef) -> EcgRecord:
        """Read one record (runs inside Ray tasks). Raises RecordError for input it cannot use."""
        ...
