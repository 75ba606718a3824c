"""The scoring pipeline on a real local Ray, real Delta tables and real ONNX Runtime: one commit per table
per run, idempotent re-runs, a run killed before its commit, an actor killed mid-run, skipped records."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from deltalake import DeltaTable

from rare_ecg.archive import example_archive_path
from rare_ecg.ingest.pipeline import IngestOptions, run_ingest
from rare_ecg.lake.schema import ECG_SCORES, PATIENT_FINDINGS, SCHEMAS, SUBGROUP_METRICS
from rare_ecg.scoring.cohort import parse_cohort
from rare_ecg.scoring.pipeline import ScoreOptions, ScoringModel, run_score

from .conftest import LABELS

pytestmark = [pytest.mark.timeout(300), pytest.mark.usefixtures("ray_session")]


def options(lake: Path, run_id: str, **kw: object) -> ScoreOptions:
    base = {"lake": str(lake), "run_id": run_id, "batch_size": 8, "actors": 1, "n_boot": 10}
    return ScoreOptions(**{**base, **kw})  # type: ignore[arg-type]


def copy_lake(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def scores(lake: Path) -> pl.DataFrame:
    return pl.read_delta(str(lake / ECG_SCORES))


def test_scores_every_record_once_and_reruns_add_nothing(
    example_lake: Path, scoring_model: ScoringModel, tmp_path: Path
) -> None:
    lake = copy_lake(example_lake, tmp_path / "lake")
    first = run_score(options(lake, "score-1"), scoring_model)
    assert (first.scored, first.skipped, first.cohort_records) == (20, 0, 20)
    assert first.committed_tables[0] == ECG_SCORES
    df = scores(lake)
    assert df.height == 20 and df["record_id"].n_unique() == 20
    assert set(df["model_version"]) == {"1"} and set(df["run_id"]) == {"score-1"}
    assert df.schema == pl.DataFrame(SCHEMAS[ECG_SCORES].empty_table()).schema  # the contract, read back
    assert df["label_probs"].list.len().to_list() == [len(LABELS)] * 20
    assert df["anomaly_map"].list.len().to_list() == [12 * scoring_model.cfg.map_segments] * 20
    predicted = [
        [label for label, p in zip(LABELS, probs, strict=True) if p >= 0.5] for probs in df["label_probs"]
    ]
    assert df["labels_predicted"].to_list() == predicted
    records = pl.read_delta(str(lake / "ecg_records")).select("record_id", "patient_key", "recorded_at")
    joined = df.select("record_id", "patient_key", "recorded_at").join(records, on="record_id", suffix="_r")
    assert joined["patient_key"].to_list() == joined["patient_key_r"].to_list()

    history = DeltaTable(str(lake / ECG_SCORES)).history()
    meta = history[0]
    assert meta["rare_ecg.model_version"] == "1" and json.loads(meta["rare_ecg.labels"]) == list(LABELS)
    assert json.loads(meta["rare_ecg.table_versions"])["ecg_records"] == 0

    findings = pl.read_delta(str(lake / PATIENT_FINDINGS))
    flagged = df.select("patient_key", "labels_predicted").explode("labels_predicted").drop_nulls().unique()
    assert findings.height == flagged.height  # one row per (patient, label) ever flagged
    metrics = pl.read_delta(str(lake / SUBGROUP_METRICS))
    assert first.subgroup_metric_rows == metrics.height > 0
    assert set(metrics["run_id"]) == {"score-1"} and "auroc" in set(metrics["metric"])

    versions = {
        t: DeltaTable(str(lake / t)).version() for t in (ECG_SCORES, PATIENT_FINDINGS, SUBGROUP_METRICS)
    }
    again = run_score(options(lake, "score-1"), scoring_model)
    assert again.already_committed and again.committed_tables == []
    fresh = run_score(options(lake, "score-2"), scoring_model)  # same cohort, same version, new run id
    assert (fresh.already_scored, fresh.scored, fresh.committed_tables) == (20, 0, [])
    assert {t: DeltaTable(str(lake / t)).version() for t in versions} == versions
    assert scores(lake).height == 20

    v2 = dataclasses.replace(scoring_model, version="2")
    other = run_score(options(lake, "score-3"), v2)
    assert other.scored == 20
    assert scores(lake).group_by("model_version").len().sort("model_version")["len"].to_list() == [20, 20]
    assert set(pl.read_delta(str(lake / PATIENT_FINDINGS))["model_version"]) == {"1", "2"}


class Killed(Exception):
    pass


def test_a_run_killed_before_its_commit_leaves_no_rows_and_its_retry_completes(
    example_lake: Path, scoring_model: ScoringModel, tmp_path: Path
) -> None:
    lake = copy_lake(example_lake, tmp_path / "lake")

    def kill(table: str) -> None:
        raise Killed(table)

    with pytest.raises(Killed):
        run_score(options(lake, "score-k"), scoring_model, before_commit=kill)
    assert not DeltaTable.is_deltatable(str(lake / ECG_SCORES))
    assert list((lake / ECG_SCORES).rglob("*.parquet"))  # orphans, invisible to every reader

    # the retry is killed in turn, between its scores commit and its findings commit
    def kill_findings(table: str) -> None:
        if table == PATIENT_FINDINGS:
            raise Killed(table)

    with pytest.raises(Killed):
        run_score(options(lake, "score-k"), scoring_model, before_commit=kill_findings)
    df = scores(lake)
    assert df.height == df["record_id"].n_unique() == 20
    assert not DeltaTable.is_deltatable(str(lake / PATIENT_FINDINGS))

    done = run_score(options(lake, "score-k"), scoring_model)  # finishes the other tables only
    assert done.already_committed and done.committed_tables == [PATIENT_FINDINGS, SUBGROUP_METRICS]
    assert scores(lake).height == 20


def test_an_actor_killed_mid_run_leaves_every_record_scored_exactly_once(
    example_lake: Path, scoring_model: ScoringModel, tmp_path: Path
) -> None:
    lake = copy_lake(example_lake, tmp_path / "lake")
    marker = tmp_path / "killed.json"

    def die_once(record_ids: list[str]) -> None:
        """Kill the actor's process the first time it has written a batch's files (before it returns).
        Defined here so that Ray pickles it by value (the test package is not importable on workers)."""
        if not marker.exists():
            marker.write_text(json.dumps(record_ids))
            os._exit(1)

    summary = run_score(options(lake, "score-a", batch_size=5), scoring_model, after_write=die_once)
    assert marker.exists()  # an actor did die after writing files
    killed_batch = json.loads(marker.read_text())
    df = scores(lake)
    assert summary.scored == 20
    assert df.height == 20 and df["record_id"].n_unique() == 20
    assert set(killed_batch) <= set(df["record_id"])  # its batch was scored again, once
    committed = {Path(p).name for p in DeltaTable(str(lake / ECG_SCORES)).file_uris()}
    on_disk = {p.name for p in (lake / ECG_SCORES).rglob("*.parquet")}
    assert committed < on_disk  # the dead attempt's files exist but are not in the log


def bad_archive(dst: Path) -> Path:
    """Four records of the example archive, two of them damaged in their WFDB signal files: one with
    invalid samples (NaN once read) on a lead, one with seven flat leads."""
    src = example_archive_path()
    dst.mkdir()
    for name in ("scp_statements.csv",):
        shutil.copy(src / name, dst)
    with open(src / "ptbxl_database.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if int(r["ecg_id"]) <= 4]
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
    for r, damage in zip(rows[:2], ("nan", "flat"), strict=True):
        for col in ("filename_lr", "filename_hr"):
            path = dst / (r[col] + ".dat")
            x = np.fromfile(path, dtype="<i2").reshape(-1, 12).copy()
            if damage == "nan":
                x[: len(x) // 3, 1] = -32768  # WFDB's invalid sample for format 16
            else:
                x[:, 5:] = 0
            x.tofile(path)
    return dst


def test_records_with_rejecting_quality_are_skipped_and_counted_never_scored(
    scoring_model: ScoringModel, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    archive = bad_archive(tmp_path / "archive")
    ingest = run_ingest(IngestOptions(archive=archive, layout="ptbxl", lake=str(lake), run_id="i", fs_hz=100))
    assert ingest.ingested == 4
    waves = pl.read_delta(str(lake / "ecg_waveforms")).sort("record_id")
    assert any("nan_samples" in f for f in waves["quality_flags"])
    summary = run_score(options(lake, "score-q", cohort=parse_cohort("all")), scoring_model)
    assert summary.skipped_by_reason == {"nan_samples": 1, "too_few_leads": 1}
    assert (summary.scored, summary.skipped) == (2, 2)
    good = waves.filter(
        ~pl.col("quality_flags").list.contains("nan_samples") & (pl.col("lead_mask").list.sum() >= 6)
    )
    assert sorted(scores(lake)["record_id"]) == sorted(good["record_id"])
    meta = DeltaTable(str(lake / ECG_SCORES)).history()[0]
    assert json.loads(meta["rare_ecg.skipped_by_reason"]) == {"nan_samples": 1, "too_few_leads": 1}
