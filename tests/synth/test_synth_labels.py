"""The label catalogue: the whole SCP-ECG vocabulary, MIMIC statements the readers map back, and the
rules that keep a label set physiologically coherent."""

from __future__ import annotations

import pytest

from rare_ecg.archive.labels import canonical_vocabulary, mimic_report_labels
from rare_ecg.synth.labels import CATALOGUE, PRIMARY_RHYTHMS, resolve


def test_catalogue_is_the_scp_vocabulary() -> None:
    assert sorted(CATALOGUE) == sorted(canonical_vocabulary())
    assert len(CATALOGUE) == 71


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_mimic_statement_maps_back_to_the_code(code: str) -> None:
    mapped = [label.code for label in mimic_report_labels([CATALOGUE[code].mimic_statement])]
    assert mapped == [code]


def test_resolve_gives_exactly_one_primary_rhythm() -> None:
    assert resolve({"NORM"}) == {"NORM", "SR"}
    assert resolve({"SR", "AFIB", "STACH"}) == {"AFIB"}
    assert resolve({"AFLT", "AFIB"}) == {"AFLT"}
    assert resolve({"PSVT", "SVTAC"}) == {"PSVT", "SVTAC"}
    for labels in ({"SR", "SBRAD"}, {"PACE", "SR", "AFIB"}, {"SARRH", "STACH", "IMI"}):
        assert len(resolve(labels) & set(PRIMARY_RHYTHMS)) == 1


def test_resolve_drops_what_the_rhythm_makes_impossible() -> None:
    assert resolve({"AFIB", "1AVB", "LAO/LAE", "IMI"}) == {"AFIB", "IMI"}
    assert resolve({"PACE", "CLBBB", "IMI", "LNGQT"}) == {"PACE", "LNGQT"}
    assert resolve({"SR", "WPW", "1AVB", "CRBBB"}) == {"SR", "WPW"}
    assert resolve({"SR", "CLBBB", "CRBBB", "LAFB"}) == {"SR", "CLBBB"}
    assert resolve({"SR", "LVOLT", "LVH"}) == {"SR", "LVOLT"}


def test_unknown_code_is_named() -> None:
    with pytest.raises(ValueError, match="unknown label 'XYZ'"):
        resolve({"SR", "XYZ"})
