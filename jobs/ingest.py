"""Ingest an ECG archive into the lake: `python -m jobs.ingest --config jobs/configs/ingest.yaml`.

The job composes the library (no logic of its own): the validated config, a private local Ray (or
RAY_ADDRESS), the ingest run; the JSON summary is the last stdout line, bad input one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from rare_ecg.config import IngestConfig, Settings, load_yaml
from rare_ecg.ingest.job import run_ingest_job
from rare_ecg.runtime import init_ray, setup_logging

DEFAULT_CONFIG = Path(__file__).resolve().parent / "configs" / "ingest.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="YAML ingest config")
    args = parser.parse_args(argv)
    try:
        cfg = IngestConfig(**load_yaml(args.config))
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        print(f"rare-ecg: error: {args.config}: {where}: {first['msg']}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"rare-ecg: error: {err}", file=sys.stderr)
        return 2
    setup_logging()
    settings = Settings()
    try:
        init_ray(settings)
        summary = run_ingest_job(cfg, settings)
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"rare-ecg: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
