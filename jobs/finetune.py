"""Stage 2 fine-tuning on Ray Train: `python -m jobs.finetune --config jobs/configs/finetune.yaml`
(locally, or as the entrypoint of `ray job submit`)."""

from __future__ import annotations

import sys
from typing import Any, ClassVar

from rare_ecg.config import FinetuneConfig, Settings
from rare_ecg.runtime import job_main
from rare_ecg.train.finetune import epoch_line, run_finetune_job, summary_line


class FinetuneJob(FinetuneConfig):
    KIND: ClassVar[str] = "finetune"

    def run(self, settings: Settings | None = None) -> dict[str, Any]:
        settings = settings or Settings()
        summary = run_finetune_job(self, settings, on_epoch=lambda m: print(epoch_line(m), file=sys.stderr))
        print(summary_line(summary), file=sys.stderr)
        return summary


def main(argv: list[str] | None = None) -> int:
    return job_main(FinetuneJob, "python -m jobs.finetune", __doc__ or "", argv)


if __name__ == "__main__":
    sys.exit(main())
