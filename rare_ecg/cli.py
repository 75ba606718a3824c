"""The `rare-ecg` command line: one verb per job, each a thin layer over the library.

Every verb reads defaults from a YAML config and the environment, and exits non-zero with a one-line
reason on bad input. Long work reports progress on stderr; the last stdout line is a JSON summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from rare_ecg.config import LAYOUTS, IngestConfig, Settings, load_yaml
from rare_ecg.runtime import validation_message
from rare_ecg.synth.cli import synth_command

app = typer.Typer(
    name="rare-ecg",
    help="Find rare cardiac anomalies in large 12-lead ECG archives: ingest, train, score, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


app.command("synth")(synth_command)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line reason and return the Exit to raise."""
    typer.echo(f"rare-ecg: error: {message}", err=True)
    return typer.Exit(code)


def build_config(
    model: type[IngestConfig], config_file: Path | None, overrides: dict[str, Any]
) -> IngestConfig:
    data = load_yaml(config_file) if config_file is not None else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return model(**data)


class _Progress:
    """Throttled progress lines on stderr: done/total, rate, ETA."""

    def __init__(self, every_s: float = 2.0) -> None:
        self.every_s = every_s
        self.last = 0.0

    def __call__(self, done: int, total: int, seconds: float) -> None:
        now = time.monotonic()
        if done < total and now - self.last < self.every_s:
            return
        self.last = now
        rate = done / seconds if seconds > 0 else 0.0
        eta = (total - done) / rate if rate > 0 else float("nan")
        typer.echo(f"ingest: {done}/{total} records ({rate:.0f}/s, eta {eta:.0f}s)", err=True)


@app.command()
def ingest(
    archive: Annotated[Path | None, typer.Option(help="archive root (default: the built-in example)")] = None,
    layout: Annotated[str | None, typer.Option(help=f"archive layout: {'|'.join(LAYOUTS)}")] = None,
    lake: Annotated[
        str | None, typer.Option(help="lake folder or URI (default: $RARE_ECG_LAKE or ./lake)")
    ] = None,
    fs: Annotated[
        int | None, typer.Option("--fs", help="native rate to read where an archive has several")
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="run id (re-using one makes the run a no-op)")] = None,
    source: Annotated[
        str | None,
        typer.Option(help="the archive's name in the lake (default: the layout); record ids derive from it"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML job config (flags override it)")] = None,
    model_fs: Annotated[
        int | None, typer.Option("--model-fs", help="model rate of ecg_waveforms: 100|500")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="records per worker batch")] = None,
    workers: Annotated[int | None, typer.Option(help="worker actors (default: one per CPU)")] = None,
) -> None:
    """Ingest an ECG archive into the lake's Delta tables (ecg_records, ecg_labels, ecg_waveforms, ...)."""
    from rare_ecg.runtime import setup_logging

    setup_logging()
    settings = Settings()
    try:
        cfg = build_config(
            IngestConfig,
            config,
            {
                "archive": archive,
                "layout": layout,
                "lake": lake,
                "fs_hz": fs,
                "run_id": run_id,
                "source": source,
                "model_fs_hz": model_fs,
                "batch_size": batch_size,
                "workers": workers,
            },
        )
    except ValidationError as err:
        raise fail(validation_message(err)) from None
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    from rare_ecg.ingest.job import run_ingest_job

    try:  # Ray starts once the archive is listed (a bad archive fails before it)
        summary = run_ingest_job(cfg, settings, progress=_Progress())
    except (FileNotFoundError, NotADirectoryError, ValueError) as err:
        raise fail(str(err)) from None
    _print_summary(summary)


def _print_summary(summary: dict[str, Any]) -> None:
    typer.echo(
        f"ingest {summary['run_id']}: {summary['records_in']} records in, {summary['ingested']} ingested, "
        f"{summary['rejected']} rejected {summary['rejects_by_reason']}, "
        f"{summary['skipped_existing']} already in the lake; {summary['labels']} labels "
        f"({sum(summary['unmapped_labels'].values())} unmapped), {summary['annotations']} annotations; "
        f"{summary['seconds']:.1f} s, {summary['records_per_s']:.0f} records/s",
        err=True,
    )
    typer.echo(json.dumps(summary, default=str))


