"""The direct WFDB writer: wfdb.rdrecord reads its records back to the generated signal within one
ADC step, and its sample file is byte for byte what wfdb.wrsamp writes."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import wfdb

from rare_ecg.synth.ecg import RecordSpec, synthesize
from rare_ecg.synth.labels import resolve
from rare_ecg.synth.layouts import MIMIC_GAIN, MIMIC_LEADS, PTBXL_GAIN, PTBXL_LEADS
from rare_ecg.synth.wfdb_write import INT16_LIMIT, quantize, write_record


def _ecg_mv(fs: int) -> np.ndarray:
    ecg = synthesize(RecordSpec(4, 7, 0, "female", 48.0, resolve({"SR", "CLBBB", "PVC"})))
    return ecg.signal_at(fs)


def test_rdrecord_reads_back_within_one_adc_step(tmp_path: Path) -> None:
    for fs, gain, leads in (
        (500, PTBXL_GAIN, PTBXL_LEADS),
        (100, PTBXL_GAIN, PTBXL_LEADS),
        (500, MIMIC_GAIN, MIMIC_LEADS),
    ):
        mv = _ecg_mv(fs)
        name = f"rec_{fs}_{int(gain)}"
        write_record(tmp_path / name, quantize(mv, gain), fs, gain, leads)
        rec = wfdb.rdrecord(str(tmp_path / name))
        assert rec.fs == fs and rec.sig_len == mv.shape[1] and rec.sig_name == leads
        assert rec.units == ["mV"] * 12 and rec.fmt == ["16"] * 12
        assert np.abs(rec.p_signal.T - mv).max() <= 0.5 / gain + 1e-9


def test_header_fields_match_wfdb(tmp_path: Path) -> None:
    digital = quantize(_ecg_mv(500), PTBXL_GAIN)
    base = datetime(2135, 3, 9, 14, 5, 2)
    write_record(tmp_path / "r", digital, 500, PTBXL_GAIN, PTBXL_LEADS, base)
    rec = wfdb.rdrecord(str(tmp_path / "r"), physical=False)
    assert rec.init_value == digital[:, 0].tolist()
    assert rec.checksum == [int(c) for c in digital.astype(np.int64).sum(axis=1) % 65536]
    assert rec.base_time.isoformat() == "14:05:02" and rec.base_date.isoformat() == "2135-03-09"
    assert np.array_equal(rec.d_signal.T, digital)


def test_sample_file_is_what_wrsamp_writes(tmp_path: Path) -> None:
    digital = quantize(_ecg_mv(100), PTBXL_GAIN)
    write_record(tmp_path / "ours", digital, 100, PTBXL_GAIN, PTBXL_LEADS)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    wfdb.wrsamp(
        "ours", fs=100, units=["mV"] * 12, sig_name=PTBXL_LEADS, d_signal=digital.T.astype(np.int64),
        fmt=["16"] * 12, adc_gain=[PTBXL_GAIN] * 12, baseline=[0] * 12, write_dir=str(theirs),
    )  # fmt: skip
    assert (tmp_path / "ours.dat").read_bytes() == (theirs / "ours.dat").read_bytes()


def test_quantize_clips_without_the_invalid_marker() -> None:
    out = quantize(np.array([[40.0, -40.0, 0.0004, -0.0006]]), 1000.0)
    assert out.tolist() == [[INT16_LIMIT, -INT16_LIMIT, 0, -1]]
