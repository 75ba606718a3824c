"""The lake contract: every table's schema and partitioning, defined here once and imported everywhere.

Column names are stable (analysts' queries and dashboards depend on them); add columns, never rename.
Types avoid float16 and fixed_size_list (polars cannot read them back from Delta): signals are stored
as raw int16 bytes with a per-lead gain (ecg_records) or as list<float32> (ecg_waveforms).

Partitioning (for millions of records): the large tables (ecg_records, ecg_waveforms) are partitioned
by `source` only. Queries filter by source constantly, and a finer key (year, patient bucket) would turn
each incremental ingest run into thousands of tiny files. Within a partition, Delta's per-file min/max
statistics on record_id, recorded_at and age (written with every file) let readers skip files, and
`OPTIMIZE ... ZORDER BY (recorded_at)` compacts them when a table has grown by many small runs.
Small tables (labels, annotations, rejects) are not partitioned.
"""

from __future__ import annotations

import pyarrow as pa

ECG_RECORDS = "ecg_records"
ECG_LABELS = "ecg_labels"
ECG_ANNOTATIONS = "ecg_annotations"
ECG_WAVEFORMS = "ecg_waveforms"
ECG_REJECTS = "ecg_rejects"
ECG_SCORES = "ecg_scores"
PATIENT_FINDINGS = "patient_findings"
SUBGROUP_METRICS = "subgroup_metrics"

_TS = pa.timestamp("us", tz="UTC")

RECORDS_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),  # sha256(source:record key)[:32]
        pa.field("source", pa.string(), nullable=False),  # the archive's name (default: its layout)
        pa.field("source_path", pa.string(), nullable=False),  # relative to the archive root, no extension
        pa.field("checksum", pa.string(), nullable=False),  # sha256 of header + signal bytes
        pa.field("patient_key", pa.string()),  # keyed hash (HMAC-SHA256) of source + patient id
        pa.field("recorded_at", pa.timestamp("us")),  # as the archive gives it (local time, no zone)
        pa.field("age", pa.float32()),  # years, 90+ capped at 90
        pa.field("age_band", pa.string()),  # <40 | 40-59 | 60-79 | 80+
        pa.field("sex", pa.string()),  # male | female | null
        pa.field("fs_hz", pa.float32(), nullable=False),  # native sampling rate
        pa.field("n_samples", pa.int32(), nullable=False),  # native samples per lead
        pa.field("lead_names", pa.list_(pa.string()), nullable=False),  # file order, canonical names
        pa.field("signal_dtype", pa.string(), nullable=False),  # int16 (or int32 for >16-bit ADCs)
        pa.field("signal", pa.binary(), nullable=False),  # little-endian ADC ints, (n_leads, n_samples)
        pa.field("adc_gain", pa.list_(pa.float32()), nullable=False),  # ADC units per mV, per lead
        pa.field("baseline", pa.list_(pa.int32()), nullable=False),  # ADC value of 0 mV, per lead
        pa.field("split_fold", pa.int8()),  # PTB-XL strat_fold where the archive has one
        pa.field("hr_bpm", pa.float32()),  # machine measurements, where the archive has them
        pa.field("pr_ms", pa.float32()),
        pa.field("qrs_ms", pa.float32()),
        pa.field("qt_ms", pa.float32()),
        pa.field("p_axis", pa.float32()),
        pa.field("qrs_axis", pa.float32()),
        pa.field("t_axis", pa.float32()),
        pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
        pa.field("ingest_run_id", pa.string(), nullable=False),
        pa.field("ingested_at", _TS, nullable=False),
        # sha256 of the ADC samples, rate and shape: the same ECG copied under another name (other
        # header bytes, so another checksum) is found by this
        pa.field("signal_sha256", pa.string(), nullable=False),
    ]
)
MEASUREMENT_COLUMNS = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms", "p_axis", "qrs_axis", "t_axis")

LABELS_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("label", pa.string()),  # canonical SCP-ECG code; null when the source code maps to none
        pa.field("source_code", pa.string(), nullable=False),
        pa.field("vocabulary", pa.string(), nullable=False),  # scp | snomed | mimic_report
        pa.field("likelihood", pa.float32()),
        pa.field("ingest_run_id", pa.string(), nullable=False),
    ]
)

ANNOTATIONS_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("lead", pa.string(), nullable=False),
        pa.field("start_sample", pa.int32(), nullable=False),  # native rate
        pa.field("end_sample", pa.int32(), nullable=False),  # native rate, exclusive
        pa.field("ingest_run_id", pa.string(), nullable=False),
    ]
)

