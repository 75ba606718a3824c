"""Ingest an ECG archive into the lake: `python -m jobs.ingest --config jobs/configs/ingest.yaml`."""

from __future__ import annotations

import sys

from rare_ecg.cli import app

if __name__ == "__main__":
    sys.exit(app(["ingest", *sys.argv[1:]]))
