"""Cohort statistics the generator draws from, derived once from the real PTB-XL metadata table.

The shipped numbers (``ptbxl_calibration.json`` beside this module) come from PTB-XL v1.0.1's
``ptbxl_database.csv`` (21,837 ECGs of 18,885 patients; Wagner et al., PhysioNet 2020, CC BY 4.0),
regenerated with::

    python -m rare_ecg.synth.calibration /path/to/ptbxl_database.csv

What is kept: the age histogram per sex, the share of women, the number of ECGs per patient, and for
each sex x age-band stratum every distinct label combination with its count (so label frequencies,
their co-occurrence and their age/sex dependence are PTB-XL's). Each combination is first made
coherent by labels.resolve (one primary rhythm, SR where PTB-XL states none; no impossible pairs),
so the shipped frequencies are exactly the ones the generator targets. Product code reads only the
JSON; this module's derivation runs at development time.
"""

from __future__ import annotations

import ast
import csv
import json
import sys
from collections import Counter
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from rare_ecg.synth.labels import resolve

CALIBRATION_FILE = "ptbxl_calibration.json"
AGE_BANDS = ((0, 30), (30, 40), (40, 50), (50, 60), (60, 70), (70, 80), (80, 200))
SEXES = ("male", "female")
MAX_AGE = 95
MAX_VISITS = 10


def age_band(age: float) -> int:
    """Index into AGE_BANDS."""
    return next(i for i, (lo, hi) in enumerate(AGE_BANDS) if lo <= age < hi)


def derive_calibration(database_csv: Path) -> dict[str, Any]:
    with open(database_csv, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    age_hist = {sex: [0] * (MAX_AGE + 1) for sex in SEXES}
    combos: dict[tuple[str, int], Counter[str]] = {}
    per_patient: Counter[str] = Counter()
    for row in rows:
        per_patient[row["patient_id"]] += 1
        if not row["age"]:
            continue  # 89 ECGs without age: no stratum
        sex = SEXES[int(float(row["sex"]))]
        age = min(int(float(row["age"])), MAX_AGE)
        age_hist[sex][age] += 1
        codes = resolve(ast.literal_eval(row["scp_codes"]))
        key = "|".join(sorted(codes))
        combos.setdefault((sex, age_band(age)), Counter())[key] += 1
    visits = Counter(min(n, MAX_VISITS) for n in per_patient.values())
    n_female = sum(1 for row in rows if row["sex"] and int(float(row["sex"])) == 1)
    return {
        "source": "PTB-XL v1.0.1 ptbxl_database.csv (CC BY 4.0), derived by rare_ecg.synth.calibration",
        "n_records": len(rows),
        "female_fraction": round(n_female / len(rows), 4),
        "age_hist": age_hist,
        "visits_hist": [visits.get(k, 0) for k in range(1, MAX_VISITS + 1)],
        "age_bands": [list(b) for b in AGE_BANDS],
        "strata": [
            {
                "sex": sex,
                "band": band,
                "combos": dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))),
            }
            for (sex, band), counter in sorted(combos.items())
        ],
    }


@cache
def load_calibration() -> dict[str, Any]:
    text = (files("rare_ecg.synth") / CALIBRATION_FILE).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def label_prevalence(calibration: dict[str, Any] | None = None) -> dict[str, float]:
    """Fraction of the calibration's ECGs stating each label (the generator's targets)."""
    cal = calibration or load_calibration()
    counts: Counter[str] = Counter()
    total = 0
    for stratum in cal["strata"]:
        for key, n in stratum["combos"].items():
            counts.update({code: n for code in key.split("|")})
            total += n
    return {code: counts[code] / total for code in sorted(counts)}


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python -m rare_ecg.synth.calibration PATH/TO/ptbxl_database.csv")
    out = Path(__file__).with_name(CALIBRATION_FILE)
    out.write_text(
        json.dumps(derive_calibration(Path(argv[0])), separators=(",", ":")) + "\n", encoding="utf-8"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