WAVEFORMS_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("fs_hz", pa.int32(), nullable=False),  # the model rate
        pa.field("n_windows", pa.int16(), nullable=False),  # 10 s windows
        pa.field("n_samples", pa.int32(), nullable=False),  # per lead: n_windows * 10 s * fs_hz
        pa.field("valid_samples", pa.int32(), nullable=False),  # real signal; the rest is zero padding
        pa.field("signal", pa.list_(pa.float32()), nullable=False),  # (12, n_samples) row-major, standardised
        pa.field("lead_mask", pa.list_(pa.bool_()), nullable=False),  # canonical lead order
        pa.field("quality_flags", pa.list_(pa.string()), nullable=False),
        pa.field("preprocessing_version", pa.string(), nullable=False),
        pa.field("ingest_run_id", pa.string(), nullable=False),
        # R-peak sample indices at the model rate over all windows (rare_ecg.signals.rpeaks on the
        # preprocessed signal, computed once at ingestion): readers never detect R peaks again
        pa.field("beat_positions", pa.list_(pa.int32()), nullable=False),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),  # see rare_ecg.archive.record.REJECT_REASONS
        pa.field("detail", pa.string(), nullable=False),
        pa.field("checksum", pa.string()),  # where the files could be read
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("rejected_at", _TS, nullable=False),
    ]
)

SCORES_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("patient_key", pa.string()),
        pa.field("recorded_at", pa.timestamp("us")),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),  # partition: one per registered version
        # aligned with the model's label vocabulary (commit metadata `rare_ecg.labels`); max over windows
        pa.field("label_probs", pa.list_(pa.float32()), nullable=False),
        pa.field("labels_predicted", pa.list_(pa.string()), nullable=False),  # prob >= the label's threshold
        pa.field("anomaly_score", pa.float32(), nullable=False),  # the model's record score; max over windows
        # (12, n_windows_scored * map_segments) row-major: each scored 10 s window's segments side by side
        pa.field("anomaly_map", pa.list_(pa.float32()), nullable=False),
        pa.field("age_pred", pa.float32(), nullable=False),  # years; mean over windows
        pa.field("sex_pred", pa.float32(), nullable=False),  # P(female); mean over windows
        pa.field("scored_at", _TS, nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)

PATIENT_FINDINGS_SCHEMA = pa.schema(
    [
        pa.field("patient_key", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),  # partition, replaced whole by each run
        pa.field("first_flagged_record_id", pa.string(), nullable=False),
        pa.field("first_flagged_at", pa.timestamp("us")),
        pa.field("n_flagged", pa.int32(), nullable=False),  # the patient's scored ECGs flagging the label
        pa.field("n_scored", pa.int32(), nullable=False),  # the patient's scored ECGs (this model version)
        pa.field("latest_record_id", pa.string(), nullable=False),  # the patient's latest scored ECG
        pa.field("latest_score", pa.float32(), nullable=False),  # the label's probability in that ECG
        # flagged in the latest ECG but not in the one before; null when the patient has no earlier ECG
        pa.field("new_finding", pa.bool_()),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)

SUBGROUP_METRICS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("cohort", pa.string(), nullable=False),  # the cohort filter or split the rows describe
        pa.field("group_kind", pa.string(), nullable=False),  # overall | sex | age_band
        pa.field("group", pa.string(), nullable=False),  # all | male | female | <40 ... | largest_gap
        pa.field("label_set", pa.string(), nullable=False),  # all | rare | common | one label code
        pa.field("metric", pa.string(), nullable=False),  # auroc | auprc | sens_at_spec90 | ece | n_flagged
        pa.field("value", pa.float64()),  # null where undefined (no positives)
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("n", pa.int64(), nullable=False),
        pa.field("n_pos", pa.int64(), nullable=False),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    ECG_RECORDS: RECORDS_SCHEMA,
    ECG_LABELS: LABELS_SCHEMA,
    ECG_ANNOTATIONS: ANNOTATIONS_SCHEMA,
    ECG_WAVEFORMS: WAVEFORMS_SCHEMA,
    ECG_REJECTS: REJECTS_SCHEMA,
    ECG_SCORES: SCORES_SCHEMA,
    PATIENT_FINDINGS: PATIENT_FINDINGS_SCHEMA,
    SUBGROUP_METRICS: SUBGROUP_METRICS_SCHEMA,
}
PARTITION_BY: dict[str, list[str]] = {
    ECG_RECORDS: ["source"],
    ECG_WAVEFORMS: ["source"],
    ECG_LABELS: [],
    ECG_ANNOTATIONS: [],
    ECG_REJECTS: [],
    ECG_SCORES: ["model_version"],
    PATIENT_FINDINGS: ["model_version"],
    SUBGROUP_METRICS: [],
}
# Columns whose per-file min/max go into the Delta log, so readers can skip files.
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    ECG_RECORDS: ("record_id", "recorded_at", "age", "fs_hz", "n_samples"),
    ECG_WAVEFORMS: ("record_id", "fs_hz"),
    ECG_LABELS: ("record_id", "label"),
    ECG_ANNOTATIONS: ("record_id", "label"),
    ECG_REJECTS: ("record_id", "reason"),
    ECG_SCORES: ("record_id", "patient_key", "recorded_at", "anomaly_score"),
    PATIENT_FINDINGS: ("patient_key", "label"),
    SUBGROUP_METRICS: ("run_id", "model_version", "metric"),
}
