"""Archives on disk: byte-identical per seed whatever the worker count, in PTB-XL's and MIMIC-IV-ECG's
real layouts, read back by the project's own archive readers with their labels and masks, and bad
configurations refused with a one-line reason."""

from __future__ import annotations

import ast
import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
import typer
from pydantic import ValidationError
from typer.testing import CliRunner

from rare_ecg.archive.mimic import MimicReader
from rare_ecg.archive.ptbxl import PtbxlReader
from rare_ecg.signals.leads import CANONICAL_LEADS
from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.cli import synth_command
from rare_ecg.synth.config import SynthConfig, error_message

PATIENTS = 14


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def ptbxl(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ptbxl")
    summary = generate_archive(SynthConfig(out=out / "a", patients=PATIENTS, seed=7, patients_per_task=4))
    return out / "a", summary


@pytest.mark.timeout(180)
def test_same_seed_same_bytes_whatever_the_workers(ptbxl: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = ptbxl
    generate_archive(
        SynthConfig(out=tmp_path / "b", patients=PATIENTS, seed=7, workers=2, patients_per_task=3)
    )
    generate_archive(SynthConfig(out=tmp_path / "c", patients=PATIENTS, seed=8, patients_per_task=4))
    reference = _digest(root)
    assert len(reference) > 4 * PATIENTS
    assert _digest(tmp_path / "b") == reference
    # another seed: other ECGs (every signal file differs), not merely another summary
    signals = {k: v for k, v in _digest(tmp_path / "c").items() if k.endswith(".dat")}
    reference_signals = {k: v for k, v in reference.items() if k.endswith(".dat")}
    assert signals and reference_signals
    assert not set(signals.values()) & set(reference_signals.values())


def test_ptbxl_layout_is_ptbxls(ptbxl: tuple[Path, dict], shared_data: Path) -> None:
    root, summary = ptbxl
    real_columns = _header(shared_data / "ptbxl-sample" / "ptbxl_database.csv")
    rows = _rows(root / "ptbxl_database.csv")
    assert list(rows[0]) == real_columns
    assert [int(r["ecg_id"]) for r in rows] == list(range(1, len(rows) + 1)) and len(rows) == summary[
        "records"
    ]
    assert (root / "scp_statements.csv").read_bytes() == (
        shared_data / "ptbxl-meta" / "scp_statements.csv"
    ).read_bytes()
    counts: Counter[str] = Counter()
    for r in rows:
        assert r["patient_id"].endswith(".0") and r["sex"] in ("0", "1") and 1 <= int(r["strat_fold"]) <= 10
        codes = ast.literal_eval(r["scp_codes"])
        counts.update(codes.keys())
        for column in ("filename_lr", "filename_hr"):
            assert (root / f"{r[column]}.hea").exists() and (root / f"{r[column]}.dat").exists()
    assert dict(counts) == summary["label_counts"]


def test_annotations_point_into_existing_records(ptbxl: tuple[Path, dict]) -> None:
    root, summary = ptbxl
    rows = _rows(root / "annotations.csv")
    assert len(rows) == summary["annotation_rows"] > 0
    labelled = {
        r["filename_lr"]: ast.literal_eval(r["scp_codes"]) for r in _rows(root / "ptbxl_database.csv")
    }
    labelled |= {
        r["filename_hr"]: ast.literal_eval(r["scp_codes"]) for r in _rows(root / "ptbxl_database.csv")
    }
    for r in rows:
        n = 5000 if r["source_path"].startswith("records500") else 1000
        assert 0 <= int(r["start_sample"]) < int(r["end_sample"]) <= n
        assert r["lead"] in CANONICAL_LEADS
        assert r["label"] in labelled[r["source_path"]]
    rates = {r["source_path"].split("/")[0] for r in rows}
    assert rates == {"records100", "records500"}


@pytest.mark.timeout(120)
def test_ptbxl_reader_takes_every_record(ptbxl: tuple[Path, dict]) -> None:
    root, summary = ptbxl
    database = {r["filename_lr"]: r for r in _rows(root / "ptbxl_database.csv")}
    annotations = Counter(r["source_path"] for r in _rows(root / "annotations.csv"))
    reader = PtbxlReader(root, fs_hz=100)
    refs = list(reader.list_refs())
    assert len(refs) == summary["records"]
    for ref in refs:
        record = reader.read(ref)
        row = database[ref.source_path]
        assert record.fs_hz == 100 and record.n_samples == 1000 and record.lead_names == list(CANONICAL_LEADS)
        assert {label.code for label in record.labels} == set(ast.literal_eval(row["scp_codes"]))
        assert record.age == float(row["age"]) and record.sex == ("female" if row["sex"] == "1" else "male")
        assert len(record.annotations) == annotations[ref.source_path]


@pytest.mark.timeout(120)
def test_mimic_layout_reads_back_with_the_same_labels(tmp_path: Path, shared_data: Path) -> None:
    summary = generate_archive(SynthConfig(out=tmp_path / "m", patients=10, seed=3, layout="mimic"))
    root = tmp_path / "m"
    layout = shared_data / "mimic-iv-ecg-layout"
    for name in ("record_list.csv", "machine_measurements.csv"):
        assert _header(root / name) == _header(layout / name)
    assert list(_rows(root / "patients.csv")[0]) == ["subject_id", "gender", "anchor_age", "anchor_year",
                                                      "anchor_year_group", "dod"]  # fmt: skip
    reader = MimicReader(root)
    records = [reader.read(ref) for ref in reader.list_refs()]
    assert len(records) == summary["records"]
    counts: Counter[str] = Counter()
    for record in records:
        assert record.fs_hz == 500 and record.n_samples == 5000 and record.sex in ("male", "female")
        assert record.age is not None and record.recorded_at is not None and record.recorded_at.year > 2100
        assert None not in {label.code for label in record.labels}
        counts.update(label.code for label in record.labels if label.code is not None)
        assert 30 <= record.measurements["hr_bpm"] <= 250 and record.measurements["qrs_ms"] >= 60
        assert all(a.end_sample <= 5000 for a in record.annotations)
    assert dict(counts) == summary["label_counts"]


def test_fs_100_writes_only_records100(tmp_path: Path) -> None:
    summary = generate_archive(SynthConfig(out=tmp_path / "lo", patients=3, seed=1, fs_hz=100))
    root = tmp_path / "lo"
    assert not (root / "records500").exists() and summary["rates_hz"] == [100]
    rows = _rows(root / "ptbxl_database.csv")
    assert all(r["filename_hr"] == "" and r["filename_lr"] for r in rows)
    assert all(r["source_path"].startswith("records100/") for r in _rows(root / "annotations.csv"))


def test_records100_are_the_same_at_either_rate(ptbxl: tuple[Path, dict], tmp_path: Path) -> None:
    root, _ = ptbxl
    generate_archive(SynthConfig(out=tmp_path / "lo", patients=PATIENTS, seed=7, fs_hz=100))
    hi = {k: v for k, v in _digest(root).items() if k.startswith("records100")}
    assert hi == {k: v for k, v in _digest(tmp_path / "lo").items() if k.startswith("records100")}


def test_preview_draws_each_label(tmp_path: Path) -> None:
    summary = generate_archive(
        SynthConfig(
            out=tmp_path / "p", patients=2, seed=2, preview=True, preview_per_label=1, prevalence={"WPW": 1.0}
        )
    )
    pngs = sorted((tmp_path / "p" / "preview").glob("*.png"))
    assert [p.name for p in pngs] == sorted(summary["previews"])
    assert any(p.name.startswith("WPW_") for p in pngs)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patients": 0}, "patients=0: a cohort needs at least 1 patient"),
        ({"fs_hz": 250}, "fs=250 Hz is not a rate the generator writes; choose one of [100, 500]"),
        ({"prevalence": {"XYZ": 0.1}}, "unknown label 'XYZ' in prevalence"),
        ({"prevalence": {"WPW": 1.5}}, "prevalence of WPW = 1.5: a frequency must lie in [0, 1]"),
        ({"layout": "mimic", "fs_hz": 100}, "MIMIC-IV-ECG stores 500 Hz records only"),
        ({"layout": "hl7"}, "layout='hl7' is not supported"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(options: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        SynthConfig(**{"out": tmp_path, "patients": 3, **options})
    assert message in error_message(info.value)
    assert "\n" not in error_message(info.value)


def test_refuses_to_write_into_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(ValueError, match="is not empty"):
        generate_archive(SynthConfig(out=tmp_path, patients=1))
    assert (tmp_path / "x.txt").read_text() == "keep me"


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("synth")(synth_command)
    app.command("other")(lambda: None)  # a second verb, so "synth" is a subcommand as in rare-ecg
    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--patients", "0"], "at least 1 patient"),
        (["--patients", "2", "--fs", "250"], "fs=250 Hz"),
        (["--patients", "2", "--prevalence", '{"XYZ": 0.1}'], "unknown label 'XYZ'"),
        (["--patients", "2", "--prevalence", "[1]"], "must be a JSON object"),
    ],
)
def test_cli_exits_non_zero_with_the_reason(args: list[str], message: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["synth", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rare-ecg: error: ") and message in lines[0], lines
    assert not (tmp_path / "o").exists()


def test_cli_writes_an_archive_and_prints_a_json_summary(tmp_path: Path) -> None:
    result = CliRunner().invoke(_cli(), ["synth", "--out", str(tmp_path / "o"), "--patients", "2", "--seed", "4",
                                         "--fs", "100"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["patients"] == 2 and summary["records"] >= 2 and summary["fs_hz"] == 100
    assert (tmp_path / "o" / "ptbxl_database.csv").exists()
