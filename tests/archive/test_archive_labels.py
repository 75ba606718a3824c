"""The canonical vocabulary and the SNOMED and MIMIC-report maps onto it."""

from __future__ import annotations

import csv
from importlib.resources import files
from pathlib import Path

import pytest

from rare_ecg.archive.labels import (
    canonical_vocabulary,
    mimic_report_labels,
    mimic_report_rules,
    scp_labels,
    snomed_labels,
    snomed_to_scp,
)
from rare_ecg.archive.record import Label

LABELS = Path(str(files("rare_ecg") / "resources" / "labels"))


def _table(name: str) -> list[dict[str, str]]:
    with open(LABELS / name, newline="") as f:
        return list(csv.DictReader(f))


def test_vocabulary_is_ptbxl_71_scp_statements(shared_data: Path) -> None:
    vocabulary = canonical_vocabulary()
    assert len(vocabulary) == 71 == len(set(vocabulary))
    with open(shared_data / "ptbxl-meta" / "scp_statements.csv", newline="") as f:
        assert vocabulary == [row[""] for row in csv.DictReader(f)]
    assert (LABELS / "scp_statements.csv").read_bytes() == (
        shared_data / "ptbxl-meta" / "scp_statements.csv"
    ).read_bytes()
    for name in ("LICENSE-CC-BY-4.0.txt", "LICENSE-BSD-2-Clause.txt", "README.md"):
        assert (LABELS / name).stat().st_size > 500


def test_snomed_table_covers_every_challenge_code(shared_data: Path) -> None:
    challenge = set()
    for name in ("dx_mapping_scored.csv", "dx_mapping_unscored.csv"):
        assert (LABELS / name).read_bytes() == (shared_data / "label-maps" / name).read_bytes()
        challenge |= {row["SNOMEDCTCode"] for row in _table(name)}
    table = snomed_to_scp()
    assert set(table) == challenge and len(table) == 133
    vocabulary = set(canonical_vocabulary())
    assert all(set(codes) <= vocabulary for codes in table.values())
    assert all(row["note"] for row in _table("snomed_to_scp.csv"))  # every choice says why


@pytest.mark.parametrize(
    ("snomed", "scp"),
    [
        ("164889003", ("AFIB",)),
        ("426783006", ("SR",)),  # sinus rhythm is the rhythm statement, not NORM
        ("59118001", ("CRBBB",)),  # scored as one with 713427006
        ("164909002", ("CLBBB",)),
        ("17338001", ("PVC",)),
        ("195080001", ("AFIB", "AFLT")),
        ("57054005", ()),  # acute MI: not SCP's AMI (anterior)
    ],
)
def test_snomed_mapping_choices(snomed: str, scp: tuple[str, ...]) -> None:
    assert snomed_to_scp()[snomed] == scp


def test_snomed_labels_keep_unmapped_and_unknown_codes() -> None:
    labels = snomed_labels(["164889003", "39732003", "123", "195080001"])
    assert labels == [
        Label("AFIB", "164889003", "snomed"),
        Label(None, "39732003", "snomed"),  # known, no SCP equivalent
        Label(None, "123", "snomed"),  # unknown to every table
        Label("AFIB", "195080001", "snomed"),
        Label("AFLT", "195080001", "snomed"),
    ]


def test_scp_labels_keep_likelihood_zero_and_unknown_codes() -> None:
    assert scp_labels({"NORM": 100.0, "SR": 0.0, "FOO": None}) == [
        Label("NORM", "NORM", "scp", 100.0),
        Label("SR", "SR", "scp", 0.0),
        Label(None, "FOO", "scp", None),
    ]


def test_every_mimic_rule_example_reaches_its_own_rule() -> None:
    rows = _table("mimic_report_rules.csv")
    rules = mimic_report_rules()
    assert len(rules) == len(rows)
    vocabulary = set(canonical_vocabulary())
    for row, (pattern, codes) in zip(rows, rules, strict=True):
        assert set(codes) <= vocabulary, row
        first = next(i for i, (p, _) in enumerate(rules) if p.search(row["example"]))
        assert rules[first][0] is pattern, (
            f"{row['example']!r} is caught by {rules[first][0].pattern!r} first"
        )


def test_mimic_rules_give_every_scp_code_a_statement() -> None:
    """The synthetic MIMIC cohorts print one statement per code: each code needs a rule of its own."""
    single = {tuple(row["scp_code"].split()) for row in _table("mimic_report_rules.csv")}
    assert [code for code in canonical_vocabulary() if (code,) not in single] == []


@pytest.mark.parametrize(
    ("statement", "codes"),
    [
        ("Normal ECG", ["NORM"]),
        ("Borderline ECG", [None]),
        ("Abnormal ECG", [None]),
        ("Normal ECG except for rate", [None]),
        ("Sinus rhythm", ["SR"]),
        ("SINUS BRADYCARDIA", ["SBRAD"]),
        ("Sinus rhythm with 1st degree A-V block", ["SR", "1AVB"]),
        ("Atrial fibrillation with rapid ventricular response", ["AFIB"]),
        ("Incomplete right bundle branch block", ["IRBBB"]),
        ("Right bundle branch block", ["CRBBB"]),
        ("Inferior infarct - age undetermined", ["IMI"]),
        ("Anteroseptal infarct - age undetermined", ["ASMI"]),
        ("Extensive anterior infarct", ["ALMI"]),
        ("Inferior injury pattern", ["INJIN"]),
        ("Ventricular paced rhythm", ["PACE"]),
        ("Wandering atrial pacemaker", [None]),
        ("Left axis deviation", [None]),
        ("Nonspecific T wave abnormality", ["NDT"]),
        ("Inferior T wave changes are nonspecific", ["NT_"]),
        ("Nonspecific ST and T wave abnormality", ["NST_"]),
        ("Complete AV block", ["3AVB"]),
        ("Possible left ventricular hypertrophy", ["LVH"]),
    ],
)
def test_mimic_statements(statement: str, codes: list[str | None]) -> None:
    labels = mimic_report_labels([statement])
    assert [label.code for label in labels] == codes
    assert all(label.source_code == statement and label.vocabulary == "mimic_report" for label in labels)
