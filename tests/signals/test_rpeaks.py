"""R-peak detection: exact on synthetic spikes, deterministic, and validated on real PTB-XL records
against two independent reference detectors (wfdb's XQRS and GQRS) and against the rhythm labels."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import numpy as np
import pytest
import wfdb
import wfdb.processing as wp

from rare_ecg.signals.rpeaks import detect_r_peaks, heart_rate_bpm

TOLERANCE_S = 0.075  # the usual beat-matching window (ANSI/AAMI EC57 uses 150 ms in total)


def _ptbxl_rows(shared_data: Path) -> list[dict[str, str]]:
    with open(shared_data / "ptbxl-sample" / "ptbxl_database.csv", newline="") as f:
        return list(csv.DictReader(f))


def _read(shared_data: Path, row: dict[str, str], hr: bool) -> np.ndarray:
    sig, _ = wfdb.rdsamp(str(shared_data / "ptbxl-sample" / row["filename_hr" if hr else "filename_lr"]))
    return np.asarray(sig.T)


def _matched(a: np.ndarray, b: np.ndarray, tol: float) -> np.ndarray:
    if a.size == 0 or b.size == 0:
        return np.zeros(a.size, dtype=bool)
    return np.abs(a[:, None] - b[None, :]).min(1) <= tol


def test_synthetic_spike_train_gives_exact_peaks_at_both_rates() -> None:
    for fs in (100, 500):
        t = np.arange(10 * fs) / fs
        truth = np.round(np.arange(0.4, 10, 0.83) * fs).astype(np.int64)
        x = np.zeros((12, t.size))
        for r in truth:
            x += np.exp(-0.5 * ((t - r / fs) / 0.012) ** 2)[None] * np.linspace(0.5, 1.5, 12)[:, None]
        x += 0.3 * np.exp(-0.5 * ((t[None] - (truth[:, None] / fs + 0.25)) / 0.05) ** 2).sum(0)  # T waves
        peaks = detect_r_peaks(x, fs)
        assert peaks.dtype == np.int64
        np.testing.assert_array_equal(peaks, truth)
        assert heart_rate_bpm(peaks, fs) == pytest.approx(60 / 0.83, rel=0.01)


def test_edge_cases_single_lead_flat_and_nan() -> None:
    fs = 100
    t = np.arange(1000) / fs
    lead = np.exp(-0.5 * ((t[:, None] - np.arange(0.5, 10, 1.0)[None]) / 0.012) ** 2).sum(1)
    np.testing.assert_array_equal(detect_r_peaks(lead, fs), np.arange(50, 1000, 100))
    assert detect_r_peaks(np.zeros((12, 1000)), fs).size == 0
    assert detect_r_peaks(np.zeros(50), fs).size == 0  # under one second
    with_nan = np.stack([lead, np.full(1000, np.nan)])
    np.testing.assert_array_equal(detect_r_peaks(with_nan, fs), np.arange(50, 1000, 100))
    with pytest.raises(ValueError, match="shape"):
        detect_r_peaks(np.zeros((2, 3, 4)), fs)


@pytest.mark.timeout(120)
def test_real_ptbxl_peaks_agree_with_reference_detectors(shared_data: Path) -> None:
    """On the first 60 PTB-XL records (500 Hz) where XQRS and GQRS agree with each other on lead II
    (their consensus is the reference; pacemaker records are left out as paced QRS complexes differ in
    where detectors put the fiducial point), our multi-lead peaks match the reference beats."""
    tol = TOLERANCE_S * 500
    n_ref = found = n_ours = confirmed = 0
    hr_errors = []
    for row in _ptbxl_rows(shared_data)[:60]:
        if "PACE" in ast.literal_eval(row["scp_codes"]):
            continue
        x = _read(shared_data, row, hr=True)
        xqrs = wp.xqrs_detect(x[1], fs=500, verbose=False)
        gqrs = wp.gqrs_detect(x[1], fs=500)
        if len(xqrs) < 3 or len(gqrs) < 3:
            continue
        ref = xqrs[_matched(xqrs, gqrs, tol)]
        if len(ref) < 0.9 * max(len(xqrs), len(gqrs)):
            continue  # the references disagree with each other: no ground truth for this record
        ours = detect_r_peaks(x, 500)
        inner = ours[(ours >= ref[0] - tol) & (ours <= ref[-1] + tol)]  # XQRS skips the first beat
        n_ref += len(ref)
        found += int(_matched(ref, ours, tol).sum())
        n_ours += len(inner)
        confirmed += int(_matched(inner, ref, tol).sum())
        hr_errors.append(abs(heart_rate_bpm(inner, 500) - heart_rate_bpm(ref, 500)))
    assert len(hr_errors) >= 40
    assert found / n_ref >= 0.98  # sensitivity
    assert confirmed / n_ours >= 0.98  # positive predictivity
    assert np.median(hr_errors) < 1.0
    assert np.mean(np.asarray(hr_errors) < 3.0) >= 0.95


def test_real_ptbxl_rates_match_rhythm_labels_and_are_rate_independent(shared_data: Path) -> None:
    """Sinus bradycardia (< 60 bpm) and sinus tachycardia (> 100 bpm) records of the sample have the
    rate their label says, from 100 Hz and 500 Hz files alike; and detection is deterministic."""
    checked = 0
    for row in _ptbxl_rows(shared_data):
        codes = ast.literal_eval(row["scp_codes"])
        if "SBRAD" not in codes and "STACH" not in codes:
            continue
        lr, hr = _read(shared_data, row, hr=False), _read(shared_data, row, hr=True)
        peaks_lr, peaks_hr = detect_r_peaks(lr, 100), detect_r_peaks(hr, 500)
        rate_lr, rate_hr = heart_rate_bpm(peaks_lr, 100), heart_rate_bpm(peaks_hr, 500)
        assert (rate_lr < 60) if "SBRAD" in codes else (rate_lr > 100), (row["ecg_id"], rate_lr)
        assert abs(rate_lr - rate_hr) < 2.0
        # The same beats at both rates within two 100 Hz samples (away from the edges, where a beat
        # cut by the window's end may or may not count).
        inner_lr = peaks_lr[(peaks_lr >= 30) & (peaks_lr < 970)] * 5
        inner_hr = peaks_hr[(peaks_hr >= 150) & (peaks_hr < 4850)]
        assert _matched(inner_lr, peaks_hr, 10).all() and _matched(inner_hr, peaks_lr * 5, 10).all()
        np.testing.assert_array_equal(detect_r_peaks(lr.copy(), 100), peaks_lr)
        checked += 1
    assert checked >= 8
