"""Dropping known-irrelevant library warnings at the one call that raises them.

Global filters cannot do this for every library: MLflow's `log_model` resets UserWarnings to "once"
inside its own `catch_warnings` block, so a filter set at start-up never applies there. A
`showwarning` hook set around the call is kept by such blocks and drops the warning by its text.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


@contextmanager
def dropped_warnings(*fragments: str, loggers: tuple[str, ...] = ()) -> Iterator[None]:
    """Inside the block: drop warnings whose message contains any of ``fragments``, and raise the
    ``loggers`` to ERROR. Every other warning is shown as before; all of it is restored on exit."""
    with warnings.catch_warnings():
        shown = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> Any:
            if any(f in str(message) for f in fragments):
                return None
            return shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        levels = {name: logging.getLogger(name).level for name in loggers}
        for name in loggers:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)
