"""The evaluation tests use the fine-tuning tests' lake and classifier (tests/finetune/conftest.py)."""

from tests.finetune.conftest import folds_9_10_lake, ft_lake, trained

__all__ = ["folds_9_10_lake", "ft_lake", "trained"]
