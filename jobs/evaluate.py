"""Evaluation of a registered classifier on one split: `python -m jobs.evaluate --config
jobs/configs/evaluate.yaml` (locally, or as the entrypoint of `ray job submit`)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from rare_ecg.config import EvaluateConfig, Settings
from rare_ecg.evaluation.job import run_evaluate_job, table_lines
from rare_ecg.runtime import job_main


class EvaluateJob(EvaluateConfig):
    KIND: ClassVar[str] = "evaluate"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        summary = run_evaluate_job(self, settings or Settings())
        print("\n".join(table_lines(summary)), file=sys.stderr)
        return summary


def main(argv: list[str] | None = None) -> int:
    return job_main(EvaluateJob, "python -m jobs.evaluate", __doc__ or "", argv)


if __name__ == "__main__":
    sys.exit(main())
