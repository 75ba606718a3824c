"""The demo's stage 2: fine-tune a classifier from the demo's encoder, then evaluate it on the test split.

Sized for a minute or two on 2 cores. The demo lake holds a few dozen patients, so no label is under the
paper's 1% prevalence: here "rare" means under 5% of the training records (said in the summary).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from rare_ecg.config import EvaluateConfig, FinetuneConfig, ScoreConfig, Settings

log = logging.getLogger(__name__)

DEMO_FINETUNE: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 16,
    "rare_threshold": 0.05,
    "min_common_positives": 3,
}
DEMO_N_BOOT = 100


def finetune_and_evaluate(lake: Path, workdir: Path, settings: Settings, encoder_uri: str) -> dict[str, Any]:
    from rare_ecg.evaluation.job import run_evaluate_job
    from rare_ecg.train.finetune import epoch_line, run_finetune_job

    ft = run_finetune_job(
        FinetuneConfig(
            lake=str(lake), storage_path=str(workdir / "train-runs"), encoder=encoder_uri, **DEMO_FINETUNE
        ),
        settings,
        on_epoch=lambda m: print(epoch_line(m), file=sys.stderr, flush=True),
    )
    ev = run_evaluate_job(EvaluateConfig(lake=str(lake), model=ft["model_uri"], n_boot=DEMO_N_BOOT), settings)
    gap = ev["largest_subgroup_gap"]
    log.info(
        "demo: test split (%d records): rare AUROC %s, common AUROC %s; largest subgroup gap %s",
        ev["records"],
        ev["macro_auroc"]["rare"],
        ev["macro_auroc"]["common"],
        f"{gap['group_kind']} {gap['label_set']} {gap['metric']} {gap['value']:.3f} (n={gap['n']})"
        if gap
        else None,
    )
    return {
        "classifier": {
            k: ft[k]
            for k in ("model_uri", "model_version", "alias", "run_id", "labels", "rare_labels", "best_epoch")
        },
        "evaluation": {
            "split": ev["split"],
            "records": ev["records"],
            "patients": ev["patients"],
            "rare_threshold": DEMO_FINETUNE["rare_threshold"],
            "rare_auroc": ev["macro_auroc"]["rare"],
            "common_auroc": ev["macro_auroc"]["common"],
            "all_auroc": ev["macro_auroc"]["all"],
            "largest_subgroup_gap": gap,
            "subgroup_metric_rows": ev["subgroup_metric_rows"],
            "committed": ev["committed"],
            "run_id": ev["run_id"],
        },
    }


def score_lake(lake: Path, settings: Settings, classifier_uri: str) -> dict[str, Any]:
    """Score every usable record of the demo lake with the classifier (exported to ONNX on first use):
    ecg_scores, patient_findings and subgroup_metrics for the run; re-running adds nothing."""
    from rare_ecg.scoring.job import run_score_job

    # the demo's classifier is a challenger (nobody promoted it): score with that exact version
    sc = run_score_job(ScoreConfig(lake=str(lake), model=classifier_uri, n_boot=DEMO_N_BOOT), settings)
    log.info(
        "demo: scored %d ECGs (%d skipped, %d already scored) at %.1f ECG/s; %d flagged, %d patients with "
        "findings (%d new)",
        sc["scored"],
        sc["skipped"],
        sc["already_scored"],
        sc["ecg_per_s"],
        sc["flagged_records"],
        sc["patients_with_findings"],
        sc["new_findings"],
    )
    keys = ("run_id", "model_version", "precision", "scored", "skipped", "skipped_by_reason")
    more = ("already_scored", "flagged_records", "patients_with_findings", "new_findings", "ecg_per_s")
    return {k: sc[k] for k in (*keys, *more)}
