"""Process-level setup shared by the CLI verbs: logging and joining (or starting) Ray."""

from __future__ import annotations

import logging
import os

from rare_ecg.config import Settings


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("ray", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def init_ray(settings: Settings) -> None:
    """Join RAY_ADDRESS when set; otherwise start a private local Ray (never someone else's cluster)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