@app.command()
def pretrain(
    lake: Annotated[
        str | None, typer.Option(help="lake folder or URI (default: $RARE_ECG_LAKE or ./lake)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML job config (flags override it)")] = None,
    run_name: Annotated[
        str | None, typer.Option(help="the same name again resumes from the last checkpoint")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="epochs over the training split")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers")] = None,
    cpus_per_worker: Annotated[float | None, typer.Option(help="CPUs each worker reserves")] = None,
    storage_path: Annotated[
        str | None, typer.Option(help="where Ray Train keeps checkpoints (default ./train-runs)")
    ] = None,
    normal_only: Annotated[
        bool | None,
        typer.Option(
            "--normal-only/--all-records",
            help="train on the training split's NORM-labelled records only (validation keeps all)",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Ray's own INFO logs")] = False,
) -> None:
    """Self-supervised pretraining (stage 1) on Ray Train from the lake; registers rare-ecg-encoder."""
    import logging

    from rare_ecg.config import PretrainConfig
    from rare_ecg.runtime import setup_logging

    setup_logging(verbose)
    if verbose:
        logging.getLogger("ray").setLevel(logging.INFO)
    overrides = {
        "lake": lake,
        "run_name": run_name,
        "epochs": epochs,
        "workers": workers,
        "cpus_per_worker": cpus_per_worker,
        "storage_path": storage_path,
        "normal_only": normal_only,
    }
    try:
        data = load_yaml(config) if config is not None else {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        cfg = PretrainConfig(**data)
    except ValidationError as err:
        raise fail(validation_message(err)) from None
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    from rare_ecg.train.job import run_pretrain_job
    from rare_ecg.train.progress import print_epoch, summary_line

    settings = Settings()
    try:  # Ray starts once the lake passes every check (a bad one fails before it)
        summary = run_pretrain_job(cfg, settings, on_epoch=print_epoch)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(summary_line(summary), err=True)
    typer.echo(json.dumps(summary, default=str))


def main() -> None:
    """The console entry point: an unexpected failure is one line on stderr and exit 1 (bad input is
    exit 2, from each verb); RARE_ECG_DEBUG=1 shows the traceback instead."""
    try:
        sys.exit(app())
    except Exception as err:
        if os.environ.get("RARE_ECG_DEBUG"):
            raise
        message = " ".join(str(err).split()) or "no detail"
        typer.echo(
            f"rare-ecg: error: {type(err).__name__}: {message[:500]} (RARE_ECG_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(1)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="everything the demo makes goes under this folder")] = Path(
        "demo-run"
    ),
    verbose: Annotated[bool, typer.Option("--verbose", help="show Ray's and MLflow's own logs")] = False,
) -> None:
    """Run the pipeline end to end on embedded defaults, keeping everything under WORKDIR."""
    from rare_ecg.demo import run_demo
    from rare_ecg.runtime import init_ray, setup_logging

    setup_logging(verbose)
    init_ray(Settings())
    try:
        summary = run_demo(workdir)
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(json.dumps(summary, default=str))


def _job_config(model: type[Any], config_file: Path | None, overrides: dict[str, Any]) -> Any:
    """A strict job config from a YAML file and flags, or the one-line error (exit 2)."""
    try:
        data = load_yaml(config_file) if config_file is not None else {}
        data.update({k: v for k, v in overrides.items() if v is not None})
        return model(**data)
    except ValidationError as err:
        raise fail(validation_message(err)) from None
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None


def _quiet_logging(verbose: bool) -> None:
    from rare_ecg.runtime import setup_logging

    setup_logging(verbose)


@app.command()
def export(
    model: Annotated[
        str | None, typer.Option(help="models:/rare-ecg-classifier@<alias> or models:/<name>/<version>")
    ] = None,
    int8: Annotated[
        bool | None, typer.Option("--int8", help="quantise; kept only if the validation gate accepts it")
    ] = None,
    lake: Annotated[str | None, typer.Option(help="lake whose validation split gates int8")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML job config (flags override it)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show library INFO logs")] = False,
) -> None:
    """Export a registered classifier version to ONNX in MLflow, linked to the version (tags)."""
    from rare_ecg.config import ExportConfig

    _quiet_logging(verbose)
    cfg = _job_config(ExportConfig, config, {"model": model, "int8": int8, "lake": lake})
    from rare_ecg.scoring.job import run_export_job

    try:
        summary = run_export_job(cfg, Settings())
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(
        f"export: {summary['model_name']} version {summary['model_version']} -> {summary['onnx_uri']} "
        f"({summary['precision']})",
        err=True,
    )
    typer.echo(json.dumps(summary, default=str))


@app.command()
def score(
    lake: Annotated[
        str | None, typer.Option(help="lake folder or URI (default: $RARE_ECG_LAKE or ./lake)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="default models:/rare-ecg-classifier@champion")] = None,
    cohort: Annotated[
        str | None,
        typer.Option(help="all | source=A,B;from=YYYY-MM-DD;to=YYYY-MM-DD;patients=K1,K2|@FILE;split=S"),
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="run id (re-using one makes the run a no-op)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML job config (flags override it)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="windows per ONNX Runtime call")] = None,
    actors: Annotated[int | None, typer.Option(help="scoring actors (default: one per CPU)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Ray's own INFO logs")] = False,
) -> None:
    """Score a cohort of the lake into ecg_scores, patient_findings and subgroup_metrics."""
    from rare_ecg.config import ScoreConfig

    _quiet_logging(verbose)
    cfg = _job_config(
        ScoreConfig,
        config,
        {
            "lake": lake,
            "model": model,
            "cohort": cohort,
            "run_id": run_id,
            "batch_size": batch_size,
            "actors": actors,
        },
    )
    from rare_ecg.runtime import init_ray
    from rare_ecg.scoring.job import run_score_job

    settings = Settings()
    last = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        if done == total or seconds - last[0] >= 2.0:
            last[0] = seconds
            typer.echo(f"score: {done}/{total} records ({done / max(seconds, 1e-9):.0f}/s)", err=True)

    try:
        summary = run_score_job(cfg, settings, progress=progress, start_ray=lambda: init_ray(settings))
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(
        f"score {summary['run_id']}: {summary['model_name']} v{summary['model_version']} "
        f"({summary['precision']}), cohort {summary['cohort']}: {summary['scored']} scored, "
        f"{summary['skipped']} skipped {summary['skipped_by_reason']}, {summary['already_scored']} already "
        f"scored; {summary['flagged_records']} flagged, {summary['new_findings']} new findings; "
        f"{summary['ecg_per_s']:.0f} ECG/s",
        err=True,
    )
    typer.echo(json.dumps(summary, default=str))


@app.command()
def finetune(
    lake: Annotated[
        str | None, typer.Option(help="lake folder or URI (default: $RARE_ECG_LAKE or ./lake)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML job config (flags override it)")] = None,
    encoder: Annotated[
        str | None,
        typer.Option(help="models:/rare-ecg-encoder/<version> or @<alias> (default: the latest version)"),
    ] = None,
    from_scratch: Annotated[
        bool | None, typer.Option("--from-scratch", help="random weights: the baseline")
    ] = None,
    loss: Annotated[str | None, typer.Option(help="asl (default) or bce")] = None,
    run_name: Annotated[
        str | None, typer.Option(help="the same name again resumes from the last checkpoint")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="epochs over the training split")] = None,
    workers: Annotated[int | None, typer.Option(help="Ray Train workers")] = None,
    cpus_per_worker: Annotated[float | None, typer.Option(help="CPUs each worker reserves")] = None,
    storage_path: Annotated[
        str | None, typer.Option(help="where Ray Train keeps checkpoints (default ./train-runs)")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show Ray's own INFO logs")] = False,
) -> None:
    """Fine-tuning (stage 2) on Ray Train; registers rare-ecg-classifier with alias challenger."""
    from rare_ecg.config import FinetuneConfig

    _quiet_logging(verbose)
    if verbose:
        import logging

        logging.getLogger("ray").setLevel(logging.INFO)
    overrides = {
        "lake": lake,
        "encoder": encoder,
        "from_scratch": from_scratch,
        "loss": loss,
        "run_name": run_name,
        "epochs": epochs,
        "workers": workers,
        "cpus_per_worker": cpus_per_worker,
        "storage_path": storage_path,
    }
    cfg = _job_config(FinetuneConfig, config, overrides)
    from rare_ecg.train.finetune import epoch_line, run_finetune_job, summary_line

    settings = Settings()
    try:  # Ray starts once the lake and the encoder pass every check (bad input fails before it)
        summary = run_finetune_job(cfg, settings, on_epoch=lambda m: typer.echo(epoch_line(m), err=True))
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    typer.echo(summary_line(summary), err=True)
    typer.echo(json.dumps(summary, default=str))


@app.command()
def evaluate(
    lake: Annotated[
        str | None, typer.Option(help="lake folder or URI (default: $RARE_ECG_LAKE or ./lake)")
    ] = None,
    model: Annotated[str | None, typer.Option(help="default models:/rare-ecg-classifier@challenger")] = None,
    split: Annotated[str | None, typer.Option(help="train | validation | test (default test)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML job config (flags override it)")] = None,
    n_boot: Annotated[int | None, typer.Option(help="patient-bootstrap resamples for the CIs")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="show library INFO logs")] = False,
) -> None:
    """Evaluate a registered classifier on a split: subgroup_metrics rows, MLflow metrics, a table."""
    from rare_ecg.config import EvaluateConfig

    _quiet_logging(verbose)
    cfg = _job_config(
        EvaluateConfig, config, {"lake": lake, "model": model, "split": split, "n_boot": n_boot}
    )
    from rare_ecg.evaluation.job import run_evaluate_job, table_lines

    try:
        summary = run_evaluate_job(cfg, Settings())
    except (FileNotFoundError, ValueError) as err:
        raise fail(str(err)) from None
    for line in table_lines(summary):
        typer.echo(line, err=True)
    typer.echo(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
