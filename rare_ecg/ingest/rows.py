"""Turn one EcgRecord into the rows of each lake table. Pure: no Ray, no I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from rare_ecg.archive.record import Annotation, EcgRecord, annotation_columns
from rare_ecg.lake import identity
from rare_ecg.lake.schema import ECG_ANNOTATIONS, MEASUREMENT_COLUMNS, SCHEMAS
from rare_ecg.signals.preprocess import PREPROCESSING_VERSION, Preprocessed

FLAG_UNMAPPED_LABEL = "unmapped_label"


@dataclass
class RecordRows:
    record: dict[str, Any]
    waveform: dict[str, Any]
    labels: list[dict[str, Any]] = field(default_factory=list)


def encode_signal(digital: np.ndarray) -> tuple[str, bytes]:
    """Lossless little-endian bytes: int16 when every ADC value fits, else int32."""
    info = np.iinfo(np.int16)
    if digital.size == 0 or (digital.min() >= info.min and digital.max() <= info.max):
        return "int16", digital.astype("<i2").tobytes()
    return "int32", digital.astype("<i4").tobytes()


def decode_signal(signal: bytes, dtype: str, n_leads: int) -> np.ndarray:
    """Inverse of encode_signal: (n_leads, n_samples) ADC values."""
    if dtype not in ("int16", "int32"):
        raise ValueError(f"signal_dtype {dtype!r} is not one of int16, int32")
    return np.frombuffer(signal, dtype="<i2" if dtype == "int16" else "<i4").reshape(n_leads, -1)


def signal_sha256(rec: EcgRecord) -> str:
    """Content hash of a record's signal (ADC samples, shape, rate), independent of its file names and
    header text: a byte copy of an ECG under another record name has the same one."""
    digest = hashlib.sha256(f"{rec.fs_hz:g}:{rec.digital.shape[0]}:{rec.digital.shape[1]}:".encode())
    digest.update(np.ascontiguousarray(rec.digital, dtype="<i4").data)
    return digest.hexdigest()


def build_rows(
    rec: EcgRecord,
    pre: Preprocessed,
    *,
    record_id: str,
    run_id: str,
    secret: identity.Secret,
    ingested_at: datetime,
    content_sha256: str | None = None,
) -> RecordRows:
    rid = record_id  # identity.record_id of the record's key (rate-independent where the archive has one)
    flags = list(dict.fromkeys([*rec.flags, *pre.flags]))
    if any(lab.code is None for lab in rec.labels):
        flags.append(FLAG_UNMAPPED_LABEL)
    age = identity.cap_age(rec.age)
    dtype, signal = encode_signal(rec.digital)
    record: dict[str, Any] = {
        "record_id": rid,
        "source": rec.source,
        "source_path": rec.source_path,
        "checksum": rec.checksum,
        "patient_key": identity.patient_key(rec.source, rec.patient_id, secret.reveal()),
        "recorded_at": rec.recorded_at,
        "age": age,
        "age_band": identity.age_band(age),
        "sex": rec.sex,
        "fs_hz": float(rec.fs_hz),
        "n_samples": rec.n_samples,
        "lead_names": list(rec.lead_names),
        "signal_dtype": dtype,
        "signal": signal,
        "adc_gain": [float(g) for g in rec.adc_gain],
        "baseline": [int(b) for b in rec.baseline],
        "split_fold": rec.split_fold,
        "quality_flags": flags,
        "ingest_run_id": run_id,
        "ingested_at": ingested_at,
        "signal_sha256": content_sha256 or signal_sha256(rec),
    }
    for col in MEASUREMENT_COLUMNS:
        record[col] = rec.measurements.get(col)
    n_windows = int(pre.signal.shape[0])
    # windows side by side per lead: (12, n_windows * win), row-major
    model_signal = pre.signal.transpose(1, 0, 2).reshape(pre.signal.shape[1], -1)
    waveform: dict[str, Any] = {
        "record_id": rid,
        "source": rec.source,
        "fs_hz": pre.fs_hz,
        "n_windows": n_windows,
        "n_samples": n_windows * int(pre.signal.shape[2]),
        "valid_samples": pre.valid_samples,
        "signal": model_signal.reshape(-1),
        "lead_mask": pre.lead_mask.tolist(),
        "quality_flags": list(pre.flags),
        "preprocessing_version": PREPROCESSING_VERSION,
        "ingest_run_id": run_id,
        "beat_positions": pre.beat_positions,
    }
    labels = [
        {
            "record_id": rid,
            "label": lab.code,
            "source_code": lab.source_code,
            "vocabulary": lab.vocabulary,
            "likelihood": lab.likelihood,
            "ingest_run_id": run_id,
        }
        for lab in rec.labels
    ]
    return RecordRows(record=record, waveform=waveform, labels=labels)


def annotations_table(records: Sequence[tuple[str, Sequence[Annotation]]], run_id: str) -> pa.Table:
    """The ecg_annotations rows of (record_id, annotations) pairs, built column by column (a synthetic
    record has ~185 of them: a dict per row cost more than the rest of its rows)."""
    ids: list[str] = []
    labels: list[str] = []
    leads: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for rid, anns in records:
        label, lead, start, end = annotation_columns(anns)
        ids.extend([rid] * len(label))
        labels.extend(label)
        leads.extend(lead)
        starts.extend(start)
        ends.extend(end)
    columns = {
        "record_id": pa.array(ids, pa.string()),
        "label": pa.array(labels, pa.string()),
        "lead": pa.array(leads, pa.string()),
        "start_sample": pa.array(starts, pa.int32()),
        "end_sample": pa.array(ends, pa.int32()),
        "ingest_run_id": pa.array([run_id] * len(ids), pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=SCHEMAS[ECG_ANNOTATIONS])
