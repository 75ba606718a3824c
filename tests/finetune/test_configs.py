"""The shipped job configs of fine-tuning and evaluation validate; bad ones fail with the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from jobs.evaluate import EvaluateJob
from jobs.finetune import FinetuneJob
from rare_ecg.config import load_yaml

CONFIGS = Path(__file__).resolve().parents[2] / "jobs" / "configs"


def test_shipped_configs_validate() -> None:
    ft = FinetuneJob(**load_yaml(CONFIGS / "finetune.yaml"))
    assert ft.loss == "asl" and (ft.gamma_neg, ft.gamma_pos, ft.clip) == (4.0, 1.0, 0.05)
    assert ft.alias == "challenger" and ft.from_scratch is False
    ev = EvaluateJob(**load_yaml(CONFIGS / "evaluate.yaml"))
    assert ev.split == "test" and ev.model == "models:/rare-ecg-classifier@challenger"


@pytest.mark.parametrize(
    ("job", "bad", "where"),
    [
        (FinetuneJob, {"epoch": 3}, "epoch"),
        (FinetuneJob, {"loss": "focal"}, "loss"),
        (FinetuneJob, {"rare_threshold": 1.5}, "rare_threshold"),
        (EvaluateJob, {"split": "holdout"}, "split"),
        (EvaluateJob, {"n_boot": 0}, "n_boot"),
    ],
)
def test_bad_configs_name_the_key(job: type, bad: dict, where: str) -> None:
    with pytest.raises(ValidationError) as err:
        job(**bad)
    assert err.value.errors()[0]["loc"][0] == where
