"""Header parsing, signal validation, field parsing and open_archive's errors, on small written records."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from rare_ecg.archive import LAYOUTS, open_archive
from rare_ecg.archive.fields import (
    FLAG_IMPLAUSIBLE_AGE,
    normalize_patient_id,
    parse_age,
    parse_datetime,
    parse_sex,
)
from rare_ecg.archive.record import (
    REASON_BAD_HEADER,
    REASON_BAD_LEADS,
    REASON_BAD_LENGTH,
    REASON_BAD_METADATA,
    REASON_TRUNCATED_SIGNAL,
    REASON_UNUSABLE_SIGNAL,
    RecordError,
    RecordRef,
)
from rare_ecg.archive.wfdb_io import MAX_DURATION_S, RawRecord, comment_fields, parse_header, read_wfdb_record


def _read(hea: Path) -> RawRecord:
    return read_wfdb_record(hea.parent, hea.stem)


def _write(folder: Path, header: str, frames: np.ndarray | None = None, name: str = "r") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.hea").write_text(header)
    if frames is not None:
        (folder / f"{name}.dat").write_bytes(frames.astype("<i2").tobytes())
    return folder / f"{name}.hea"


def _frames(n: int, n_sig: int) -> np.ndarray:
    return (np.arange(n * n_sig).reshape(n, n_sig) % 2000 - 1000).astype(np.int16)


def test_parse_header_fields_and_defaults() -> None:
    header = parse_header(
        "# leading comment\nrec 3 500/1000(0) 5000 08:44:00 23/07/2180\n"
        "rec.dat 16+0 2.5(-3)/uV 16 7 0 0 0 Lead II\n"
        "rec.dat 16 0 16 9 0 0 0 V1\n"
        "rec.dat 16\n"
        "#Age: 74\n#Dx: 164889003, 426783006\n",
        "rec",
    )
    assert (header.record_name, header.n_sig, header.fs_hz, header.n_samples) == ("rec", 3, 500.0, 5000)
    first, second, third = header.signals
    assert (first.gain, first.baseline, first.units, first.description) == (2.5, -3, "uV", "Lead II")
    assert (second.gain, second.baseline, second.units) == (
        200.0,
        9,
        "mV",
    )  # gain 0 -> 200, baseline = ADC zero
    assert (third.gain, third.baseline, third.description) == (200.0, 0, "")
    assert comment_fields(header) == {"age": "74", "dx": "164889003, 426783006"}  # 'Key: value' lines only


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no record line"),
        ("rec/2 2 250 1000\nseg1 500\nseg2 500\n", "multi-segment"),
        ("rec twelve 500 5000\n", "'twelve'"),
        ("rec 1 fast 5000\n", "'fast'"),
        ("rec 1 500 5000\nrec.dat 16 abc/mV 16 0 0 0 0 I\n", "'abc/mV'"),
        ("rec 1 500 5000\nrec.dat 16q 200/mV 16 0 0 0 0 I\n", "'16q'"),
    ],
)
def test_unparsable_headers_name_the_bad_value(text: str, fragment: str) -> None:
    with pytest.raises(RecordError) as err:
        parse_header(text, "some/rec")
    assert err.value.reason == REASON_BAD_HEADER
    assert fragment in err.value.detail and err.value.detail.startswith("some/rec:")


@pytest.mark.parametrize(("units", "gain_per_mv"), [("mV", 200.0), ("mv", 200.0), ("uV", 200_000.0),
                                                    ("μV", 200_000.0), ("V", 0.2)])  # fmt: skip
def test_units_become_adc_units_per_mv(tmp_path: Path, units: str, gain_per_mv: float) -> None:
    frames = _frames(1000, 1)
    hea = _write(tmp_path, f"r 1 500 1000\nr.dat 16 200(0)/{units} 16 0 0 0 0 II\n", frames)
    raw = _read(hea)
    assert raw.adc_gain.tolist() == [gain_per_mv]
    np.testing.assert_array_equal(raw.digital[0], frames[:, 0])


def test_non_voltage_unit_on_an_ecg_lead_is_a_bad_header(tmp_path: Path) -> None:
    hea = _write(tmp_path, "r 1 500 1000\nr.dat 16 200(0)/mmHg 16 0 0 0 0 II\n", _frames(1000, 1))
    with pytest.raises(RecordError) as err:
        _read(hea)
    assert err.value.reason == REASON_BAD_HEADER and "'mmHg'" in err.value.detail


def test_length_from_file_size_when_header_omits_it(tmp_path: Path) -> None:
    frames = _frames(1500, 2)
    raw = _read(_write(tmp_path, "r 2 500\nr.dat 16 200 16 0 0 0 0 I\nr.dat 16 200 16 0 0 0 0 II\n", frames))
    assert raw.digital.shape == (2, 1500)
    np.testing.assert_array_equal(raw.digital.T, frames)


def test_signals_spread_over_two_files(tmp_path: Path) -> None:
    a, b = _frames(1000, 2), _frames(1000, 1) + 5
    (tmp_path / "a.dat").write_bytes(a.tobytes())
    (tmp_path / "b.dat").write_bytes(b.tobytes())
    hea = _write(
        tmp_path,
        "r 3 500 1000\na.dat 16 200 16 0 0 0 0 I\nb.dat 16 100 16 0 0 0 0 V1\na.dat 16 200 16 0 0 0 0 II\n",
    )
    raw = _read(hea)
    np.testing.assert_array_equal(raw.digital, np.stack([a[:, 0], b[:, 0], a[:, 1]]))
    assert raw.lead_names == ["I", "V1", "II"]


def test_too_long_and_truncated(tmp_path: Path) -> None:
    n = int(MAX_DURATION_S * 100) + 100
    hea = _write(tmp_path / "long", f"r 1 100 {n}\nr.dat 16 200 16 0 0 0 0 I\n")
    with pytest.raises(RecordError) as err:
        _read(hea)  # rejected on the header, before any signal is read
    assert err.value.reason == REASON_BAD_LENGTH and f"{n} samples" in err.value.detail
    hea = _write(tmp_path / "short", "r 2 500 1000\nr.dat 16 200 16 0 0 0 0 I\nr.dat 16 200 16 0 0 0 0 II\n",
                 _frames(999, 2))  # fmt: skip
    with pytest.raises(RecordError) as err:
        _read(hea)
    assert err.value.reason == REASON_TRUNCATED_SIGNAL and "999" in err.value.detail


def test_zero_signals_is_bad_leads(tmp_path: Path) -> None:
    with pytest.raises(RecordError) as err:
        _read(_write(tmp_path, "r 0 500 1000\n"))
    assert err.value.reason == REASON_BAD_LEADS


def test_corrupt_mat_file_is_unusable_signal(tmp_path: Path) -> None:
    (tmp_path / "r.mat").write_bytes(b"MATLAB 5.0 not really" + bytes(200))
    hea = _write(tmp_path, "r 1 500 1000\nr.mat 16x1+24 1000/mV 16 0 0 0 0 I\n")
    with pytest.raises(RecordError) as err:
        _read(hea)
    assert err.value.reason == REASON_UNUSABLE_SIGNAL and "r.mat" in err.value.detail


def test_checksum_covers_header_and_signal(tmp_path: Path) -> None:
    frames = _frames(1000, 1)
    text = "r 1 500 1000\nr.dat 16 200 16 0 0 0 0 I\n"
    base = _read(_write(tmp_path / "a", text, frames)).checksum
    assert _read(_write(tmp_path / "b", text, frames)).checksum == base
    assert _read(_write(tmp_path / "c", text + "# note\n", frames)).checksum != base
    frames[5, 0] += 1
    assert _read(_write(tmp_path / "d", text, frames)).checksum != base


def test_base_date_and_time_become_recorded_at(tmp_path: Path) -> None:
    frames = _frames(1000, 1)
    wfdb_style = _read(_write(tmp_path / "a", "r 1 500 1000 08:44:00 23/07/2180\nr.dat 16 200 16 0 0 0 0 I\n", frames))  # fmt: skip
    challenge_style = _read(_write(tmp_path / "b", "r 1 500 1000 05-Feb-2020 11:39:16\nr.dat 16 200 16 0 0 0 0 I\n", frames))  # fmt: skip
    assert wfdb_style.to_record("wfdb", "r").recorded_at == datetime(2180, 7, 23, 8, 44)
    assert challenge_style.to_record("wfdb", "r").recorded_at == datetime(2020, 2, 5, 11, 39, 16)


@pytest.mark.parametrize(
    ("value", "ptbxl", "age", "flags"),
    [
        ("56.0", True, 56.0, []),
        ("300", True, 90.0, []),
        ("300", False, None, [FLAG_IMPLAUSIBLE_AGE]),
        ("120", False, 120.0, []),
        ("121", False, None, [FLAG_IMPLAUSIBLE_AGE]),
        ("-1", False, None, [FLAG_IMPLAUSIBLE_AGE]),
        ("NaN", False, None, []),
        ("", True, None, []),
        ("Unknown", False, None, []),
    ],
)
def test_parse_age(value: str, ptbxl: bool, age: float | None, flags: list[str]) -> None:
    assert parse_age(value, ptbxl=ptbxl) == (age, flags)


def test_parse_sex_and_ids_and_dates() -> None:
    assert [parse_sex(v, ptbxl=True) for v in ("0", "1", "1.0", "2", "", None)] == [
        "male", "female", "female", None, None, None,
    ]  # fmt: skip
    assert [parse_sex(v) for v in ("Male", "female", "M", "f", "Unknown", "0")] == [
        "male", "female", "male", "female", None, None,
    ]  # fmt: skip
    assert [normalize_patient_id(v) for v in ("15709.0", "10000032", "A12", " ", None)] == [
        "15709", "10000032", "A12", None, None,
    ]  # fmt: skip
    assert parse_datetime("1984-11-09 09:17:34") == datetime(1984, 11, 9, 9, 17, 34)
    assert parse_datetime("not a date") is None


def test_open_archive_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"'edf'.*ptbxl, mimic, challenge, wfdb"):
        open_archive(tmp_path, "edf")
    with pytest.raises(ValueError, match="nowhere"):
        open_archive(tmp_path / "nowhere", "wfdb")
    with pytest.raises(ValueError, match=r"ptbxl_database\.csv"):
        open_archive(tmp_path, "ptbxl")
    with pytest.raises(ValueError, match=r"record_list\.csv"):
        open_archive(tmp_path, "mimic")
    (tmp_path / "ptbxl_database.csv").write_text("ecg_id,filename_lr\n")
    with pytest.raises(ValueError, match=r"250.*\[100, 500\]"):
        open_archive(tmp_path, "ptbxl", fs_hz=250)
    with pytest.raises(ValueError, match="lacks columns"):
        list(open_archive(tmp_path, "ptbxl").list_refs())
    assert LAYOUTS == ("ptbxl", "mimic", "challenge", "wfdb")


def test_malformed_annotations_reject_with_bad_metadata(tmp_path: Path) -> None:
    _write(tmp_path, "r 1 500 1000\nr.dat 16 200 16 0 0 0 0 I\n", _frames(1000, 1))
    (tmp_path / "annotations.csv").write_text(
        "source_path,label,lead,start_sample,end_sample\nr,WPW,I,ten,20\n"
    )
    reader = open_archive(tmp_path, "wfdb")
    with pytest.raises(RecordError) as err:
        reader.read(RecordRef("r"))
    assert err.value.reason == REASON_BAD_METADATA and "'ten'" in err.value.detail
