"""Writing WFDB records directly: a header text and format-16 samples (little-endian int16, frames of
one sample per lead), which is what ``wfdb.wrsamp`` writes, about 30x faster here.

The header carries, per signal, the ADC gain (adu/mV), baseline 0, 16-bit resolution, the first
sample (init value) and WFDB's checksum (sum of the samples modulo 65536), like PTB-XL's headers.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np

INT16_LIMIT = 32767  # -32768 is WFDB's invalid-sample marker for format 16: never written


def quantize(signal_mv: np.ndarray, gain: float) -> np.ndarray:
    """(n_leads, n) mV -> (n_leads, n) int16 ADC values, rounded, clipped to the 16-bit range."""
    return np.clip(np.rint(signal_mv * gain), -INT16_LIMIT, INT16_LIMIT).astype(np.int16)


def header_text(
    name: str,
    digital: np.ndarray,
    fs_hz: int,
    gain: float,
    lead_names: list[str],
    base: datetime | None = None,
) -> str:
    """WFDB header for one format-16 ``{name}.dat`` holding ``digital`` (n_leads, n)."""
    n_leads, n = digital.shape
    record = f"{name} {n_leads} {fs_hz} {n}"
    if base is not None:
        record += base.strftime(" %H:%M:%S %d/%m/%Y")
    checksums = digital.astype(np.int64).sum(axis=1) % 65536
    gain_text = f"{gain:.1f}" if float(gain).is_integer() else repr(float(gain))
    lines = [record]
    for i, lead in enumerate(lead_names):
        lines.append(
            f"{name}.dat 16 {gain_text}(0)/mV 16 0 {int(digital[i, 0])} {int(checksums[i])} 0 {lead}"
        )
    return "\n".join(lines) + "\n"


def write_record(
    path_without_ext: Path,
    digital: np.ndarray,
    fs_hz: int,
    gain: float,
    lead_names: list[str],
    base: datetime | None = None,
) -> int:
    """Write ``{path}.hea`` and ``{path}.dat`` (the folder must exist); returns the bytes written."""
    name = path_without_ext.name
    header = header_text(name, digital, fs_hz, gain, lead_names, base).encode("ascii")
    data = np.ascontiguousarray(digital.T).astype("<i2").tobytes()
    path_without_ext.with_suffix(".hea").write_bytes(header)
    path_without_ext.with_suffix(".dat").write_bytes(data)
    return len(header) + len(data)
