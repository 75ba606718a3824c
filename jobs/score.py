"""Score a cohort of the lake: `python -m jobs.score --config jobs/configs/score.yaml` (as schedulers run it).

The same job as `rare-ecg score`: both build a ScoreConfig and call rare_ecg.scoring.job.run_score_job.
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from rare_ecg.config import ScoreConfig, Settings
from rare_ecg.runtime import init_ray, job_main
from rare_ecg.scoring.job import run_score_job


class ScoreJob(ScoreConfig):
    KIND: ClassVar[str] = "score"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        settings = settings or Settings()
        # Ray starts only once the inputs are known to be good: bad input fails first, and fast
        return run_score_job(self, settings, start_ray=lambda: init_ray(settings))


def main(argv: list[str] | None = None) -> int:
    return job_main(ScoreJob, "python -m jobs.score", __doc__ or "", argv)


if __name__ == "__main__":
    sys.exit(main())
