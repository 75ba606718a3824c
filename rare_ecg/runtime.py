"""Process-level setup shared by the CLI verbs and the jobs: logging, joining (or starting) Ray, and the
entry point of every `python -m jobs.<name>`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from rare_ecg.config import Settings, load_yaml

_verbose = False
# Ray's own loggers: they set their level when ray is imported, so quieting them happens after that.
RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune", "ray.air")


# glibc malloc: below this size memory comes from the heap, not a fresh mmap (32 MiB: glibc's ceiling),
# and freed heap memory is kept up to TRIM bytes instead of being handed back to the kernel at once
MALLOC_MMAP_THRESHOLD = 32 * 1024 * 1024
MALLOC_TRIM_THRESHOLD = 1024 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
_allocator_tuned: bool | None = None


def tune_allocator() -> bool:
    """Keep numpy's short-lived temporaries of a few MB in the process heap (glibc only; a no-op
    elsewhere). By default glibc maps every large array fresh and returns it on free, so each batch
    of signal filtering pays the kernel's page faults again: on the 2-core machine of
    benchmarks/README.md that was a fifth of an ingest worker's time. Returns whether it took effect;
    idempotent, once per process."""
    global _allocator_tuned
    if _allocator_tuned is None:
        import ctypes

        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (AttributeError, OSError):
            _allocator_tuned = False
        else:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _allocator_tuned = bool(
                mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
                and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
            )
    return _allocator_tuned


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


def quiet_mlflow() -> None:
    """MLflow's own event prints ("Successfully registered model ...", "Created version ...") go to a
    stream of its own, not to a logger: silenced unless setup_logging(verbose=True). Errors still raise."""
    if _verbose:
        return
    from mlflow.utils.logging_utils import disable_logging

    disable_logging()


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


def cluster_cpus(settings: Settings) -> float:
    """The Ray cluster's CPUs, starting (or joining) Ray first when it is not running. Jobs call this
    after checking their inputs, so bad input fails at once instead of after Ray's start (~6 s here)."""
    import ray

    init_ray(settings)
    return float(ray.cluster_resources().get("CPU", 0.0))


class Job(Protocol):
    """A job config that runs itself (jobs/*.py): a strict frozen pydantic model with ``run()``."""

    def run(self, settings: Settings | None = None) -> dict[str, Any]: ...


def validation_message(err: ValidationError) -> str:
    """The first problem of a config, on one line: where, what, and the offending value."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    return f"{where}: {first['msg']} (got {first.get('input')!r})"


def job_main(
    job_type: Callable[..., Job],
    prog: str,
    description: str,
    argv: list[str] | None = None,
    default_config: Path | None = None,
) -> int:
    """The entry point of every `python -m jobs.<name> --config FILE` (and of `ray job submit`): bad input is
    one line on stderr and exit 2, any other failure one line and exit 1 (RARE_ECG_DEBUG=1: the
    traceback); the JSON summary is the last stdout line."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, default=default_config, required=default_config is None)
    parser.add_argument("--verbose", action="store_true", help="show Ray's, MLflow's and the exporter's logs")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        summary = job_type(**load_yaml(args.config)).run()
    except ValidationError as err:
        print(f"rare-ecg: error: {args.config}: {validation_message(err)}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        print(f"rare-ecg: error: {err}", file=sys.stderr)
        return 2
    except Exception as err:
        if os.environ.get("RARE_ECG_DEBUG"):
            raise
        print(f"rare-ecg: error: {type(err).__name__}: {' '.join(str(err).split())[:500]}", file=sys.stderr)
        return 1
    print(json.dumps(summary, default=str))
    return 0
