"""Score a cohort of the lake: `python -m jobs.score --config jobs/configs/score.yaml` (as schedulers run it).

The same job as `rare-ecg score`: both build a ScoreConfig and call rare_ecg.scoring.job.run_score_job.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from rare_ecg.config import ScoreConfig, Settings, load_yaml
from rare_ecg.runtime import init_ray, setup_logging
from rare_ecg.scoring.job import run_score_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.score", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="YAML ScoreConfig")
    args = parser.parse_args(argv)
    setup_logging()
    settings = Settings()
    try:
        cfg = ScoreConfig(**load_yaml(args.config))
        summary = run_score_job(cfg, settings, start_ray=lambda: init_ray(settings))
    except ValidationError as err:
        first = err.errors()[0]
        print(f"rare-ecg: error: {'.'.join(map(str, first['loc']))}: {first['msg']}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as err:
        print(f"rare-ecg: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
