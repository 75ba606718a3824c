"""Builders of fixture archives from the real PTB-XL sample (../shared/data/ptbxl-sample), for the reader
tests and the ingestion pipeline tests.

- make_mimic_fixture: real 500 Hz PTB-XL records laid out as MIMIC-IV-ECG, tables in MIMIC's columns.
- make_challenge_fixture: Challenge 2020/2021 ``.hea`` + ``.mat`` records, SNOMED ``#Dx`` lines.
- make_wfdb_fixture: a plain WFDB folder with odd lead sets, units, rates and a format-212 record.
- make_bad_inputs: one record of each kind of bad input for a layout, and what must happen to it.

Each builder writes into ``dst`` (created if needed) and returns what the tests assert on.
"""

from __future__ import annotations

import ast
import csv
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from scipy.io import savemat
from scipy.signal import resample_poly

from rare_ecg.archive.fields import FLAG_IMPLAUSIBLE_AGE
from rare_ecg.archive.labels import snomed_to_scp
from rare_ecg.archive.record import (
    INVALID_ADC,
    REASON_BAD_HEADER,
    REASON_BAD_LEADS,
    REASON_BAD_LENGTH,
    REASON_BAD_RATE,
    REASON_DUPLICATE,
    REASON_MISSING_FILE,
    REASON_TRUNCATED_SIGNAL,
)
from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.signals.preprocess import FLAG_FLAT_LEAD, FLAG_NAN_SAMPLES

SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ptbxl-sample"
PTBXL_GAIN = 1000.0  # PTB-XL's ADC units per mV
MIMIC_LEAD_ORDER = ("I", "II", "III", "aVR", "aVF", "aVL", "V1", "V2", "V3", "V4", "V5", "V6")
UNMAPPED_SNOMED = "39732003"  # left axis deviation: a real Challenge code without an SCP statement
UNKNOWN_SNOMED = "999999999"  # in no table at all


@dataclass(frozen=True)
class FixtureRecord:
    """A good fixture record and what reading it must give."""

    source_path: str
    ecg_id: int  # the PTB-XL record its signal comes from
    fs_hz: float
    n_samples: int
    lead_names: tuple[str, ...]
    codes: frozenset[str]  # canonical SCP codes its labels must carry
    unmapped: tuple[str, ...]  # source codes that must be kept with code None
    age: float | None
    sex: str | None


@dataclass(frozen=True)
class BadInput:
    """One bad input: where it is and what must become of it.

    ``reason``: the ecg_rejects reason it must end with (None: it is kept). ``raised_by_reader``: True when
    ``reader.read`` itself raises RecordError(reason); False when the reader reads it and the pipeline
    decides (duplicates by checksum) or flags it (``flag``: NaN and flat leads from preprocessing,
    implausible ages from the reader). ``unmapped_label``: a source code that must be kept with code None.
    """

    source_path: str
    what: str
    reason: str | None = None
    flag: str | None = None
    raised_by_reader: bool = False
    duplicate_of: str | None = None
    unmapped_label: str | None = None


# ---------------------------------------------------------------- the real sample


def _sample(sample: Path | None) -> Path:
    path = sample or SAMPLE
    if not (path / "ptbxl_database.csv").exists():
        raise FileNotFoundError(f"the PTB-XL sample is not at {path}")
    return path


def ptbxl_rows(sample: Path | None = None) -> list[dict[str, str]]:
    with open(_sample(sample) / "ptbxl_database.csv", newline="") as f:
        return list(csv.DictReader(f))


def ptbxl_frames(row: dict[str, str], sample: Path | None = None, fs_hz: int = 500) -> np.ndarray:
    """(n_samples, 12) int16 frames of a PTB-XL record, leads in PTB-XL's (canonical) order."""
    name = row["filename_hr"] if fs_hz == 500 else row["filename_lr"]
    data = (_sample(sample) / f"{name}.dat").read_bytes()
    return np.frombuffer(data, "<i2").reshape(-1, 12).copy()


def scp_codes(row: dict[str, str]) -> dict[str, float]:
    value = ast.literal_eval(row["scp_codes"])
    assert isinstance(value, dict)
    return value


