"""MIMIC-IV-ECG: ``record_list.csv`` indexes ``files/pNNNN/pNNNNNNNN/sNNNNNNNN/NNNNNNNN.{hea,dat}``.

``machine_measurements.csv`` (joined on study_id) brings the machine's report statements (report_0 ..
report_17) and its intervals and axes. Demographics are not part of MIMIC-IV-ECG: an optional
``patients.csv`` from MIMIC-IV's hosp module (subject_id, gender, anchor_age, anchor_year) gives sex and
the age at the ECG (anchor_age + ECG year - anchor_year); without it both are None.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from rare_ecg.archive.annotations import annotations_for
from rare_ecg.archive.fields import normalize_patient_id, parse_age, parse_datetime, parse_float, parse_sex
from rare_ecg.archive.labels import mimic_report_labels
from rare_ecg.archive.record import REASON_MISSING_FILE, EcgRecord, RecordError, RecordRef
from rare_ecg.archive.wfdb_io import read_wfdb_record

RECORD_LIST_CSV = "record_list.csv"
MEASUREMENTS_CSV = "machine_measurements.csv"
PATIENTS_CSV = "patients.csv"
RECORD_LIST_COLUMNS = ("subject_id", "study_id", "ecg_time", "path")
REPORT_COLUMNS = tuple(f"report_{i}" for i in range(18))
INTERVAL_COLUMNS = (
    "rr_interval",
    "p_onset",
    "p_end",
    "qrs_onset",
    "qrs_end",
    "t_end",
    "p_axis",
    "qrs_axis",
    "t_axis",
)
PATIENT_COLUMNS = ("subject_id", "gender", "anchor_age", "anchor_year")
# The machine writes 29999 (and larger) where it could not measure; any such value is dropped.
MEASUREMENT_SENTINEL = 29999.0
_MAX_AXIS_DEG = 360.0


@dataclass
class MimicReader:
    root: Path
    layout: str = field(default="mimic", init=False)

    def list_refs(self) -> Iterator[RecordRef]:
        records = _scan(self.root / RECORD_LIST_CSV, RECORD_LIST_COLUMNS)
        if (self.root / MEASUREMENTS_CSV).exists():
            measurements = _scan(self.root / MEASUREMENTS_CSV, ("study_id",))
            schema = measurements.collect_schema()
            reports = [pl.col(c).str.strip_chars() for c in REPORT_COLUMNS if c in schema]
            # Compact before the join: 18 mostly empty report columns become one list of non-blank
            # statements per study (800k studies then list in under 1 GB); unparsable numbers -> null.
            measurements = measurements.select(
                "study_id",
                pl.concat_list(reports).list.eval(pl.element().filter(pl.element() != "")).alias("reports"),
                *[pl.col(c).cast(pl.Float64, strict=False) for c in INTERVAL_COLUMNS if c in schema],
            ).unique("study_id", keep="first")  # a repeated study_id must not duplicate its record
            records = records.join(measurements, on="study_id", how="left", maintain_order="left")
        if (self.root / PATIENTS_CSV).exists():
            patients = (
                _scan(self.root / PATIENTS_CSV, PATIENT_COLUMNS)
                .select(PATIENT_COLUMNS)
                .unique("subject_id", keep="first")
            )
            records = records.join(patients, on="subject_id", how="left", maintain_order="left")
        for batch in records.collect_batches(chunk_size=10_000):
            for row in batch.iter_rows(named=True):
                meta = {k: v for k, v in row.items() if v is not None and v != "" and v != []}
                path = meta.get("path", "").strip().removesuffix(".hea")
                yield RecordRef(
                    source_path=path or f"{RECORD_LIST_CSV}#study_id={meta.get('study_id')}", meta=meta
                )

    def read(self, ref: RecordRef) -> EcgRecord:
        meta = ref.meta
        if "path" not in meta:
            raise RecordError(
                REASON_MISSING_FILE, f"{RECORD_LIST_CSV} row study_id={meta.get('study_id')} has no path"
            )
        raw = read_wfdb_record(self.root, ref.source_path)
        record = raw.to_record(self.layout, ref.source_path)
        record.patient_id = normalize_patient_id(meta.get("subject_id"))
        record.recorded_at = parse_datetime(meta.get("ecg_time")) or record.recorded_at
        record.sex = parse_sex(meta.get("gender"))
        anchor_age, anchor_year = parse_float(meta.get("anchor_age")), parse_float(meta.get("anchor_year"))
        if anchor_age is not None and anchor_year is not None and record.recorded_at is not None:
            record.age, record.flags = parse_age(anchor_age + record.recorded_at.year - anchor_year)
        record.labels = mimic_report_labels(meta.get("reports", []))
        record.measurements = measurements_from(meta)
        record.annotations = annotations_for(self.root, ref.source_path)
        return record


def _scan(path: Path, columns: tuple[str, ...]) -> pl.LazyFrame:
    if not path.exists():
        raise ValueError(f"{path} does not exist; a MIMIC-IV-ECG archive has {RECORD_LIST_CSV} at its root")
    available = pl.read_csv(path, n_rows=0).columns
    missing = [c for c in columns if c not in available]
    if missing:
        raise ValueError(f"{path} lacks columns {missing}; expected at least {list(columns)}")
    # Strings throughout: read() interprets each cell, so one odd value never fails the whole table.
    return pl.scan_csv(path, infer_schema=False)


def measurements_from(meta: dict[str, Any]) -> dict[str, float]:
    """hr_bpm, pr_ms, qrs_ms, qt_ms and the p/qrs/t axes from the machine's raw times (ms from the start
    of the median beat); a value whose inputs are missing or sentinel (29999) is left out."""
    raw = {c: parse_float(meta.get(c)) for c in INTERVAL_COLUMNS}
    v = {c: x for c, x in raw.items() if x is not None and abs(x) < MEASUREMENT_SENTINEL}
    out: dict[str, float] = {}
    if v.get("rr_interval", 0.0) > 0:
        out["hr_bpm"] = 60_000.0 / v["rr_interval"]
    for name, start, end in (("pr_ms", "p_onset", "qrs_onset"), ("qrs_ms", "qrs_onset", "qrs_end"),
                             ("qt_ms", "qrs_onset", "t_end")):  # fmt: skip
        if start in v and end in v and v[end] > v[start]:
            out[name] = v[end] - v[start]
    for axis in ("p_axis", "qrs_axis", "t_axis"):
        if axis in v and abs(v[axis]) <= _MAX_AXIS_DEG:
            out[axis] = v[axis]
    return out
