"""``rare-ecg synth``: write a synthetic longitudinal cohort as a PTB-XL or MIMIC-IV-ECG archive.

Registered by rare_ecg/cli.py as ``app.command("synth")(synth_command)``. The last line of output is
the run's summary as one JSON object; bad options exit non-zero with a one-line reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from rare_ecg.synth.archive import generate_archive
from rare_ecg.synth.config import SynthConfig, error_message


def _prevalence(text: str | None) -> dict[str, float | dict[str, float]]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--prevalence {text!r} is not JSON ({exc.msg}); e.g. '{{\"WPW\": 0.02}}'") from None
    if not isinstance(value, dict):
        raise ValueError(f"--prevalence {text!r} must be a JSON object of label -> frequency")
    return value


def _fail(message: str) -> typer.Exit:
    """One line on stderr and exit code 2, as every rare-ecg verb (typer's boxed errors span lines)."""
    typer.echo(f"rare-ecg: error: {message}", err=True)
    return typer.Exit(2)


def synth_command(
    out: Annotated[Path, typer.Option("--out", help="Folder to write the archive into (new or empty).")],
    patients: Annotated[
        int, typer.Option("--patients", help="Number of patients (each has one or more ECGs).")
    ],
    seed: Annotated[
        int, typer.Option("--seed", help="Same seed and options give a byte-identical archive.")
    ] = 0,
    fs: Annotated[
        int, typer.Option("--fs", help="500: records500 and records100; 100: records100 only.")
    ] = 500,
    layout: Annotated[
        str, typer.Option("--layout", help="Archive layout: ptbxl or mimic (500 Hz).")
    ] = "ptbxl",
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes (the output does not depend on it).")
    ] = 1,
    preview: Annotated[
        bool, typer.Option("--preview", help="Also write PNGs of a few records per label to OUT/preview/.")
    ] = False,
    prevalence: Annotated[
        str | None,
        typer.Option("--prevalence", help="Target label frequencies as JSON, e.g. '{\"WPW\": 0.02}'."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an archive already in OUT.")
    ] = False,
) -> None:
    """Generate a synthetic 12-lead ECG cohort with rare anomalies and ground-truth masks."""
    try:
        config = SynthConfig(
            out=out,
            patients=patients,
            seed=seed,
            fs_hz=fs,
            layout=layout,
            workers=workers,
            preview=preview,
            prevalence=_prevalence(prevalence),
        )
    except ValidationError as exc:
        raise _fail(error_message(exc)) from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        summary = generate_archive(config, overwrite=overwrite)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    brief = {k: v for k, v in summary.items() if k not in ("label_frequency", "target_frequency", "previews")}
    typer.echo(json.dumps(brief, sort_keys=True))