def ptbxl_sex(row: dict[str, str]) -> str | None:
    return {"0": "male", "1": "female"}.get(row["sex"].split(".")[0])


# ---------------------------------------------------------------- writing WFDB records


def write_record(
    folder: Path,
    name: str,
    frames: np.ndarray,
    fs_hz: float,
    leads: list[str] | tuple[str, ...],
    *,
    container: str = "dat",
    gains: list[float] | None = None,
    units: str | list[str] = "mV",
    comments: tuple[str, ...] = (),
    base: str = "",
    n_sig_declared: int | None = None,
    mat_version: str = "4",
) -> None:
    """Write ``name.hea`` and ``name.dat`` (format 16) or ``name.mat`` (Challenge: format 16x1+24, MATLAB
    ``val`` of n_sig x n_samples) from (n_samples, n_sig) int16 frames. ``n_sig_declared`` writes a
    different signal count on the record line (a broken header)."""
    folder.mkdir(parents=True, exist_ok=True)
    n_samples, n_sig = frames.shape
    frames = frames.astype(np.int16)
    gains = gains or [PTBXL_GAIN] * n_sig
    unit_list = [units] * n_sig if isinstance(units, str) else units
    if container == "mat":
        file_name, fmt = f"{name}.mat", "16x1+24"
        savemat(folder / file_name, {"val": np.ascontiguousarray(frames.T)}, format=mat_version)
    else:
        file_name, fmt = f"{name}.dat", "16"
        (folder / file_name).write_bytes(frames.astype("<i2").tobytes())
    declared = n_sig if n_sig_declared is None else n_sig_declared
    lines = [f"{name} {declared} {fs_hz:g} {n_samples}{' ' + base if base else ''}"]
    for i in range(n_sig):
        first = int(frames[0, i]) if n_samples else 0
        checksum = int(np.int16(frames[:, i].astype(np.int64).sum() & 0xFFFF))
        lines.append(f"{file_name} {fmt} {gains[i]:g}(0)/{unit_list[i]} 16 0 {first} {checksum} 0 {leads[i]}")
    lines.extend(f"#{c}" for c in comments)
    (folder / f"{name}.hea").write_text("\n".join(lines) + "\n")


def _copy_record(src_folder: Path, name: str, dst_folder: Path) -> None:
    """A byte-identical copy of a record under another folder (a duplicate with the same checksum)."""
    dst_folder.mkdir(parents=True, exist_ok=True)
    for file in src_folder.iterdir():
        if file.stem == name:
            shutil.copyfile(file, dst_folder / file.name)


# ---------------------------------------------------------------- label helpers


def mimic_statement_for(code: str) -> str | None:
    """A machine statement the MIMIC rules map to exactly this one SCP code (the rule's example)."""
    table = (files("rare_ecg") / "resources" / "labels" / "mimic_report_rules.csv").read_text()
    for row in csv.DictReader(table.splitlines()):
        if row["scp_code"].split() == [code]:
            return row["example"]
    return None


def snomed_for(code: str) -> str | None:
    """The first SNOMED CT code that maps to exactly this one SCP code."""
    return next((s for s, scp in snomed_to_scp().items() if scp == (code,)), None)


# ---------------------------------------------------------------- MIMIC-IV-ECG


