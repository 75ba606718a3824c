"""Stage 1 pretraining on Ray Train: `python -m jobs.pretrain --config jobs/configs/pretrain.yaml`
(locally, or as the entrypoint of `ray job submit`)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from rare_ecg.config import PretrainConfig, Settings
from rare_ecg.runtime import job_main
from rare_ecg.train.job import run_pretrain_job
from rare_ecg.train.progress import print_epoch, summary_line


class PretrainJob(PretrainConfig):
    KIND: ClassVar[str] = "pretrain"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        settings = settings or Settings()
        summary = run_pretrain_job(self, settings, on_epoch=print_epoch)
        print(summary_line(summary), file=sys.stderr)
        return summary


def main(argv: list[str] | None = None) -> int:
    return job_main(PretrainJob, "python -m jobs.pretrain", __doc__ or "", argv)


if __name__ == "__main__":
    sys.exit(main())
