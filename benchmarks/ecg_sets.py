"""Record sets for the model experiments: the 250 real PTB-XL records of ../shared/data and synthetic
normal records from rare_ecg.synth, read and preprocessed exactly as ingestion does (the canonical
preprocessing, then R peaks once per record with the project's detector)."""

from __future__ import annotations

import ast
import csv

import numpy as np
import wfdb

from benchmarks._common import SHARED_DATA
from rare_ecg.model.training import Batch
from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.signals.preprocess import preprocess
from rare_ecg.signals.rpeaks import beat_positions
from rare_ecg.synth.ecg import RecordSpec, synthesize
from rare_ecg.synth.labels import resolve

PTBXL = SHARED_DATA / "ptbxl-sample"


def _row(signal_mv: np.ndarray, fs_hz: float, leads: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pre = preprocess(signal_mv, fs_hz, leads, target_fs_hz=100)
    x = pre.signal[0]
    return x, pre.lead_mask, beat_positions(x, min(pre.valid_samples, x.shape[-1]), 100)


def ptbxl_records() -> tuple[Batch, dict[str, np.ndarray]]:
    """All 250 records as one Batch (normal = the SCP code NORM is present) and their metadata:
    strat_fold, patient_id."""
    with open(PTBXL / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    xs, masks, peaks, ages, sexes, normal, folds, patients = [], [], [], [], [], [], [], []
    for row in rows:
        sig, fields = wfdb.rdsamp(str(PTBXL / row["filename_lr"]))
        x, mask, p = _row(sig.T, fields["fs"], list(fields["sig_name"]))
        xs.append(x)
        masks.append(mask)
        peaks.append(p)
        ages.append(float(row["age"]) if row["age"] and float(row["age"]) < 120 else np.nan)
        sexes.append(float(row["sex"]))
        normal.append("NORM" in ast.literal_eval(row["scp_codes"]))
        folds.append(int(row["strat_fold"]))
        patients.append(int(float(row["patient_id"])))
    batch = Batch(
        signal=np.stack(xs),
        lead_mask=np.stack(masks),
        beat_positions=peaks,
        age=np.asarray(ages, dtype=np.float32),
        sex=np.asarray(sexes, dtype=np.float32),
        normal=np.asarray(normal),
    )
    return batch, {"strat_fold": np.asarray(folds), "patient_id": np.asarray(patients)}


def synthetic_records(n: int, seed: int = 1) -> Batch:
    """``n`` synthetic sinus-rhythm records of distinct patients (rare_ecg.synth), ages 20-89."""
    rng = np.random.default_rng(seed)
    xs, masks, peaks, ages, sexes = [], [], [], [], []
    for i in range(n):
        sex = "female" if rng.random() < 0.5 else "male"
        age = float(rng.uniform(20, 90))
        ecg = synthesize(RecordSpec(seed, i, 0, sex, age, resolve({"SR"})))
        x, mask, p = _row(ecg.signal_at(100), 100, list(CANONICAL_LEADS))
        xs.append(x)
        masks.append(mask)
        peaks.append(p)
        ages.append(age)
        sexes.append(1.0 if sex == "female" else 0.0)
    return Batch(
        signal=np.stack(xs),
        lead_mask=np.stack(masks),
        beat_positions=peaks,
        age=np.asarray(ages, dtype=np.float32),
        sex=np.asarray(sexes, dtype=np.float32),
        normal=np.ones(n, dtype=bool),
    )
