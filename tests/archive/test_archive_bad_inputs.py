"""Every kind of bad input, in every layout: the reader rejects it with the right reason, or reads it
so the pipeline can flag it or drop it as a duplicate. Nothing is lost: every record is listed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from archive_fixtures import BAD_KINDS, BadInput, make_bad_inputs

from rare_ecg.archive import open_archive
from rare_ecg.archive.fields import FLAG_IMPLAUSIBLE_AGE
from rare_ecg.archive.record import INVALID_ADC, REASON_DUPLICATE, Label, RecordError
from rare_ecg.signals.preprocess import FLAG_FLAT_LEAD, FLAG_NAN_SAMPLES

LAYOUTS = ("ptbxl", "mimic", "challenge", "wfdb")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_bad_input(layout: str, shared_data: Path, tmp_path: Path) -> None:
    expected = make_bad_inputs(tmp_path, layout, sample=shared_data / "ptbxl-sample")
    indexed = layout in ("ptbxl", "mimic")
    assert set(expected) == {k for k in BAD_KINDS if indexed or k != "missing_record"}
    reader = open_archive(tmp_path, layout)
    refs = {ref.source_path: ref for ref in reader.list_refs()}
    assert set(refs) == {bad.source_path for bad in expected.values()}  # nothing lost from the listing
    checksums: dict[str, str] = {}
    for kind, bad in expected.items():
        ref = refs[bad.source_path]
        if bad.raised_by_reader:
            with pytest.raises(RecordError) as err:
                reader.read(ref)
            assert err.value.reason == bad.reason, (kind, err.value.detail)
            assert bad.source_path in err.value.detail  # the detail names the record
            continue
        record = reader.read(ref)
        checksums[kind] = record.checksum
        _check_kept(kind, bad, record.flags, record.digital, [lb for lb in record.labels if lb.code is None])
    assert checksums["duplicate"] == checksums["good"]
    assert expected["duplicate"].reason == REASON_DUPLICATE
    assert expected["duplicate"].duplicate_of == expected["good"].source_path
    others = [c for k, c in checksums.items() if k not in ("good", "duplicate")]
    assert checksums["good"] not in others


def _check_kept(
    kind: str, bad: BadInput, flags: list[str], digital: np.ndarray, unmapped: list[Label]
) -> None:
    if kind == "implausible_age":
        assert bad.flag == FLAG_IMPLAUSIBLE_AGE and flags == [FLAG_IMPLAUSIBLE_AGE]
    else:
        assert flags == []
    if kind == "nan_lead":
        assert bad.flag == FLAG_NAN_SAMPLES
        assert (digital[3] == INVALID_ADC).all() and not (digital[[0, 1, 2]] == INVALID_ADC).any()
    if kind == "flat_lead":
        assert bad.flag == FLAG_FLAT_LEAD
        assert np.ptp(digital[5]) == 0 and np.ptp(digital[0]) > 0
    if kind == "unknown_label":
        assert [label.source_code for label in unmapped] == [bad.unmapped_label]
    elif kind != "good":
        assert bad.reason in (None, REASON_DUPLICATE)


def test_ptbxl_bad_inputs_at_500_hz(shared_data: Path, tmp_path: Path) -> None:
    expected = make_bad_inputs(tmp_path, "ptbxl", fs_hz=500, sample=shared_data / "ptbxl-sample")
    reader = open_archive(tmp_path, "ptbxl", fs_hz=500)
    refs = {ref.source_path: ref for ref in reader.list_refs()}
    assert set(refs) == {bad.source_path for bad in expected.values()}
    assert all(path.startswith("records500/") for path in refs)
    with pytest.raises(RecordError) as err:
        reader.read(refs[expected["too_short"].source_path])
    assert err.value.reason == expected["too_short"].reason
    assert "250 samples at 500 Hz" in err.value.detail
