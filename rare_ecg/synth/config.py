"""The synthetic cohort job's configuration: one strict, frozen model, validated with clear messages."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator, model_validator

from rare_ecg.synth.calibration import SEXES
from rare_ecg.synth.labels import CATALOGUE

SUPPORTED_RATES_HZ = (100, 500)
LAYOUTS = ("ptbxl", "mimic")


class SynthConfig(BaseModel):
    """``rare-ecg synth`` / ``generate_archive``.

    fs_hz: 500 writes PTB-XL's records500 and records100 (the 100 Hz copy decimated from the same
    500 Hz signal); 100 writes records100 only and leaves filename_hr empty (ingest it with --fs 100).
    The MIMIC-IV-ECG layout stores 500 Hz only.
    prevalence: target frequency per SCP code, one number or one per sex
    ({"WPW": 0.02} or {"LNGQT": {"female": 0.03, "male": 0.01}}); other labels keep PTB-XL's.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    out: Path
    patients: int
    seed: int = 0
    fs_hz: int = 500
    layout: str = "ptbxl"
    workers: int = 1
    preview: bool = False
    preview_per_label: int = 2
    prevalence: dict[str, float | dict[str, float]] = {}
    patients_per_task: int = 32

    @field_validator("patients")
    @classmethod
    def _patients(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"patients={v}: a cohort needs at least 1 patient")
        return v

    @field_validator("seed")
    @classmethod
    def _seed(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"seed={v}: seeds are non-negative integers")
        return v

    @field_validator("fs_hz")
    @classmethod
    def _rate(cls, v: int) -> int:
        if v not in SUPPORTED_RATES_HZ:
            raise ValueError(
                f"fs={v} Hz is not a rate the generator writes; choose one of {list(SUPPORTED_RATES_HZ)}"
            )
        return v

    @field_validator("layout")
    @classmethod
    def _layout(cls, v: str) -> str:
        if v not in LAYOUTS:
            raise ValueError(f"layout={v!r} is not supported; choose one of {list(LAYOUTS)}")
        return v

    @field_validator("workers", "patients_per_task", "preview_per_label")
    @classmethod
    def _positive(cls, v: int, info: ValidationInfo) -> int:
        if v < 1:
            raise ValueError(f"{info.field_name}={v}: must be at least 1")
        return v

    @field_validator("prevalence")
    @classmethod
    def _prevalence(cls, v: dict[str, float | dict[str, float]]) -> dict[str, float | dict[str, float]]:
        for code, target in v.items():
            if code not in CATALOGUE:
                raise ValueError(
                    f"unknown label {code!r} in prevalence; expected SCP-ECG codes such as {list(CATALOGUE)[:8]}"
                )
            per_sex = target if isinstance(target, dict) else {"all": target}
            for sex, p in per_sex.items():
                if sex != "all" and sex not in SEXES:
                    raise ValueError(f"prevalence of {code}: sex {sex!r} is not one of {list(SEXES)}")
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"prevalence of {code} = {p}: a frequency must lie in [0, 1]")
        return v

    @model_validator(mode="after")
    def _layout_rate(self) -> SynthConfig:
        if self.layout == "mimic" and self.fs_hz != 500:
            raise ValueError(
                f"fs={self.fs_hz} Hz with layout 'mimic': MIMIC-IV-ECG stores 500 Hz records only"
            )
        return self


def error_message(exc: ValidationError) -> str:
    """The first problem of a ValidationError as one line (what the CLI prints)."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "value_error":  # our validators name the value and what is accepted
        return message
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {message} (got {first.get('input')!r})"
