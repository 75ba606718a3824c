"""The canonical preprocessing function against its specification (METHOD.md, Input)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import wfdb

from rare_ecg.signals.leads import CANONICAL_LEADS, normalize_lead_name
from rare_ecg.signals.preprocess import (
    CLIP_SD,
    FLAG_FLAT_LEAD,
    FLAG_MISSING_LEAD,
    FLAG_NAN_SAMPLES,
    FLAG_PADDED,
    bandpass_resample,
    preprocess,
    preprocess_many,
)
from rare_ecg.signals.rpeaks import detect_r_peaks

FILE_ORDER = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]


def ecg_like(fs_hz: float, duration_s: float, n_leads: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(round(fs_hz * duration_s)) / fs_hz
    beats = np.sin(2 * np.pi * 1.2 * t) ** 31  # spiky, ~72 bpm
    return np.stack([(1 + 0.1 * i) * beats + 0.02 * rng.standard_normal(t.size) for i in range(n_leads)])


def test_lead_names_normalise_onto_the_canonical_twelve() -> None:
    assert [normalize_lead_name(n) for n in FILE_ORDER] == list(CANONICAL_LEADS)
    assert normalize_lead_name(" avr ") == "aVR"
    assert normalize_lead_name("MLII") is None


def test_same_record_gives_the_same_tensor() -> None:
    x = ecg_like(500, 10)
    a = preprocess(x, 500, FILE_ORDER, 100)
    b = preprocess(x.copy(), 500, FILE_ORDER, 100)
    assert a.signal.tobytes() == b.signal.tobytes()


@pytest.mark.parametrize(("fs_hz", "duration_s", "windows", "valid"), [
    (500, 10, 1, 1000), (100, 10, 1, 1000), (257, 30, 3, 3000), (1000, 5, 1, 500), (360, 12.5, 2, 1250),
])  # fmt: skip
def test_any_rate_and_length_becomes_whole_10s_windows_at_the_model_rate(
    fs_hz: float, duration_s: float, windows: int, valid: int
) -> None:
    out = preprocess(ecg_like(fs_hz, duration_s), fs_hz, FILE_ORDER, 100)
    assert out.signal.shape == (windows, 12, 1000)
    assert out.signal.dtype == np.float32
    assert out.valid_samples == valid
    assert (FLAG_PADDED in out.flags) == (windows * 1000 > valid)
    flat = out.signal.transpose(1, 0, 2).reshape(12, -1)
    assert np.all(flat[:, valid:] == 0)


def test_leads_are_reordered_and_missing_ones_zero_filled_and_masked() -> None:
    x = ecg_like(500, 10, n_leads=3)
    out = preprocess(x, 500, ["V2", "II", "AVL"], 100)
    expected = {"II", "aVL", "V2"}
    assert [lead in expected for lead in CANONICAL_LEADS] == out.lead_mask.tolist()
    assert FLAG_MISSING_LEAD in out.flags
    assert np.all(out.signal[0][~out.lead_mask] == 0)
    # V2 was first in the file (amplitude 1.0), II second (1.1): after standardisation shapes agree
    v2 = out.signal[0][CANONICAL_LEADS.index("V2")]
    ii = out.signal[0][CANONICAL_LEADS.index("II")]
    assert np.corrcoef(v2, ii)[0, 1] > 0.95


def test_standardised_per_lead_and_clipped() -> None:
    x = ecg_like(100, 10)
    x[4, 500] = 1e4  # one absurd spike
    out = preprocess(x, 100, FILE_ORDER, 100).signal[0]
    assert np.abs(out).max() <= CLIP_SD
    np.testing.assert_allclose(out[[0, 1, 2]].mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out[[0, 1, 2]].std(axis=1), 1, atol=1e-5)


def test_flat_and_nan_leads_are_flagged_and_masked_not_fatal() -> None:
    x = ecg_like(500, 10)
    x[5] = 0.3  # flat: electrode off
    x[3] = np.nan
    out = preprocess(x, 500, FILE_ORDER, 100)
    assert FLAG_FLAT_LEAD in out.flags and FLAG_NAN_SAMPLES in out.flags
    assert out.lead_mask.tolist() == [i not in (3, 5) for i in range(12)]
    assert np.isfinite(out.signal).all()


def test_unusable_records_raise_with_the_reason() -> None:
    with pytest.raises(ValueError, match="under 1 s"):
        preprocess(ecg_like(500, 0.5), 500, FILE_ORDER, 100)
    with pytest.raises(ValueError, match="no standard lead"):
        preprocess(ecg_like(500, 10, n_leads=2), 500, ["X", "Y"], 100)
    with pytest.raises(ValueError, match="does not match"):
        preprocess(ecg_like(500, 10), 500, FILE_ORDER[:5], 100)


@pytest.mark.parametrize(("fs_in", "fs_out"), [(500, 100), (100, 100), (257, 100), (1000, 500)])
def test_bandpass_keeps_the_ecg_band_and_removes_drift_and_out_of_band(fs_in: float, fs_out: float) -> None:
    t = np.arange(int(fs_in * 10)) / fs_in
    t_out = np.arange(round(fs_out * 10)) / fs_out
    inner = slice(int(2 * fs_out), int(8 * fs_out))

    def through(freq: float) -> np.ndarray:
        return bandpass_resample(np.sin(2 * np.pi * freq * t)[None], fs_in, fs_out)[0]

    in_band = through(8.0)
    assert in_band.shape == t_out.shape
    np.testing.assert_allclose(
        in_band[inner], np.sin(2 * np.pi * 8.0 * t_out)[inner], atol=0.02
    )  # zero phase
    assert np.abs(through(0.05)[inner]).max() < 0.02  # baseline wander
    if fs_in > fs_out:  # above the output Nyquist: removed, not aliased into the ECG band
        assert np.abs(through(0.65 * fs_out)[inner]).max() < 0.05


def test_mains_notch_removes_50hz_at_500hz_model_rate() -> None:
    t = np.arange(5000) / 500
    x = (np.sin(2 * np.pi * 50 * t) + np.sin(2 * np.pi * 10 * t))[None]
    y = bandpass_resample(x, 500, 500, notch_hz=50.0)[0]
    np.testing.assert_allclose(y[1000:4000], np.sin(2 * np.pi * 10 * t)[1000:4000], atol=0.03)


def test_a_batch_gives_each_record_what_it_gives_alone() -> None:
    """preprocess_many filters records of one rate and length together: every result is the record's
    own (signal, mask, flags and R peaks), whatever else is in the batch; unusable ones keep their error."""
    records = [
        (ecg_like(500, 10, seed=1), 500.0, FILE_ORDER),
        (ecg_like(100, 10, seed=2), 100.0, FILE_ORDER),
        (ecg_like(500, 0.5), 500.0, FILE_ORDER),  # under 1 s
        (ecg_like(500, 10, n_leads=3, seed=3), 500.0, ["V2", "II", "AVL"]),
        (ecg_like(500, 10, seed=4), 500.0, FILE_ORDER),
        (ecg_like(257, 30, seed=5), 257.0, FILE_ORDER),
    ]
    records[4][0][5] = 0.3  # a flat lead in one record of the 500 Hz group
    batch = preprocess_many(records, 100)
    assert isinstance(batch[2], ValueError) and "under 1 s" in str(batch[2])
    for (signal, fs_hz, leads), got in zip(records, batch, strict=True):
        if isinstance(got, ValueError):
            continue
        alone = preprocess(signal.copy(), fs_hz, list(leads), 100)
        assert got.flags == alone.flags and got.valid_samples == alone.valid_samples
        np.testing.assert_array_equal(got.lead_mask, alone.lead_mask)
        np.testing.assert_array_equal(got.signal, alone.signal)
        np.testing.assert_array_equal(got.beat_positions, alone.beat_positions)
        assert got.beat_positions.dtype == np.int32 and got.beat_positions.size >= 10
    assert FLAG_FLAT_LEAD in batch[4].flags and FLAG_FLAT_LEAD not in batch[0].flags


@pytest.mark.timeout(300)
def test_r_peaks_from_the_filter_spectrum_are_those_of_the_stored_signal(shared_data: Path) -> None:
    """preprocess detects R peaks from the spectrum it filters the record with (no second filtering
    pass). On 120 real PTB-XL records at both rates they are the peaks detect_r_peaks finds on the
    stored, standardised signal: every one within one model-rate sample, and nearly all identical."""
    root = shared_data / "ptbxl-sample"
    with open(root / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:120]
    for column, fs_hz in (("filename_lr", 100), ("filename_hr", 500)):
        total = identical = 0
        for row in rows:
            signal, fields = wfdb.rdsamp(str(root / row[column]))
            pre = preprocess(signal.T, fs_hz, list(fields["sig_name"]), 100)
            stored = pre.signal.transpose(1, 0, 2).reshape(12, -1)[:, : pre.valid_samples]
            expected = detect_r_peaks(stored, 100)
            assert pre.beat_positions.size == expected.size, row["ecg_id"]
            diff = np.abs(pre.beat_positions.astype(np.int64) - expected)
            assert diff.max(initial=0) <= 1, row["ecg_id"]
            total += expected.size
            identical += int((diff == 0).sum())
        assert total > 1000
        assert identical / total >= 0.995
