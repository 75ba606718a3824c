"""Stage 2 fine-tuning on Ray Train: `python -m jobs.finetune --config jobs/configs/finetune.yaml`
(locally, or as the entrypoint of `ray job submit`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from rare_ecg.config import FinetuneConfig, Settings, load_yaml
from rare_ecg.runtime import init_ray, setup_logging
from rare_ecg.train.finetune import epoch_line, run_finetune_job, summary_line


class FinetuneJob(FinetuneConfig):
    KIND: ClassVar[str] = "finetune"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        settings = settings or Settings()
        init_ray(settings)
        summary = run_finetune_job(self, settings, on_epoch=lambda m: print(epoch_line(m), file=sys.stderr))
        print(summary_line(summary), file=sys.stderr)
        return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.finetune", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="YAML job config")
    parser.add_argument("--verbose", action="store_true", help="show Ray's own INFO logs")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        summary = FinetuneJob(**load_yaml(args.config)).run()
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
