"""Where tables live: `<lake>/<table_name>`, for a local folder or an object-store URI."""

from __future__ import annotations

import json
import os
from pathlib import Path

STORAGE_OPTIONS_ENV = "RARE_ECG_STORAGE_OPTIONS"  # JSON object passed to delta-rs (S3 endpoint, ...)


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def normalize_lake(lake: str | Path) -> str:
    """An absolute local path, or the URI unchanged (s3://, gs://, az://...)."""
    text = str(lake)
    if is_remote(text):
        return text.rstrip("/")
    return str(Path(text.removeprefix("file://")).expanduser().resolve())


def table_uri(lake: str | Path, table_name: str) -> str:
    return f"{normalize_lake(lake)}/{table_name}"


def storage_options() -> dict[str, str] | None:
    """Object-store options from the environment (credentials stay there: never logged or stored)."""
    raw = os.environ.get(STORAGE_OPTIONS_ENV)
    if not raw:
        return None
    options = json.loads(raw)
    if not isinstance(options, dict):
        raise ValueError(f"{STORAGE_OPTIONS_ENV} must be a JSON object of strings")
    return {str(k): str(v) for k, v in options.items()}
