"""What a trained model carries for its label-free anomaly score (METHOD.md, "The anomaly score").

After training, on the driver: the embeddings of (a deterministic sample of) the training split's
normal records become the model's reference set for the ``knn`` candidate, and where the lake has
labels the record score is chosen among the ECG-only candidates by its AUROC for normal vs abnormal
on the validation split (`rare_ecg.model.selection.choose_record_score`: test records are never read).
Without labelled validation records the configured default stays and the tags say so.

Both jobs call `attach_score`: pretraining chooses; fine-tuning keeps the encoder's choice and
recomputes the references with its own (fine-tuned) embedding, since the encoder's are stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from rare_ecg.lake.paths import storage_options, table_uri
from rare_ecg.lake.schema import ECG_LABELS, ECG_WAVEFORMS
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.training import Batch
from rare_ecg.train.data import WAVEFORM_COLUMNS, LakeSnapshot, split_attributes, windows_of_block

NORMAL_LABEL = "NORM"  # the canonical (PTB-XL SCP) code of a normal ECG
REFERENCE_LIMIT = 2_000  # training normals embedded as the knn reference set
SELECTION_LIMIT = 1_000  # validation records scored to choose the record score


@dataclass(frozen=True)
class SplitRecords:
    """The 10 s windows of some records of one split, and the record each window belongs to."""

    batch: Batch
    record_ids: list[str]  # per window


def labels_version(lake: str) -> int | None:
    """The latest version of ``ecg_labels``, or None where the lake has none."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return int(DeltaTable(table_uri(lake, ECG_LABELS), storage_options=storage_options()).version())
    except TableNotFoundError:
        return None


def normal_flags(lake: str, version: int | None, record_ids: list[str]) -> np.ndarray | None:
    """Per record: True = labelled NORM, False = labelled with something else only, None = no label at
    all (unknown: callers leave it out); the whole result is None when the lake has no labels."""
    if version is None:
        return None
    labels = (
        pl.scan_delta(table_uri(lake, ECG_LABELS), version=version, storage_options=storage_options())
        .filter(pl.col("record_id").is_in(record_ids))
        .select("record_id", "label")
        .collect()
    )
    by_record = labels.group_by("record_id").agg((pl.col("label") == NORMAL_LABEL).any().alias("normal"))
    known = dict(by_record.rows())
    return np.asarray([known.get(r) for r in record_ids], dtype=object)


def read_split(
    snapshot: LakeSnapshot, plan: pl.DataFrame, record_ids: list[str], cfg: ModelConfig
) -> SplitRecords:
    """The windows of ``record_ids`` (one split's records of ``plan``) as one in-memory Batch."""
    # the records' attribute targets, whatever split they belong to
    chosen = plan.filter(pl.col("record_id").is_in(record_ids)).with_columns(pl.lit("chosen").alias("split"))
    attributes = split_attributes(chosen, "chosen")
    waves = (
        pl.scan_delta(
            snapshot.uri(ECG_WAVEFORMS),
            version=snapshot.versions[ECG_WAVEFORMS],
            storage_options=storage_options(),
        )
        .filter(pl.col("record_id").is_in(record_ids))
        .select(WAVEFORM_COLUMNS)
        .collect()
        .sort("record_id")
    )
    block = waves.to_arrow()
    block = block.set_column(0, "record_id", block["record_id"].cast(pa.string()))
    arrays = windows_of_block(block, attributes, cfg.n_leads, cfg.n_samples)
    ids = np.repeat(np.asarray(waves["record_id"].to_list(), dtype=object), waves["n_windows"].to_numpy())
    sex = arrays["sex_female"]
    return SplitRecords(
        batch=Batch(
            signal=arrays["signal"],
            lead_mask=arrays["lead_mask"],
            beat_positions=list(arrays["beat_positions"]),
            age=arrays["age"],
            sex=sex,
        ),
        record_ids=[str(r) for r in ids],
    )


def _sample(ids: list[str], limit: int, seed: int) -> list[str]:
    ids = sorted(ids)
    if len(ids) <= limit:
        return ids
    rng = np.random.default_rng(seed)
    return sorted(ids[i] for i in rng.choice(len(ids), size=limit, replace=False))


def attach_score(
    model: Any,
    snapshot: LakeSnapshot,
    plan: pl.DataFrame,
    *,
    choose: bool,
    seed: int = 0,
    reference_limit: int = REFERENCE_LIMIT,
    selection_limit: int = SELECTION_LIMIT,
) -> tuple[Any, dict[str, Any]]:
    """``model`` with its knn reference set (training normals, or every training record where the lake
    has no labels) and, when ``choose``, the record score chosen on validation; and the tags saying how.
    """
    from rare_ecg.model.loop import with_reference_set
    from rare_ecg.model.scores import ECG_ONLY
    from rare_ecg.model.selection import VALIDATION, choose_record_score, record_candidates, with_record_score

    version = labels_version(snapshot.lake)
    tags: dict[str, Any] = {"record_score_labels_version": version if version is not None else "none"}
    train_ids = plan.filter(pl.col("split") == "train")["record_id"].to_list()
    normal = normal_flags(snapshot.lake, version, train_ids)
    if normal is not None and any(v is True for v in normal):
        train_ids = [r for r, v in zip(train_ids, normal, strict=True) if v is True]
        tags["reference_set"] = "training normals"
    else:
        tags["reference_set"] = "training records (no normal label in the lake)"
    train_ids = _sample(train_ids, reference_limit, seed)
    if not train_ids:
        raise ValueError("no training record to build the knn reference set from")
    model.eval()
    model = with_reference_set(model, read_split(snapshot, plan, train_ids, model.cfg).batch)
    tags["reference_records"] = len(train_ids)
    if not choose:
        tags["record_score"] = model.cfg.record_score
        return model, tags
    val_ids = plan.filter(pl.col("split") == VALIDATION)["record_id"].to_list()
    flags = normal_flags(snapshot.lake, version, val_ids)
    labelled = [] if flags is None else [r for r, v in zip(val_ids, flags, strict=True) if v is not None]
    known = dict(zip(val_ids, flags, strict=True)) if flags is not None else {}
    labelled = _sample(labelled, selection_limit, seed + 1)
    values = {known[r] for r in labelled}
    if values != {True, False}:
        tags["record_score"] = model.cfg.record_score
        tags["record_score_chosen_on"] = "default: no validation records labelled normal and abnormal"
        return model, tags
    val = read_split(snapshot, plan, labelled, model.cfg)
    cands = record_candidates(model, val.batch)
    rec = np.asarray(val.record_ids, dtype=object)
    order = sorted(set(val.record_ids))
    # records with several windows: the record's score is its windows' maximum (as scoring aggregates)
    index = {r: i for i, r in enumerate(order)}
    rows = np.asarray([index[r] for r in rec])
    per_record = {}
    for name, s in cands.items():
        out = np.full(len(order), -np.inf)
        np.maximum.at(out, rows, np.asarray(s, dtype=np.float64))
        per_record[name] = out
    abnormal = np.asarray([not known[r] for r in order])
    name, auroc, aurocs = choose_record_score(per_record, abnormal, np.full(len(order), VALIDATION))
    tags.update(
        record_score=name,
        record_score_chosen_on=f"validation AUROC normal vs abnormal, {len(order)} records",
        record_score_validation_auroc=round(float(auroc), 4),
        **{f"val_auroc_{n}": round(float(v), 4) for n, v in aurocs.items() if n in ECG_ONLY},
    )
    return with_record_score(model, name), tags
