"""The MIMIC-IV-ECG, Challenge and plain-WFDB readers on fixtures built from real PTB-XL records."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import wfdb
from archive_fixtures import (
    MIMIC_LEAD_ORDER,
    FixtureRecord,
    make_challenge_fixture,
    make_mimic_fixture,
    make_wfdb_fixture,
    ptbxl_frames,
    ptbxl_rows,
)
from scipy.io import loadmat

from rare_ecg.archive import open_archive
from rare_ecg.archive.mimic import measurements_from
from rare_ecg.archive.record import INVALID_ADC, REASON_MISSING_FILE, EcgRecord, RecordError
from rare_ecg.signals.leads import CANONICAL_LEADS


def _read_all(root: Path, layout: str) -> dict[str, EcgRecord]:
    reader = open_archive(root, layout)
    return {ref.source_path: reader.read(ref) for ref in reader.list_refs()}


def _check_common(record: EcgRecord, expected: FixtureRecord, layout: str) -> None:
    assert record.source == layout
    assert record.fs_hz == expected.fs_hz
    assert record.n_samples == expected.n_samples
    assert record.digital.shape == (len(expected.lead_names), expected.n_samples)
    assert record.lead_names == list(expected.lead_names)
    assert {label.code for label in record.labels if label.code} == expected.codes
    assert sorted(label.source_code for label in record.labels if label.code is None) == sorted(
        expected.unmapped
    )
    assert record.age == expected.age
    assert record.sex == expected.sex


@pytest.fixture(scope="module")
def mimic(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FixtureRecord]]:
    root = tmp_path_factory.mktemp("mimic")
    return root, make_mimic_fixture(root, n=8, sample=shared_data / "ptbxl-sample")


def test_mimic_reader(mimic: tuple[Path, list[FixtureRecord]], shared_data: Path) -> None:
    root, expected = mimic
    records = _read_all(root, "mimic")
    assert list(records) == [e.source_path for e in expected]  # record_list order
    rows = {r["ecg_id"]: r for r in ptbxl_rows(shared_data / "ptbxl-sample")}
    order = [MIMIC_LEAD_ORDER.index(lead) for lead in CANONICAL_LEADS]
    for e in expected:
        record = records[e.source_path]
        _check_common(record, e, "mimic")
        assert all(label.vocabulary == "mimic_report" for label in record.labels)
        # the samples are the PTB-XL record's, in MIMIC's lead order (aVF before aVL)
        truth = ptbxl_frames(rows[str(e.ecg_id)], shared_data / "ptbxl-sample")
        np.testing.assert_array_equal(record.digital[order], truth.T)
        np.testing.assert_allclose(record.physical_mv()[order], truth.T / 1000.0)
        wf = wfdb.rdrecord(str(root / e.source_path), physical=False)
        np.testing.assert_array_equal(record.digital, wf.d_signal.T)
        assert record.patient_id is not None and f"p{record.patient_id}" in e.source_path
        assert record.recorded_at is not None and record.recorded_at.hour == 8
    first, second, third = (records[e.source_path] for e in expected[:3])
    # gains written as 1 adu/uV are 1000 adu/mV
    np.testing.assert_array_equal(first.adc_gain, np.full(12, 1000.0))
    assert first.measurements == {
        "hr_bpm": 100.0, "pr_ms": 130.0, "qrs_ms": 88.0, "qt_ms": 348.0,
        "p_axis": 81.0, "qrs_axis": 77.0, "t_axis": 79.0,
    }  # fmt: skip
    assert "pr_ms" not in second.measurements  # the sentinel 29999 P onset is dropped
    assert second.measurements["hr_bpm"] == pytest.approx(60_000 / 610)
    assert second.patient_id == first.patient_id and third.patient_id != first.patient_id
    assert first.age is not None and second.age == first.age + 1  # anchor_age + (ECG year - anchor_year)
    assert expected[-1].age is None and records[expected[-1].source_path].sex is None  # no patients row


def test_mimic_without_optional_tables(mimic: tuple[Path, list[FixtureRecord]], tmp_path: Path) -> None:
    root, expected = mimic
    (tmp_path / "record_list.csv").write_bytes((root / "record_list.csv").read_bytes())
    shutil.copytree(root / "files", tmp_path / "files")  # a symlink out of the root would be unsafe_path
    records = _read_all(tmp_path, "mimic")
    assert len(records) == len(expected)
    assert all(
        r.age is None and r.sex is None and r.labels == [] and r.measurements == {} for r in records.values()
    )


def test_mimic_repeated_study_rows_do_not_duplicate_records(
    mimic: tuple[Path, list[FixtureRecord]], tmp_path: Path
) -> None:
    root, expected = mimic
    for name in ("record_list.csv", "patients.csv"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    lines = (root / "machine_measurements.csv").read_text().splitlines()
    (tmp_path / "machine_measurements.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    reader = open_archive(tmp_path, "mimic")
    assert [ref.source_path for ref in reader.list_refs()] == [e.source_path for e in expected]


@pytest.fixture(scope="module")
def challenge(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[FixtureRecord]]:
    root = tmp_path_factory.mktemp("challenge")
    return root, make_challenge_fixture(root, n=6, sample=shared_data / "ptbxl-sample")


def test_challenge_reader(challenge: tuple[Path, list[FixtureRecord]]) -> None:
    root, expected = challenge
    records = _read_all(root, "challenge")
    assert sorted(records) == sorted(e.source_path for e in expected)
    for e in expected:
        record = records[e.source_path]
        _check_common(record, e, "challenge")
        assert all(label.vocabulary == "snomed" for label in record.labels)
        val = loadmat(str(root / f"{e.source_path}.mat"))["val"]
        np.testing.assert_array_equal(record.digital, val)
        np.testing.assert_array_equal(record.adc_gain, np.full(12, 1000.0))  # 'mv' and 'mV' alike
    header = (root / "g1" / "HR00002.hea").read_text()
    assert "/mv " in header and "#Age: NaN" in header and "#Sex: M" in header
    assert records["g2/S0001"].n_samples / records["g2/S0001"].fs_hz == 30.0
    assert records["g2/Q0001"].n_samples / records["g2/Q0001"].fs_hz == 5.0
    assert (root / "g2" / "Q0001.mat").read_bytes()[:6] == b"MATLAB"  # the v5 file went through scipy


@pytest.fixture(scope="module")
def plain(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FixtureRecord]]:
    root = tmp_path_factory.mktemp("wfdb")
    return root, make_wfdb_fixture(root, n=3, sample=shared_data / "ptbxl-sample")


def test_plain_wfdb_reader(plain: tuple[Path, list[FixtureRecord]]) -> None:
    root, expected = plain
    reader = open_archive(root, "wfdb")
    assert [ref.source_path for ref in reader.list_refs()] == [
        "odd/limb6", "odd/mixed", "odd/r250", "ptb/rec000", "ptb/rec001", "ptb/rec002",
    ]  # fmt: skip
    records = _read_all(root, "wfdb")
    for e in expected:
        record = records[e.source_path]
        _check_common(record, e, "wfdb")
        truth = wfdb.rdrecord(str(root / e.source_path), physical=False)
        digital = truth.d_signal.T.astype(np.int32)
        if e.source_path == "odd/r250":
            digital[digital == -2048] = INVALID_ADC  # format 212's invalid marker, mapped
        np.testing.assert_array_equal(record.digital, digital)
    mixed = records["odd/mixed"]
    np.testing.assert_array_equal(mixed.adc_gain, [1000.0, 1000.0, 100.0])  # V1 in uV; RESP keeps its own
    r250 = records["odd/r250"]
    assert r250.n_samples / r250.fs_hz == 20.0
    assert int((r250.digital == INVALID_ADC).sum()) == 10
    assert np.isnan(r250.physical_mv()[2, 100:110]).all()
    np.testing.assert_allclose(
        r250.physical_mv()[0, :50], wfdb.rdrecord(str(root / "odd/r250")).p_signal[:50, 0], atol=1e-9
    )


def test_walk_skips_hidden_and_streams_depth_first(
    tmp_path: Path, plain: tuple[Path, list[FixtureRecord]]
) -> None:
    root, _ = plain
    for name in ("a/b", ".hidden"):
        (tmp_path / name).mkdir(parents=True)
    for rel in ("a/b/x", "a/y", ".hidden/z", "top"):
        for ext in (".hea", ".dat"):
            (tmp_path / f"{rel}{ext}").write_bytes((root / f"ptb/rec000{ext}").read_bytes())
    refs = [ref.source_path for ref in open_archive(tmp_path, "wfdb").list_refs()]
    assert refs == ["a/b/x", "a/y", "top"]


def test_annotations_csv_is_attached(mimic: tuple[Path, list[FixtureRecord]], tmp_path: Path) -> None:
    root, expected = mimic
    for name in ("record_list.csv", "machine_measurements.csv", "patients.csv"):
        (tmp_path / name).write_bytes((root / name).read_bytes())
    shutil.copytree(root / "files", tmp_path / "files")  # a symlink out of the root would be unsafe_path
    target = expected[0].source_path
    with open(tmp_path / "annotations.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source_path", "label", "lead", "start_sample", "end_sample"])
        writer.writerow([target, "WPW", "V1", 100, 250])
        writer.writerow([target, "WPW", "AVF", 300, 400])
        writer.writerow(["some/other", "LBBB", "I", 0, 10])
    records = _read_all(tmp_path, "mimic")
    spans = [(a.label, a.lead, a.start_sample, a.end_sample) for a in records[target].annotations]
    assert spans == [("WPW", "V1", 100, 250), ("WPW", "aVF", 300, 400)]
    assert all(not r.annotations for path, r in records.items() if path != target)


def test_mimic_measurements_drop_sentinels() -> None:
    meta = {"rr_interval": "29999", "p_onset": "40", "qrs_onset": "170", "qrs_end": "29999", "t_end": "518",
            "p_axis": "29999", "qrs_axis": "-30", "t_axis": ""}  # fmt: skip
    assert measurements_from(meta) == {"pr_ms": 130.0, "qt_ms": 348.0, "qrs_axis": -30.0}
    assert measurements_from({"rr_interval": "0"}) == {}


def test_mimic_row_without_path_is_listed_and_rejected(
    mimic: tuple[Path, list[FixtureRecord]], tmp_path: Path
) -> None:
    root, expected = mimic
    lines = (root / "record_list.csv").read_text().splitlines()
    (tmp_path / "record_list.csv").write_text(
        "\n".join([*lines, "10009999,49999999,49999999,2180-01-01 00:00:00,"])
    )
    shutil.copytree(root / "files", tmp_path / "files")  # a symlink out of the root would be unsafe_path
    reader = open_archive(tmp_path, "mimic")
    refs = list(reader.list_refs())
    assert len(refs) == len(expected) + 1
    assert refs[-1].source_path == "record_list.csv#study_id=49999999"
    with pytest.raises(RecordError) as err:
        reader.read(refs[-1])
    assert err.value.reason == REASON_MISSING_FILE and "49999999" in err.value.detail


def test_mimic_refs_carry_only_json_values(mimic: tuple[Path, list[FixtureRecord]]) -> None:
    root, _ = mimic
    refs = list(open_archive(root, "mimic").list_refs())
    assert all(json.loads(json.dumps(ref.meta)) == ref.meta for ref in refs)
    assert refs[0].meta["reports"] == ["Normal ECG", "Low QRS voltages in limb leads", "Sinus rhythm"]
    assert refs[0].meta["rr_interval"] == 600.0
