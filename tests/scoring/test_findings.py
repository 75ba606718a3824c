"""patient_findings on a hand-made patient history: serial comparison with the patient's previous ECG."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from rare_ecg.scoring.findings import patient_findings

LABELS = ("NORM", "AFIB", "WPW")


def row(record_id: str, patient: str | None, day: int | None, flagged: list[str]) -> dict:
    probs = [0.9 if label in flagged else 0.1 for label in LABELS]
    if "AFIB" in flagged:
        probs[1] = 0.5 + int(record_id[-1]) / 100  # a distinct score per record, to check which one is read
    return {
        "record_id": record_id,
        "patient_key": patient,
        "recorded_at": None if day is None else datetime(2020, 1, day),
        "labels_predicted": flagged,
        "label_probs": probs,
    }


def history() -> pl.DataFrame:
    rows = [
        # p1: AFIB appears at the third ECG; NORM until then. Rows out of date order on purpose.
        row("r3", "p1", 20, ["AFIB"]),
        row("r1", "p1", 1, ["NORM"]),
        row("r2", "p1", 10, ["NORM"]),
        # p2: AFIB in both of the last two ECGs (known, not new); WPW only in the first
        row("r4", "p2", 1, ["WPW"]),
        row("r5", "p2", 5, ["AFIB"]),
        row("r6", "p2", 9, ["AFIB"]),
        # p3: one ECG: nothing to compare with
        row("r7", "p3", 3, ["WPW"]),
        # p4: an undated ECG counts as the earliest; the dated one flags AFIB anew
        row("r9", "p4", 2, ["AFIB"]),
        row("r8", "p4", None, []),
        # no patient key: no history, no finding
        row("r0", None, 1, ["AFIB"]),
    ]
    return pl.DataFrame(
        rows,
        schema={
            "record_id": pl.String,
            "patient_key": pl.String,
            "recorded_at": pl.Datetime("us"),
            "labels_predicted": pl.List(pl.String),
            "label_probs": pl.List(pl.Float32),
        },
    )


def test_new_finding_compares_the_latest_ecg_with_the_one_before() -> None:
    out = patient_findings(history(), LABELS)
    got = {(r["patient_key"], r["label"]): r for r in out.iter_rows(named=True)}
    assert set(got) == {
        ("p1", "NORM"),
        ("p1", "AFIB"),
        ("p2", "WPW"),
        ("p2", "AFIB"),
        ("p3", "WPW"),
        ("p4", "AFIB"),
    }

    afib = got[("p1", "AFIB")]
    assert afib["new_finding"] is True
    assert (afib["first_flagged_record_id"], afib["n_flagged"], afib["n_scored"]) == ("r3", 1, 3)
    assert afib["first_flagged_at"] == datetime(2020, 1, 20)
    assert afib["latest_record_id"] == "r3"
    assert abs(afib["latest_score"] - 0.53) < 1e-6

    norm = got[("p1", "NORM")]  # flagged twice, gone in the latest ECG
    assert norm["new_finding"] is False
    assert (norm["first_flagged_record_id"], norm["n_flagged"]) == ("r1", 2)
    assert norm["first_flagged_at"] == datetime(2020, 1, 1)
    assert abs(norm["latest_score"] - 0.1) < 1e-6

    known = got[("p2", "AFIB")]  # flagged in the latest and in the one before: not new
    assert known["new_finding"] is False
    assert (known["first_flagged_record_id"], known["n_flagged"], known["latest_record_id"]) == (
        "r5",
        2,
        "r6",
    )
    assert abs(known["latest_score"] - 0.56) < 1e-6
    assert got[("p2", "WPW")]["new_finding"] is False

    assert got[("p3", "WPW")]["new_finding"] is None  # the patient's only ECG
    assert got[("p3", "WPW")]["n_scored"] == 1

    undated = got[("p4", "AFIB")]
    assert undated["new_finding"] is True and undated["latest_record_id"] == "r9"


def test_findings_do_not_depend_on_row_order_and_an_empty_history_gives_none() -> None:
    scores = history()
    a = patient_findings(scores, LABELS)
    b = patient_findings(scores.reverse(), LABELS)
    assert a.equals(b)
    assert patient_findings(scores.head(0), LABELS).is_empty()
