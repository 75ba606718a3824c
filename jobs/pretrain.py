"""Stage 1 pretraining on Ray Train: `python -m jobs.pretrain --config jobs/configs/pretrain.yaml`
(locally, or as the entrypoint of `ray job submit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from rare_ecg.config import PretrainConfig, Settings, load_yaml
from rare_ecg.runtime import init_ray, setup_logging
from rare_ecg.train.job import run_pretrain_job
from rare_ecg.train.progress import print_epoch, summary_line


class PretrainJob(PretrainConfig):
    KIND: ClassVar[str] = "pretrain"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        settings = settings or Settings()
        init_ray(settings)
        summary = run_pretrain_job(self, settings, on_epoch=print_epoch)
        print(summary_line(summary), file=sys.stderr)
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.pretrain", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="YAML job config")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own INFO logs")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        job = PretrainJob(**load_yaml(args.config))
        summary = job.run()
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
