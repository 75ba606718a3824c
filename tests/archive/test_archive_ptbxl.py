"""The PTB-XL reader on the real 250-record sample and on the built-in example archive."""

from __future__ import annotations

import ast
import csv
import pickle
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import wfdb

from rare_ecg.archive import example_archive_path, open_archive
from rare_ecg.archive.fields import FLAG_IMPLAUSIBLE_AGE
from rare_ecg.archive.labels import canonical_vocabulary
from rare_ecg.archive.record import REASON_BAD_METADATA, REASON_MISSING_FILE, RecordError, RecordRef
from rare_ecg.signals.leads import CANONICAL_LEADS


def _csv_rows(root: Path) -> dict[str, dict[str, str]]:
    with open(root / "ptbxl_database.csv", newline="") as f:
        return {row["ecg_id"]: row for row in csv.DictReader(f)}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fs_hz", [100, 500])
def test_reads_every_sample_record_like_wfdb(shared_data: Path, fs_hz: int) -> None:
    root = shared_data / "ptbxl-sample"
    reader = open_archive(root, "ptbxl", fs_hz=fs_hz)
    refs = list(reader.list_refs())
    assert len(refs) == 250
    rows = _csv_rows(root)
    column = "filename_lr" if fs_hz == 100 else "filename_hr"
    checksums = set()
    for ref in refs:
        record = reader.read(ref)
        row = rows[ref.meta["ecg_id"]]
        assert record.source == "ptbxl"
        assert record.source_path == row[column]
        assert record.fs_hz == fs_hz
        assert record.lead_names == list(CANONICAL_LEADS)  # PTB-XL writes AVR/AVL/AVF
        truth = wfdb.rdrecord(str(root / row[column]), physical=False)
        assert record.digital.dtype == np.int32
        assert record.digital.shape == (12, 10 * fs_hz)
        np.testing.assert_array_equal(record.digital, truth.d_signal.T)
        np.testing.assert_array_equal(record.adc_gain, truth.adc_gain)
        np.testing.assert_array_equal(record.baseline, truth.baseline)
        np.testing.assert_allclose(record.physical_mv(), truth.dac().T)
        # labels: every SCP code of the row, with its likelihood, all in the canonical vocabulary
        codes = ast.literal_eval(row["scp_codes"])
        assert {(label.code, label.likelihood) for label in record.labels} == set(codes.items())
        assert all(label.vocabulary == "scp" and label.source_code == label.code for label in record.labels)
        assert record.patient_id == str(int(float(row["patient_id"])))
        assert record.sex == {"0": "male", "1": "female"}[row["sex"]]
        assert record.age == (float(row["age"]) if row["age"] else None)
        assert record.recorded_at == datetime.fromisoformat(row["recording_date"])
        assert record.split_fold == int(row["strat_fold"])
        assert record.flags == []
        checksums.add(record.checksum)
    assert len(checksums) == 250


def test_ptbxl_conventions(tmp_path: Path) -> None:
    """Age 300 means 90+, float patient ids lose '.0', likelihood 0 still counts, unknown codes are kept."""
    root = tmp_path / "ptbxl"
    shutil.copytree(example_archive_path(), root)
    rows = list(_csv_rows(root).values())
    rows[0].update(age="300.0", patient_id="15709.0", scp_codes="{'NORM': 0.0, 'XYZ': 35.0}")
    rows[1].update(age="121.0", sex="", scp_codes="{}")
    rows[2].update(age="-1", sex="1.0", scp_codes="not a dict")
    rows[3].update(filename_lr="")
    with open(root / "ptbxl_database.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    reader = open_archive(root, "ptbxl")
    refs = list(reader.list_refs())
    assert len(refs) == 20
    first = reader.read(refs[0])
    assert first.age == 90.0 and first.flags == []
    assert first.patient_id == "15709"
    assert {(lb.code, lb.source_code, lb.likelihood) for lb in first.labels} == {
        ("NORM", "NORM", 0.0),
        (None, "XYZ", 35.0),
    }
    second = reader.read(refs[1])
    assert second.age is None and second.flags == [FLAG_IMPLAUSIBLE_AGE]
    assert second.sex is None and second.labels == []
    with pytest.raises(RecordError) as bad:
        reader.read(refs[2])
    assert bad.value.reason == REASON_BAD_METADATA and "not a dict" in bad.value.detail
    # an index row without a file name is listed, and reading it says so
    assert refs[3].source_path == "ptbxl_database.csv#ecg_id=4"
    with pytest.raises(RecordError) as missing:
        reader.read(refs[3])
    assert missing.value.reason == REASON_MISSING_FILE and "ecg_id=4" in missing.value.detail


@pytest.mark.parametrize("fs_hz", [100, 500])
def test_example_archive_is_20_real_records(fs_hz: int) -> None:
    root = example_archive_path()
    assert (root / "LICENSE.txt").exists() and (root / "ATTRIBUTION.md").exists()
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert size < 3_000_000
    reader = open_archive(root, "ptbxl", fs_hz=fs_hz)
    records = [reader.read(ref) for ref in reader.list_refs()]
    assert [r.source_path for r in records] == [
        f"records{fs_hz}/00000/{i:05d}_{'lr' if fs_hz == 100 else 'hr'}" for i in range(1, 21)
    ]
    assert all(r.n_samples == 10 * fs_hz for r in records)
    codes = {label.code for r in records for label in r.labels}
    assert {"NORM", "SR"} <= codes and codes <= set(canonical_vocabulary())


def test_reader_pickles_and_reads_the_same_after() -> None:
    reader = open_archive(example_archive_path(), "ptbxl", fs_hz=500)
    ref = next(iter(reader.list_refs()))
    before = reader.read(ref)
    clone = pickle.loads(pickle.dumps(reader))
    after = clone.read(pickle.loads(pickle.dumps(ref)))
    assert after.checksum == before.checksum
    np.testing.assert_array_equal(after.digital, before.digital)
    assert after.labels == before.labels


def test_refs_carry_only_json_values() -> None:
    import json

    reader = open_archive(example_archive_path(), "ptbxl")
    for ref in reader.list_refs():
        assert isinstance(ref, RecordRef)
        assert json.loads(json.dumps(ref.meta)) == ref.meta


def test_scp_codes_cells_parse_as_the_python_literal_they_are(shared_data: Path) -> None:
    """The regular-expression parse of scp_codes gives what ast.literal_eval gives, for every distinct
    cell of the full PTB-XL table and for cells that only the literal parser (or nothing) reads."""
    from rare_ecg.archive.fields import parse_float
    from rare_ecg.archive.ptbxl import _scp_literal

    database = next((shared_data / "ptbxl-meta").glob("*database*.csv"))
    with database.open(newline="") as f:
        cells = sorted({row["scp_codes"] for row in csv.DictReader(f)})
    assert len(cells) > 5000
    odd = ["{'A': 1,}", "{'A': None}", "{}", "{'A': 'x'}", "{1: 2}", "{'A': 1e400}", "{'A': 1, 'A': 2}",
           "{'A' : -5 }", "{\"A\": 5}", "{'A': 5} trailing", "['A']", "{'A': 5, 'B'}"]  # fmt: skip
    for cell in cells + odd:
        try:
            value = ast.literal_eval(cell)
        except (ValueError, SyntaxError):
            value = None
        expected = (
            {k: parse_float(v) for k, v in value.items()}
            if isinstance(value, dict) and all(isinstance(k, str) for k in value)
            else None
        )
        parsed = _scp_literal(cell)
        assert (dict(parsed) if parsed is not None else None) == expected, cell
