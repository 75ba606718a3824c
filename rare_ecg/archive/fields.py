"""Demographic and date values as archives write them, turned into EcgRecord's types.

Each function takes the raw text of an index-table cell or a header comment and never raises: a value
that cannot be used becomes None (and, for ages, a quality flag), so one bad cell never loses a record.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

FLAG_IMPLAUSIBLE_AGE = "implausible_age"  # the source's age was unusable; the record keeps age None

MAX_PLAUSIBLE_AGE = 120.0
PTBXL_AGE_90_PLUS = 300.0  # PTB-XL (v1.0.2 on) writes ages of 90 and over as 300
PTBXL_AGE_90_PLUS_VALUE = 90.0

_SEX = {"male": "male", "m": "male", "female": "female", "f": "female"}
_PTBXL_SEX = {"0": "male", "1": "female"}  # PTB-XL's coding
# Dates as WFDB headers (dd/mm/yyyy), the Challenge headers (05-Feb-2020), PTB-XL and MIMIC write them
_ISO_SECONDS = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S.%f",
    "%d/%m/%Y",
    "%d-%b-%Y %H:%M:%S",
    "%d-%b-%Y",
)


def parse_float(text: str | float | int | None) -> float | None:
    """A finite number, or None for empty cells, NaN and text that is not a number."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_age(text: str | float | int | None, *, ptbxl: bool = False) -> tuple[float | None, list[str]]:
    """Age in years and the flags it raises: unknown (empty, NaN, 'Unknown') is None without a flag;
    negative or over 120 is None with FLAG_IMPLAUSIBLE_AGE. With ``ptbxl``, 300 means 90 or over."""
    if isinstance(text, str) and not text.strip():
        return None, []
    value = parse_float(text)
    if value is None:
        return None, []
    if ptbxl and value == PTBXL_AGE_90_PLUS:
        return PTBXL_AGE_90_PLUS_VALUE, []
    if value < 0 or value > MAX_PLAUSIBLE_AGE:
        return None, [FLAG_IMPLAUSIBLE_AGE]
    return value, []


def parse_sex(text: str | None, *, ptbxl: bool = False) -> str | None:
    """'male' | 'female' | None. PTB-XL codes 0 = male, 1 = female (also written 0.0/1.0);
    other archives write Male/Female/M/F in any case; anything else is unknown."""
    if text is None:
        return None
    value = text.strip()
    if ptbxl:
        number = parse_float(value)
        return _PTBXL_SEX.get(str(int(number))) if number is not None and number.is_integer() else None
    return _SEX.get(value.lower())


def parse_datetime(text: str | None) -> datetime | None:
    """A naive datetime from the formats the supported archives use; None when it is not one of them."""
    if not text or not text.strip():
        return None
    value = text.strip()
    if _ISO_SECONDS.fullmatch(value):  # the usual "%Y-%m-%d %H:%M:%S", at a tenth of strptime's cost
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None  # strptime rejects it too (e.g. month 13)
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def normalize_patient_id(text: str | None) -> str | None:
    """Identifiers as text; PTB-XL's float column writes 15709 as '15709.0', which must not matter."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    number = parse_float(value)
    if number is not None and number.is_integer() and "." in value:
        return str(int(number))
    return value