def make_mimic_fixture(dst: Path, n: int = 8, sample: Path | None = None) -> list[FixtureRecord]:
    """Real 500 Hz PTB-XL records (ecg_id 1..n) in MIMIC-IV-ECG's folders and lead order, with
    record_list.csv, machine_measurements.csv (MIMIC's 33 columns) and a MIMIC-IV hosp patients.csv.

    Two consecutive records share a subject. The last subject has no patients row (age and sex None).
    The first record's header writes its gains in uV (1 adu/uV = 1000 adu/mV); the second has no P wave
    (sentinel 29999 onsets: no pr_ms). Statements are the MIMIC rules' examples for the record's SCP
    codes, plus 'Abnormal ECG' on records without NORM (kept unmapped).
    """
    rows = ptbxl_rows(sample)[:n]
    records: list[FixtureRecord] = []
    record_list, measurements, patients = [], [], {}
    order = [CANONICAL_LEADS.index(lead) for lead in MIMIC_LEAD_ORDER]
    subjects = sorted({10000032 + i // 2 for i in range(len(rows))})
    for i, row in enumerate(rows):
        subject, study = 10000032 + i // 2, 40000000 + 1117 * (i + 1)
        year = 2180 + i
        ecg_time = f"{year}-07-23 08:44:00"
        path = f"files/p{str(subject)[:4]}/p{subject}/s{study}/{study}"
        frames = ptbxl_frames(row, sample)[:, order]
        uv = i == 0
        write_record(
            dst / Path(path).parent,
            str(study),
            frames,
            500,
            MIMIC_LEAD_ORDER,
            gains=[1.0 if uv else PTBXL_GAIN] * 12,
            units="uV" if uv else "mV",
            base=f"08:44:00 23/07/{year}",
        )
        codes = [c for c in scp_codes(row) if mimic_statement_for(c)]
        statements = [s for c in codes if (s := mimic_statement_for(c))]
        unmapped = () if "NORM" in scp_codes(row) else ("Abnormal ECG",)
        reports = statements + list(unmapped)
        p_onset = "29999" if i == 1 else "40"
        measurements.append(
            {
                "subject_id": subject, "study_id": study, "cart_id": 6848296, "ecg_time": ecg_time,
                **{f"report_{k}": (reports[k] if k < len(reports) else "") for k in range(18)},
                "bandwidth": "0.005-150 Hz", "filtering": "60 Hz notch Baseline filter",
                "rr_interval": 600 + 10 * i, "p_onset": p_onset, "p_end": "29999" if i == 1 else "128",
                "qrs_onset": 170, "qrs_end": 258, "t_end": 518, "p_axis": 81, "qrs_axis": 77, "t_axis": 79,
            }
        )  # fmt: skip
        record_list.append(
            {"subject_id": subject, "study_id": study, "file_name": study, "ecg_time": ecg_time, "path": path}
        )
        has_patient = subject != subjects[-1] or len(subjects) == 1
        age: float | None = None
        sex: str | None = None
        if has_patient:
            if subject not in patients:
                anchor_age = min(int(float(row["age"])), 89)
                patients[subject] = {
                    "subject_id": subject, "gender": "F" if row["sex"].startswith("1") else "M",
                    "anchor_age": anchor_age, "anchor_year": year,
                    "anchor_year_group": "2017 - 2019", "dod": "",
                }  # fmt: skip
            patient = patients[subject]
            age = float(int(patient["anchor_age"]) + year - int(patient["anchor_year"]))
            sex = "female" if patient["gender"] == "F" else "male"
        records.append(
            FixtureRecord(
                path, int(row["ecg_id"]), 500.0, 5000, MIMIC_LEAD_ORDER, frozenset(codes), unmapped, age, sex
            )
        )
    _write_csv(dst / "record_list.csv", record_list)
    _write_csv(dst / "machine_measurements.csv", measurements)
    _write_csv(dst / "patients.csv", list(patients.values()))
    return records


def _write_csv(path: Path, rows: Sequence[Mapping[str, object]], columns: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns or list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


# ---------------------------------------------------------------- Challenge 2020/2021


def make_challenge_fixture(dst: Path, n: int = 6, sample: Path | None = None) -> list[FixtureRecord]:
    """n real 500 Hz PTB-XL records as Challenge ``g1/HRnnnnn.{hea,mat}`` (the Challenge's own naming of
    PTB-XL), ``#Dx`` with the SNOMED codes of their SCP codes; plus two records at other rates:
    ``g2/S0001`` (257 Hz, 30 s, like the INCART excerpts) and ``g2/Q0001`` (1000 Hz, 5 s, in a MAT v5
    file). The first record also carries an unmapped code (left axis deviation) and an unknown one; the
    second has ``#Age: NaN``; odd records write the unit ``mv`` in lower case and sex as M/F."""
    rows = ptbxl_rows(sample)[:n]
    records: list[FixtureRecord] = []
    for i, row in enumerate(rows):
        name = f"HR{int(row['ecg_id']):05d}"
        codes = [c for c in scp_codes(row) if snomed_for(c)]
        dx = [s for c in codes if (s := snomed_for(c))]
        unmapped: tuple[str, ...] = (UNMAPPED_SNOMED, UNKNOWN_SNOMED) if i == 0 else ()
        sex = ptbxl_sex(row)
        sex_text = {"male": "Male", "female": "Female"}[sex or "male"]
        if i % 2:
            sex_text = sex_text[0]
        age_text = "NaN" if i == 1 else str(int(float(row["age"])))
        comments: tuple[str, ...] = (f"Age: {age_text}", f"Sex: {sex_text}", f"Dx: {','.join(dx + list(unmapped))}",
                    "Rx: Unknown", "Hx: Unknown", "Sx: Unknown")  # fmt: skip
        write_record(
            dst / "g1", name, ptbxl_frames(row, sample), 500, CANONICAL_LEADS,
            container="mat", units="mv" if i % 2 else "mV", comments=comments,
        )  # fmt: skip
        age = None if i == 1 else float(int(float(row["age"])))
        records.append(
            FixtureRecord(f"g1/{name}", int(row["ecg_id"]), 500.0, 5000, CANONICAL_LEADS, frozenset(codes),
                          unmapped, age, sex)
        )  # fmt: skip
    row = rows[0]
    frames = ptbxl_frames(row, sample)
    slow = np.round(resample_poly(frames.astype(np.float64), 257, 500, axis=0)).astype(np.int16)
    slow = np.tile(slow, (3, 1))  # 30 s at 257 Hz
    comments = ("Age: 61", "Sex: Male", f"Dx: {snomed_for('SR')}")
    write_record(dst / "g2", "S0001", slow, 257, CANONICAL_LEADS, container="mat", comments=comments)
    records.append(
        FixtureRecord("g2/S0001", int(row["ecg_id"]), 257.0, slow.shape[0], CANONICAL_LEADS, frozenset({"SR"}),
                      (), 61.0, "male")
    )  # fmt: skip
    fast = np.repeat(frames[:2500], 2, axis=0)  # 5 s at 1000 Hz
    comments = ("Age: 70", "Sex: Female", f"Dx: {snomed_for('AFIB')}")
    write_record(dst / "g2", "Q0001", fast, 1000, CANONICAL_LEADS, container="mat", comments=comments,
                 mat_version="5")  # fmt: skip
    records.append(
        FixtureRecord("g2/Q0001", int(row["ecg_id"]), 1000.0, 5000, CANONICAL_LEADS, frozenset({"AFIB"}), (),
                      70.0, "female")
    )  # fmt: skip
    return records


# ---------------------------------------------------------------- plain WFDB


def make_wfdb_fixture(dst: Path, n: int = 3, sample: Path | None = None) -> list[FixtureRecord]:
    """A plain WFDB folder: n real 500 Hz PTB-XL records under ``ptb/`` (the first with ``# Age`` and
    ``# Sex`` comments, the others without demographics), and under ``odd/``: ``limb6`` (the six limb
    leads, written AVR/AVL/AVF), ``mixed`` (MLII, V1 in uV and a respiration channel in NU: one standard
    lead), ``r250`` (250 Hz, 20 s, format 212 through wfdb.wrsamp, with invalid samples)."""
    import wfdb

    rows = ptbxl_rows(sample)[: max(n, 1)]
    records: list[FixtureRecord] = []
    for i, row in enumerate(rows[:n]):
        name = f"rec{i:03d}"
        comments = (" Age: 47", " Sex: F") if i == 0 else ()
        write_record(dst / "ptb", name, ptbxl_frames(row, sample), 500, CANONICAL_LEADS, comments=comments)
        records.append(
            FixtureRecord(f"ptb/{name}", int(row["ecg_id"]), 500.0, 5000, CANONICAL_LEADS, frozenset(), (),
                          47.0 if i == 0 else None, "female" if i == 0 else None)
        )  # fmt: skip
    frames = ptbxl_frames(rows[0], sample)
    limb_names = ("I", "II", "III", "AVR", "AVL", "AVF")
    write_record(dst / "odd", "limb6", frames[:, :6], 500, limb_names)
    records.append(
        FixtureRecord("odd/limb6", int(rows[0]["ecg_id"]), 500.0, 5000, CANONICAL_LEADS[:6], frozenset(), (),
                      None, None)
    )  # fmt: skip
    resp = (np.sin(np.arange(5000) / 200.0) * 1000).astype(np.int16)
    mixed = np.stack([frames[:, 1], frames[:, 6], resp], axis=1)
    write_record(
        dst / "odd", "mixed", mixed, 500, ["MLII", "V1", "RESP"], gains=[PTBXL_GAIN, 1.0, 100.0],
        units=["mV", "uV", "NU"],
    )  # fmt: skip
    records.append(
        FixtureRecord("odd/mixed", int(rows[0]["ecg_id"]), 500.0, 5000, ("MLII", "V1", "RESP"), frozenset(), (),
                      None, None)
    )  # fmt: skip
    slow = resample_poly(frames.astype(np.float64), 1, 2, axis=0)  # 250 Hz, 10 s
    d212 = np.clip(np.round(np.tile(slow, (2, 1)) / 5.0), -2047, 2047).astype(np.int64)  # 200 adu/mV
    d212[100:110, 2] = -2048  # format 212's invalid-sample marker
    (dst / "odd").mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        "r250", fs=250, units=["mV"] * 12, sig_name=list(CANONICAL_LEADS), d_signal=d212, fmt=["212"] * 12,
        adc_gain=[200.0] * 12, baseline=[0] * 12, write_dir=str(dst / "odd"),
    )  # fmt: skip
    records.append(
        FixtureRecord(
            "odd/r250", int(rows[0]["ecg_id"]), 250.0, 5000, CANONICAL_LEADS, frozenset(), (), None, None
        )
    )
    return records


# ---------------------------------------------------------------- bad inputs

BAD_KINDS = (
    "good", "truncated_signal", "missing_signal", "missing_record", "unparsable_header", "wrong_lead_count",
    "no_standard_leads", "unusable_rate", "too_short", "nan_lead", "flat_lead", "implausible_age",
    "unknown_label", "duplicate",
)  # fmt: skip
_FOLDER_LAYOUTS = ("challenge", "wfdb")


def make_bad_inputs(
    dst: Path, layout: str, *, fs_hz: int = 100, sample: Path | None = None
) -> dict[str, BadInput]:
    """An archive in ``layout`` (ptbxl | mimic | challenge | wfdb) with one record of each bad kind in
    BAD_KINDS, plus one good record (also the original of the duplicate). Returns {kind: BadInput}; every
    record of the archive is in it, so records in = len(result). ``missing_record`` (an index row whose
    files are all absent) exists only for the indexed layouts (ptbxl, mimic). For ptbxl every record is
    written at both rates; source paths are those of ``fs_hz``."""
    if layout not in ("ptbxl", "mimic", *_FOLDER_LAYOUTS):
        raise ValueError(f"unknown layout {layout!r}")
    rows = ptbxl_rows(sample)
    rates = (100, 500) if layout == "ptbxl" else (500,)
    out: dict[str, BadInput] = {}
    index_rows: list[dict[str, object]] = []
    for k, kind in enumerate(BAD_KINDS):
        if kind == "missing_record" and layout in _FOLDER_LAYOUTS:
            continue
        row = rows[k]
        entry_paths: dict[int, str] = {}
        for rate in rates:
            folder, name, source_path = _bad_location(layout, kind, k, rate)
            entry_paths[rate] = source_path
            _write_bad(dst, layout, kind, folder, name, rate, ptbxl_frames(row, sample, rate))
        chosen = entry_paths[fs_hz if layout == "ptbxl" else 500]
        out[kind] = _expectation(kind, chosen, layout, out)
        index_rows.append({"kind": kind, "k": k, "paths": entry_paths, "row": row})
    if layout == "ptbxl":
        _write_ptbxl_index(dst, index_rows)
    elif layout == "mimic":
        _write_mimic_index(dst, index_rows)
    return out


def _bad_location(layout: str, kind: str, k: int, rate: int) -> tuple[str, str, str]:
    """(folder relative to root, record name, source path) of a bad-input record."""
    if layout == "ptbxl":
        suffix = "lr" if rate == 100 else "hr"
        name = f"{9000 + k:05d}_{suffix}"
        if kind == "duplicate":
            name = f"{9000 + BAD_KINDS.index('good'):05d}_{suffix}"
        folder = f"records{rate}/{'dup' if kind == 'duplicate' else 'bad'}"
    elif layout == "mimic":
        subject, study = 19000000 + k, 59000000 + k
        name = str(59000000 + BAD_KINDS.index("good")) if kind == "duplicate" else str(study)
        folder = f"files/p{str(subject)[:4]}/p{subject}/s{study}"
    else:
        good = BAD_KINDS.index("good")
        name = f"G{good:04d}" if kind == "duplicate" else f"{'G' if kind == 'good' else 'B'}{k:04d}"
        folder = "dup" if kind == "duplicate" else "bad"
    return folder, name, f"{folder}/{name}"


def _write_bad(
    dst: Path, layout: str, kind: str, folder: str, name: str, fs_hz: int, frames: np.ndarray
) -> None:
    where = dst / folder
    container = "mat" if layout == "challenge" else "dat"
    ext = f".{container}"
    comments: tuple[str, ...] = ()
    if layout in _FOLDER_LAYOUTS:
        age = {"implausible_age": "150"}.get(kind, "60")
        dx = UNKNOWN_SNOMED if kind == "unknown_label" else "426783006"
        comments = (f"Age: {age}", "Sex: Female", f"Dx: {dx}")
    leads = list(CANONICAL_LEADS)
    if kind == "missing_record":
        return
    if kind == "duplicate":
        good = dst / _bad_location(layout, "good", BAD_KINDS.index("good"), fs_hz)[0]
        _copy_record(good, name, where)
        return
    if kind == "unparsable_header":
        write_record(where, name, frames, fs_hz, leads, container=container, comments=comments)
        (where / f"{name}.hea").write_text("this is not a WFDB header\n")
        return
    if kind == "wrong_lead_count":
        if container == "mat":
            write_record(where, name, frames, fs_hz, leads, container=container, comments=comments)
            savemat(where / f"{name}.mat", {"val": np.ascontiguousarray(frames[:, :11].T)}, format="4")
        else:
            write_record(where, name, frames[:, :11], fs_hz, leads[:11], comments=comments, n_sig_declared=12)
        return
    if kind == "no_standard_leads":
        leads = [f"X{i + 1}" for i in range(12)]
    elif kind == "unusable_rate":
        fs_hz = 10
        frames = frames[:100]
    elif kind == "too_short":
        frames = frames[: fs_hz // 2]
    elif kind == "nan_lead":
        frames[:, 3] = INVALID_ADC
    elif kind == "flat_lead":
        frames[:, 5] = 7
    write_record(where, name, frames, fs_hz, leads, container=container, comments=comments)
    if kind == "truncated_signal":
        data = (where / f"{name}{ext}").read_bytes()
        (where / f"{name}{ext}").write_bytes(data[: len(data) // 2])
    elif kind == "missing_signal":
        (where / f"{name}{ext}").unlink()


def _expectation(kind: str, source_path: str, layout: str, out: dict[str, BadInput]) -> BadInput:
    reader_reasons = {
        "truncated_signal": (REASON_TRUNCATED_SIGNAL, "signal file cut to half its length"),
        "missing_signal": (REASON_MISSING_FILE, "header present, signal file absent"),
        "missing_record": (REASON_MISSING_FILE, "index row whose header and signal files are absent"),
        "unparsable_header": (REASON_BAD_HEADER, "header text that is not WFDB"),
        "wrong_lead_count": (REASON_BAD_LEADS, "header declares 12 signals, the file holds 11"),
        "no_standard_leads": (REASON_BAD_LEADS, "12 signals named X1..X12: no standard lead"),
        "unusable_rate": (REASON_BAD_RATE, "sampled at 10 Hz"),
        "too_short": (REASON_BAD_LENGTH, "0.5 s long"),
    }
    if kind in reader_reasons:
        reason, what = reader_reasons[kind]
        return BadInput(source_path, what, reason=reason, raised_by_reader=True)
    if kind == "nan_lead":
        return BadInput(source_path, "aVR entirely invalid samples (-32768)", flag=FLAG_NAN_SAMPLES)
    if kind == "flat_lead":
        return BadInput(source_path, "aVF constant", flag=FLAG_FLAT_LEAD)
    if kind == "implausible_age":
        return BadInput(source_path, "age 150", flag=FLAG_IMPLAUSIBLE_AGE)
    if kind == "unknown_label":
        code = {"ptbxl": "XYZ1", "mimic": "Totally unknown machine statement"}.get(layout, UNKNOWN_SNOMED)
        return BadInput(source_path, "a label code no vocabulary knows", unmapped_label=code)
    if kind == "duplicate":
        return BadInput(
            source_path, "byte-identical copy of the good record", reason=REASON_DUPLICATE,
            duplicate_of=out["good"].source_path,
        )  # fmt: skip
    return BadInput(source_path, "a good record")


def _write_ptbxl_index(dst: Path, entries: list[dict[str, object]]) -> None:
    columns = list(ptbxl_rows()[0])
    rows = []
    for entry in entries:
        kind, k, paths, src = entry["kind"], entry["k"], entry["paths"], entry["row"]
        assert isinstance(paths, dict) and isinstance(src, dict) and isinstance(k, int)
        row = dict(src)
        row.update(
            ecg_id=str(9000 + k), patient_id=f"{9000 + k}.0", filename_lr=paths[100], filename_hr=paths[500]
        )
        if kind == "implausible_age":
            row["age"] = "150.0"
        if kind == "unknown_label":
            row["scp_codes"] = "{'NORM': 100.0, 'XYZ1': 50.0}"
        rows.append(row)
    _write_csv(dst / "ptbxl_database.csv", rows, columns)
    shutil.copyfile(_sample(None) / "scp_statements.csv", dst / "scp_statements.csv")


def _write_mimic_index(dst: Path, entries: list[dict[str, object]]) -> None:
    record_list, measurements, patients = [], [], []
    for entry in entries:
        kind, k, paths = entry["kind"], entry["k"], entry["paths"]
        assert isinstance(paths, dict) and isinstance(k, int)
        subject, study = 19000000 + k, 59000000 + k
        ecg_time = "2150-01-01 10:00:00"
        record_list.append(
            {
                "subject_id": subject,
                "study_id": study,
                "file_name": study,
                "ecg_time": ecg_time,
                "path": paths[500],
            }
        )
        statement = "Totally unknown machine statement" if kind == "unknown_label" else "Sinus rhythm"
        measurements.append(
            {"subject_id": subject, "study_id": study, "cart_id": 1, "ecg_time": ecg_time, "report_0": statement,
             **{f"report_{i}": "" for i in range(1, 18)}, "bandwidth": "", "filtering": "", "rr_interval": 800,
             "p_onset": 40, "p_end": 128, "qrs_onset": 170, "qrs_end": 258, "t_end": 518, "p_axis": 60,
             "qrs_axis": 30, "t_axis": 40}
        )  # fmt: skip
        age = 150 if kind == "implausible_age" else 60
        patients.append(
            {"subject_id": subject, "gender": "F", "anchor_age": age, "anchor_year": 2150,
             "anchor_year_group": "2017 - 2019", "dod": ""}
        )  # fmt: skip
    _write_csv(dst / "record_list.csv", record_list)
    _write_csv(dst / "machine_measurements.csv", measurements)
    _write_csv(dst / "patients.csv", patients)


def ptbxl_subset(src: Path, dst: Path, ecg_ids: range) -> Path:
    """A PTB-XL archive holding only some records of the real sample (index rows and files)."""
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "scp_statements.csv", dst)
    with open(src / "ptbxl_database.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["ecg_id"]) in ecg_ids]
    with open(dst / "ptbxl_database.csv", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        for col in ("filename_lr", "filename_hr"):
            for ext in (".hea", ".dat"):
                target = dst / (r[col] + ext)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src / (r[col] + ext), target)
    return dst
