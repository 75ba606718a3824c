"""dropped_warnings: a known-irrelevant warning is dropped even where the callee resets the filters."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import pytest

from rare_ecg.quiet import dropped_warnings


def _callee_resetting_filters() -> None:
    # what MLflow's log_model does around its body (mlflow.utils.annotations.filter_user_warnings_once)
    with warnings.catch_warnings():
        warnings.simplefilter("once", category=UserWarning)
        warnings.warn("Failed to infer signature from type hint: whatever", UserWarning, stacklevel=1)
        warnings.warn("something the user must see", UserWarning, stacklevel=1)
        logging.getLogger("noisy.lib").warning("a line nobody needs")
        logging.getLogger("other.lib").warning("a line that stays")


def test_drops_only_the_named_warning_and_logger_and_restores_both(caplog: pytest.LogCaptureFixture) -> None:
    shown: list[str] = []

    def record(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        shown.append(str(message))

    logging.getLogger("noisy.lib").setLevel(logging.INFO)
    with warnings.catch_warnings():  # whatever shows warnings here (pytest's own hook) stays out of it
        warnings.simplefilter("always")
        warnings.showwarning = record
        with caplog.at_level(logging.INFO), dropped_warnings("infer signature", loggers=("noisy.lib",)):
            _callee_resetting_filters()
        assert shown == ["something the user must see"]
        messages = [r.getMessage() for r in caplog.records]
        assert "a line that stays" in messages and "a line nobody needs" not in messages
        assert logging.getLogger("noisy.lib").level == logging.INFO  # restored
        assert warnings.showwarning is record  # restored

        shown.clear()
        _callee_resetting_filters()  # outside the block nothing is dropped
        assert shown == ["Failed to infer signature from type hint: whatever", "something the user must see"]
