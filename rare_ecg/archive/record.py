"""The record type every archive reader yields, and the error a reader raises for unusable input."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, overload

import numpy as np

INVALID_ADC = -32768  # WFDB's invalid-sample marker for 16-bit formats; readers map other markers onto it

# Reject reasons: a small fixed vocabulary (the `reason` column of ecg_rejects); `detail` says more.
REASON_MISSING_FILE = "missing_file"
REASON_TRUNCATED_SIGNAL = "truncated_signal"
REASON_BAD_HEADER = "bad_header"
REASON_BAD_LEADS = "bad_leads"
REASON_BAD_RATE = "unsupported_rate"
REASON_BAD_LENGTH = "unsupported_length"
REASON_UNUSABLE_SIGNAL = "unusable_signal"
REASON_DUPLICATE = "duplicate"
REASON_BAD_METADATA = "bad_metadata"
REASON_READ_ERROR = "read_error"  # anything unforeseen while reading: the exception, never a crash
REASON_UNSAFE_PATH = "unsafe_path"  # a file named by the archive resolves outside its root: never opened
REJECT_REASONS = (
    REASON_MISSING_FILE,
    REASON_TRUNCATED_SIGNAL,
    REASON_BAD_HEADER,
    REASON_BAD_LEADS,
    REASON_BAD_RATE,
    REASON_BAD_LENGTH,
    REASON_UNUSABLE_SIGNAL,
    REASON_DUPLICATE,
    REASON_BAD_METADATA,
    REASON_READ_ERROR,
    REASON_UNSAFE_PATH,
)


class RecordError(Exception):
    """A record that cannot be ingested; it lands in ecg_rejects with this reason and detail."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REJECT_REASONS:
            raise ValueError(f"unknown reject reason {reason!r}; expected one of {REJECT_REASONS}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Label:
    code: str | None  # canonical SCP-ECG code; None when the source code maps to nothing (kept, counted)
    source_code: str  # the code as the archive wrote it (SCP code, SNOMED CT code, report statement)
    vocabulary: str  # "scp" | "snomed" | "mimic_report" | ...
    likelihood: float | None = None  # PTB-XL's 0-100 likelihood; None where the source has none


class Annotation(NamedTuple):
    """Ground-truth localization (synthetic cohorts): a span of one lead at the native rate. A NamedTuple:
    a synthetic record has ~185 of them, and a frozen dataclass costs 4x as much to build."""

    label: str
    lead: str  # canonical lead name
    start_sample: int
    end_sample: int  # exclusive


class Annotations(Sequence[Annotation]):
    """A record's annotations held as four columns. A synthetic record has ~185: building an Annotation
    object for each, then taking them apart again into the table's columns, cost more than the rest of
    reading the record. Iterating or indexing yields Annotation tuples; equal to any sequence of the
    same Annotations."""

    __slots__ = ("ends", "labels", "leads", "starts")

    def __init__(self, labels: list[str], leads: list[str], starts: list[int], ends: list[int]) -> None:
        self.labels, self.leads, self.starts, self.ends = labels, leads, starts, ends

    def __len__(self) -> int:
        return len(self.labels)

    @overload
    def __getitem__(self, i: int) -> Annotation: ...
    @overload
    def __getitem__(self, i: slice) -> Annotations: ...
    def __getitem__(self, i: int | slice) -> Annotation | Annotations:
        if isinstance(i, slice):
            return Annotations(self.labels[i], self.leads[i], self.starts[i], self.ends[i])
        return Annotation(self.labels[i], self.leads[i], self.starts[i], self.ends[i])

    def __iter__(self) -> Iterator[Annotation]:
        return map(Annotation, self.labels, self.leads, self.starts, self.ends)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Annotations({list(self)!r})"


def annotation_columns(
    annotations: Sequence[Annotation],
) -> tuple[list[str], list[str], list[int], list[int]]:
    """(labels, leads, starts, ends) of any sequence of annotations (no copy for Annotations)."""
    if isinstance(annotations, Annotations):
        return annotations.labels, annotations.leads, annotations.starts, annotations.ends
    return (
        [a.label for a in annotations],
        [a.lead for a in annotations],
        [a.start_sample for a in annotations],
        [a.end_sample for a in annotations],
    )


@dataclass(frozen=True)
class RecordRef:
    """A record found in an archive's index, before its signal is read: cheap to list by the million.

    ``meta`` carries what the index tables already know (demographics, labels, measurements) as plain
    JSON-able values, so refs can travel through Ray Data as rows.
    """

    source_path: str  # record path relative to the archive root, without extension
    meta: dict[str, Any] = field(default_factory=dict)
    # What identifies the ECG in its archive whatever file is read (PTB-XL: its ecg_id, the same for the
    # 100 Hz and the 500 Hz copy); None: the source path. The lake's record_id derives from it.
    key: str | None = None

    @property
    def record_key(self) -> str:
        return self.key if self.key is not None else self.source_path


@dataclass
class EcgRecord:
    source: str  # the archive layout: "ptbxl" | "mimic" | "challenge" | "wfdb"
    source_path: (
        str  # relative to the archive root, without extension (stable: the record_id derives from it)
    )
    checksum: str  # sha256 of the header and signal file bytes
    fs_hz: float
    lead_names: list[str]  # canonical names where recognised, else as written, in file order
    digital: np.ndarray  # (n_leads, n_samples) int32 ADC values
    adc_gain: np.ndarray  # (n_leads,) ADC units per mV
    baseline: np.ndarray  # (n_leads,) ADC value of 0 mV
    patient_id: str | None = None  # RAW identifier: hashed into patient_key by the lake, never stored
    recorded_at: datetime | None = None
    age: float | None = None  # years, as the source gives it (capping happens in the lake layer)
    sex: str | None = None  # "male" | "female" | None
    labels: list[Label] = field(default_factory=list)
    measurements: dict[str, float] = field(default_factory=dict)  # hr_bpm, pr_ms, qrs_ms, qt_ms, ...
    annotations: Sequence[Annotation] = field(default_factory=list)
    split_fold: int | None = None  # PTB-XL strat_fold where the archive has one
    flags: list[str] = field(default_factory=list)  # reader-side quality flags (kept, not rejected)

    @property
    def n_samples(self) -> int:
        return int(self.digital.shape[1])

    def physical_mv(self, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
        """(n_leads, n_samples) mV (float64 unless ``dtype`` says otherwise); NaN where the ADC wrote its
        invalid-sample marker."""
        mv = self.digital.astype(dtype)
        mv -= self.baseline[:, None].astype(dtype)
        mv /= self.adc_gain[:, None].astype(dtype)
        invalid = self.digital == INVALID_ADC
        if invalid.any():
            mv[invalid] = np.nan
        return mv
