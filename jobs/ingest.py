"""Ingest an ECG archive into the lake: `python -m jobs.ingest --config jobs/configs/ingest.yaml`.

The job composes the library (no logic of its own): the validated config, a private local Ray (or
RAY_ADDRESS), the ingest run; the JSON summary is the last stdout line, bad input one line on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from rare_ecg.config import IngestConfig, Settings
from rare_ecg.ingest.job import run_ingest_job
from rare_ecg.runtime import job_main

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "ingest.yaml"


class IngestJob(IngestConfig):
    KIND: ClassVar[str] = "ingest"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        settings = settings or Settings()
        return run_ingest_job(self, settings)


def main(argv: list[str] | None = None) -> int:
    return job_main(IngestJob, "python -m jobs.ingest", (__doc__ or "").splitlines()[0], argv, DEFAULT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
