"""Evaluation of a registered classifier on one split: `python -m jobs.evaluate --config
jobs/configs/evaluate.yaml` (locally, or as the entrypoint of `ray job submit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from rare_ecg.config import EvaluateConfig, Settings, load_yaml
from rare_ecg.evaluation.job import run_evaluate_job, table_lines
from rare_ecg.runtime import setup_logging


class EvaluateJob(EvaluateConfig):
    KIND: ClassVar[str] = "evaluate"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        summary = run_evaluate_job(self, settings or Settings())
        print("\n".join(table_lines(summary)), file=sys.stderr)
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.evaluate", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="YAML job config")
    parser.add_argument("--verbose", action="store_true", help="show library INFO logs")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        summary = EvaluateJob(**load_yaml(args.config)).run()
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "config"
        print(f"rare-ecg: error: {where}: {first['msg']} (got {first.get('input')!r})", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"rare-ecg: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
