"""`rare-ecg demo` (what `make demo` runs) end to end, twice: the second run adds nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[1]


def demo(workdir: Path) -> dict:
    env = {**os.environ, "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    env.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-m", "rare_ecg.cli", "demo", "--workdir", str(workdir)],
        capture_output=True, text=True, timeout=500, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(900)
def test_demo_runs_twice_under_its_workdir_without_needing_shared_data(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    first = demo(workdir)
    assert first["ingest_example"]["ingested"] == 20
    assert first["ingest_synthetic"]["ingested"] == first["synthetic_records"] > 0
    assert first["tables"]["ecg_rejects"] == 0
    assert first["tables"]["ecg_annotations"] == first["ingest_synthetic"]["annotations"] > 0
    assert first["tables"]["ecg_records"] == 20 + first["synthetic_records"]
    records = pl.read_delta(str(workdir / "lake" / "ecg_records"))
    assert records.height == first["tables"]["ecg_records"] == records["record_id"].n_unique()
    assert sorted(records.group_by("source").len().rows()) == [
        ("ptbxl", 20),
        ("synthetic", first["synthetic_records"]),
    ]
    assert sorted(p.name for p in workdir.iterdir()) == [
        "lake",
        "mlartifacts",
        "mlflow.db",
        "synthetic-archive",
        "train-runs",
    ]
    encoder = first["encoder"]
    assert encoder["model_uri"] == f"models:/rare-ecg-encoder/{encoder['model_version']}"
    assert encoder["epochs"] == 3 and encoder["final"]["train_total"] > 0

    second = demo(workdir)
    assert second["tables"] == first["tables"]
    assert second["ingest_synthetic"]["skipped_existing"] == first["synthetic_records"]
    # same lake content (re-ingesting added no rows), same config: the run is found done, nothing added
    same = ("model_uri", "model_version", "run_id", "run_name", "epochs", "final")
    assert {k: second["encoder"][k] for k in same} == {k: first["encoder"][k] for k in same}
    # stage 2: the classifier registered @challenger, evaluated once on the test split
    assert first["classifier"]["model_uri"].startswith("models:/rare-ecg-classifier/")
    assert first["classifier"]["alias"] == "challenger"
    evaluation = first["evaluation"]
    assert evaluation["committed"] is True and evaluation["records"] > 0
    assert "rare_auroc" in evaluation and "common_auroc" in evaluation
    assert evaluation["largest_subgroup_gap"] is None or evaluation["largest_subgroup_gap"]["n"] > 0
    metrics = pl.read_delta(str(workdir / "lake" / "subgroup_metrics"))
    auroc = metrics.filter(pl.col("metric") == "auroc")
    for kind in ("overall", "sex", "age_band"):
        assert {"all", "rare", "common"} <= set(auroc.filter(pl.col("group_kind") == kind)["label_set"])
    assert second["classifier"] == first["classifier"]
    assert second["evaluation"]["committed"] is False
    # scoring: every usable record scored once by the classifier's version; a re-run scores nothing new
    scoring = first["scoring"]
    assert scoring["model_version"] == first["classifier"]["model_version"]
    assert scoring["scored"] + scoring["skipped"] == first["tables"]["ecg_records"]
    assert scoring["scored"] > 0 and scoring["ecg_per_s"] > 0
    scores = pl.read_delta(str(workdir / "lake" / "ecg_scores"))
    assert scores.height == scoring["scored"] == scores["record_id"].n_unique()
    findings = pl.read_delta(str(workdir / "lake" / "patient_findings"))
    assert findings.height >= scoring["patients_with_findings"]
    assert second["scoring"]["scored"] == 0 and second["scoring"]["already_scored"] == scoring["scored"]
    assert pl.read_delta(str(workdir / "lake" / "ecg_scores")).height == scores.height
