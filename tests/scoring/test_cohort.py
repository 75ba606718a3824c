"""The --cohort filter: parsing, its canonical text, and its selection over ecg_records."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from rare_ecg.scoring.cohort import CohortFilter, parse_cohort


def test_clauses_parse_into_a_filter(tmp_path: Path) -> None:
    assert parse_cohort("all") == CohortFilter() and parse_cohort("").canonical() == "all"
    keys = tmp_path / "patients.txt"
    keys.write_text("k1\nk2\n\n")
    flt = parse_cohort(
        f"source=ptbxl, synthetic; from=2010-01-01;to=2012-12-31; patients=@{keys}; split=test"
    )
    assert flt.sources == ("ptbxl", "synthetic")
    assert (flt.date_from, flt.date_to) == (date(2010, 1, 1), date(2012, 12, 31))
    assert flt.patients == ("k1", "k2") and flt.split == "test"
    assert (
        flt.canonical() == "source=ptbxl,synthetic;from=2010-01-01;to=2012-12-31;patients=2 keys;split=test"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("age>60", "is not key=value"),
        ("sex=female", "is not key=value"),
        ("source=", "lists nothing"),
        ("from=yesterday", "not an ISO date"),
        ("from=2020-02-01;to=2020-01-01", "is after"),
        ("source=a;source=b", "appears twice"),
        ("split=holdout", "is not one of"),
        ("patients=@/no/such/file", "no such file"),
    ],
)
def test_malformed_filters_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cohort(text)
