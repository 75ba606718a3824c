"""Where tables live: `<lake>/<table_name>`, for a local folder or an object-store URI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

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


# delta-rs / object_store option names (any case) -> pyarrow S3FileSystem arguments
_S3_OPTIONS = {
    "aws_access_key_id": "access_key",
    "access_key_id": "access_key",
    "aws_secret_access_key": "secret_key",
    "secret_access_key": "secret_key",
    "aws_session_token": "session_token",
    "aws_region": "region",
    "region": "region",
    "aws_endpoint_url": "endpoint_override",
    "aws_endpoint": "endpoint_override",
    "endpoint_url": "endpoint_override",
    "endpoint": "endpoint_override",
}


def filesystem(uri: str, options: dict[str, str] | None = None) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path) for a lake URI, configured with the SAME storage options as the Delta
    calls (``options``, default: RARE_ECG_STORAGE_OPTIONS), so Parquet part files land where delta-rs
    looks for them, with the same endpoint and credentials."""
    options = storage_options() if options is None else options
    if not uri.startswith(("s3://", "s3a://")) or not options:
        return pafs.FileSystem.from_uri(uri)
    kwargs: dict[str, Any] = {}
    for key, value in options.items():
        target = _S3_OPTIONS.get(key.lower())
        if target is not None:
            kwargs[target] = value
    if options.get("AWS_ALLOW_HTTP", options.get("allow_http", "")).lower() == "true":
        kwargs["scheme"] = "http"
    endpoint = kwargs.get("endpoint_override")
    if isinstance(endpoint, str) and "://" in endpoint:
        scheme, _, rest = endpoint.partition("://")
        kwargs["scheme"], kwargs["endpoint_override"] = scheme, rest
    path = uri.split("://", 1)[1]
    return pafs.S3FileSystem(**kwargs), path


def content_id(lake: str | Path, versions: dict[str, int]) -> str:
    """A digest of the data files that pinned table versions hold: a commit that adds no data (a re-run of
    an idempotent ingest) moves a version number but keeps this id, so jobs keyed on it do not redo work."""
    import hashlib
    import json

    from deltalake import DeltaTable

    digest = hashlib.sha256()
    for table in sorted(versions):
        uri = table_uri(lake, table)
        dt = DeltaTable(uri, versions[table], storage_options())
        files = sorted(f.removeprefix(uri) for f in dt.file_uris())
        digest.update(json.dumps([table, files]).encode())
    return digest.hexdigest()[:16]
