"""Lead names: the canonical 12-lead order and the normalisation of the names archives use."""

from __future__ import annotations

CANONICAL_LEADS: tuple[str, ...] = (
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
)  # fmt: skip

_ALIASES: dict[str, str] = {name.upper(): name for name in CANONICAL_LEADS}
_ALIASES.update({"LEAD I": "I", "LEAD II": "II", "LEAD III": "III", "D1": "I", "D2": "II", "D3": "III"})


def normalize_lead_name(name: str) -> str | None:
    """Map an archive's lead name (``AVR``, ``avr``, ``Lead II``) onto the canonical name.

    Returns None for leads outside the standard twelve (``VX``, ``MLII``...), which callers drop.
    """
    return _ALIASES.get(name.strip().upper())
