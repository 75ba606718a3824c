"""The canonical label vocabulary (PTB-XL's 71 SCP-ECG statements) and the maps onto it.

Every archive's labels become Label rows: ``code`` is the canonical SCP code, or None when the source
code has no SCP equivalent; ``source_code`` and ``vocabulary`` keep what the archive wrote, so unmapped
codes are counted, never dropped. The tables live in rare_ecg/resources/labels/ (see its README.md):
- ``scp_statements.csv``: the vocabulary (PTB-XL, CC BY 4.0);
- ``snomed_to_scp.csv``: the Challenge 2021 SNOMED CT codes, each with its SCP code(s) and why;
- ``mimic_report_rules.csv``: case-insensitive regular expressions over MIMIC-IV-ECG machine statements,
  first match wins.
In both maps ``scp_code`` may hold several codes separated by spaces (a statement such as
"Sinus rhythm with 1st degree A-V block" states two findings), or be empty (deliberately unmapped).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files

from rare_ecg.archive.record import Label

VOCAB_SCP = "scp"
VOCAB_SNOMED = "snomed"
VOCAB_MIMIC_REPORT = "mimic_report"


def _read_table(name: str) -> list[dict[str, str]]:
    text = (files("rare_ecg") / "resources" / "labels" / name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def scp_statements() -> dict[str, dict[str, str]]:
    """SCP code -> its row of scp_statements.csv (description, diagnostic_class, ...), in file order."""
    return {row[""]: row for row in _read_table("scp_statements.csv")}


def canonical_vocabulary() -> list[str]:
    """The 71 SCP-ECG statement codes every label maps onto, in scp_statements.csv order."""
    return list(scp_statements())


@cache
def snomed_to_scp() -> dict[str, tuple[str, ...]]:
    """SNOMED CT code -> SCP codes (empty tuple: known code without an SCP equivalent)."""
    return {row["snomed_code"]: tuple(row["scp_code"].split()) for row in _read_table("snomed_to_scp.csv")}


@cache
def mimic_report_rules() -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    return tuple(
        (re.compile(row["pattern"], re.IGNORECASE), tuple(row["scp_code"].split()))
        for row in _read_table("mimic_report_rules.csv")
    )


def scp_labels(codes: Mapping[str, float | None]) -> list[Label]:
    """PTB-XL's ``scp_codes`` {code: likelihood}: every code counts, likelihood 0 included."""
    vocabulary = scp_statements()
    return [
        Label(
            code=code if code in vocabulary else None, source_code=code, vocabulary=VOCAB_SCP, likelihood=lk
        )
        for code, lk in codes.items()
    ]


def snomed_labels(codes: Iterable[str]) -> list[Label]:
    """SNOMED CT codes (the Challenge's ``# Dx:`` line): one Label per SCP code they map to, or one
    unmapped Label (code None) for codes without an SCP equivalent and codes the table does not know."""
    table = snomed_to_scp()
    labels: list[Label] = []
    for code in codes:
        scp = table.get(code, ())
        labels.extend(Label(code=c, source_code=code, vocabulary=VOCAB_SNOMED) for c in scp)
        if not scp:
            labels.append(Label(code=None, source_code=code, vocabulary=VOCAB_SNOMED))
    return labels


def mimic_report_labels(statements: Iterable[str]) -> list[Label]:
    """MIMIC-IV-ECG machine statements: the first matching rule's SCP code(s), else one unmapped Label."""
    rules = mimic_report_rules()
    labels: list[Label] = []
    for statement in statements:
        scp = next((codes for pattern, codes in rules if pattern.search(statement)), ())
        labels.extend(Label(code=c, source_code=statement, vocabulary=VOCAB_MIMIC_REPORT) for c in scp)
        if not scp:
            labels.append(Label(code=None, source_code=statement, vocabulary=VOCAB_MIMIC_REPORT))
    return labels
