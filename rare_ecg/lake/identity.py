"""Stable identifiers and de-identification: record ids, keyed patient hashes, capped ages."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os

log = logging.getLogger(__name__)

SECRET_ENV = "RARE_ECG_PATIENT_KEY_SECRET"
# Documented default for local use only: patient keys made with it are linkable by anyone with the code.
LOCAL_DEFAULT_SECRET = "rare-ecg-local-development-only"
AGE_CAP_YEARS = 90.0
AGE_BANDS = ("<40", "40-59", "60-79", "80+")


def record_id(source: str, record_key: str) -> str:
    """Stable id of a record: derived from its archive's name and its key in the archive (its path, or
    an index id such as PTB-XL's ecg_id that names the ECG whatever rate is read), never its content."""
    return hashlib.sha256(f"{source}:{record_key}".encode()).hexdigest()[:32]


class Secret:
    """The patient-key HMAC key as it travels to workers: its repr never shows the value, so task
    arguments, logs and tracebacks do not leak it."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    def __reduce__(self) -> tuple[type[Secret], tuple[bytes]]:
        return (Secret, (self._value,))


def patient_secret(*, on_cluster: bool = False) -> Secret:
    """The HMAC key from the driver's environment, resolved once and handed to the workers (a worker on
    another node has its own environment, without it).

    Unset: on a cluster, a ValueError (patient keys made with the public default are linkable by anyone
    with the code); locally (the embedded demo), the documented default with a warning."""
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        if on_cluster:
            raise ValueError(
                f"{SECRET_ENV} is not set: on a Ray cluster set it in the driver's environment "
                "(it is passed to the workers, never logged); the built-in default is for local runs only"
            )
        log.warning("%s is not set: using the local-development default key for patient_key", SECRET_ENV)
        secret = LOCAL_DEFAULT_SECRET
    return Secret(secret.encode())


def patient_key(source: str, raw_patient_id: str | None, secret: bytes) -> str | None:
    """Keyed hash of a patient identifier: the raw id never reaches the lake."""
    if raw_patient_id is None or raw_patient_id == "":
        return None
    return hmac.new(secret, f"{source}:{raw_patient_id}".encode(), hashlib.sha256).hexdigest()[:32]


def cap_age(age_years: float | None) -> float | None:
    """Ages of 90 and over become 90 (de-identification, as HIPAA's safe harbour)."""
    if age_years is None:
        return None
    return min(float(age_years), AGE_CAP_YEARS)


def age_band(age_years: float | None) -> str | None:
    if age_years is None:
        return None
    if age_years < 40:
        return "<40"
    if age_years < 60:
        return "40-59"
    if age_years < 80:
        return "60-79"
    return "80+"
