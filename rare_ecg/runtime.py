"""Process-level setup shared by the CLI verbs: logging and joining (or starting) Ray."""

from __future__ import annotations

import logging
import os
import warnings

from rare_ecg.config import Settings

_verbose = False
# Ray's own loggers: they set their level when ray is imported, so quieting them happens after that.
RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.air")


def setup_logging(verbose: bool = False) -> None:
    """Our INFO lines always; Ray's logs, progress logging and warnings only with ``verbose``."""
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if not verbose:
        for noisy in ("mlflow", "alembic", "onnxruntime", "onnx_ir", "onnxscript", "torch"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")  # mlflow sets its level when imported
        warnings.filterwarnings("ignore", module=r"ray(\..*)?")
        warnings.filterwarnings("ignore", module=r"(mlflow|torch\.onnx)(\..*)?")
        quiet_ray()


def quiet_ray() -> None:
    """Ray's loggers to ERROR and Ray Data's progress logging off, unless setup_logging(verbose=True):
    our own progress lines and summaries are what a user reads; failures still raise."""
    if _verbose:
        return
    import ray
    import ray.data

    for name in RAY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def init_ray(settings: Settings) -> None:
    """Join RAY_ADDRESS when set; otherwise start a private local Ray (never someone else's cluster)."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    level = logging.INFO if _verbose else logging.ERROR  # ray.init resets Ray's logger to this level
    if settings.ray_address:
        ray.init(address=settings.ray_address, log_to_driver=False, logging_level=level)
    else:
        ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=level)
    quiet_ray()
