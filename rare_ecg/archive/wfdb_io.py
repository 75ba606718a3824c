"""Reading one WFDB record fast: our own header parser and numpy signal reads, wfdb as the fallback.

``wfdb.rdrecord`` spends about 90% of its time parsing the header through pandas look-ups (about 200
records/s per core), so the header format is parsed here directly (it is a few whitespace-separated
fields) and format-16 signals (PTB-XL, MIMIC-IV-ECG, the Challenge ``.mat`` files) are decoded with
``numpy.frombuffer``. Other formats (212, 24, FLAC...) go through ``wfdb.rdrecord`` for the samples only.

Every check that makes a record unusable raises RecordError with a reason from record.py and a detail
that names the file and the offending value.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rare_ecg.archive.fields import parse_datetime
from rare_ecg.archive.record import (
    INVALID_ADC,
    REASON_BAD_HEADER,
    REASON_BAD_LEADS,
    REASON_BAD_LENGTH,
    REASON_BAD_RATE,
    REASON_MISSING_FILE,
    REASON_TRUNCATED_SIGNAL,
    REASON_UNUSABLE_SIGNAL,
    EcgRecord,
    RecordError,
)
from rare_ecg.archive.safety import inside_root
from rare_ecg.signals.leads import normalize_lead_name

# Usable sampling rates: below 50 Hz the QRS complex is not resolved; above 2 kHz is a research
# recording the model gains nothing from (PTB-XL 100/500, MIMIC 500, Challenge 257-1000 Hz all pass).
MIN_FS_HZ = 50.0
MAX_FS_HZ = 2000.0
# Usable durations: under 1 s there is not one whole beat. The upper bound admits every record of the
# Challenge 2021 data (the INCART Holter excerpts are 30 min at 257 Hz); preprocessing cuts long records
# into 10 s windows, so anything longer is a Holter recording for another tool, not a resting ECG.
MIN_DURATION_S = 1.0
MAX_DURATION_S = 1800.0

WFDB_DEFAULT_FS_HZ = 250.0  # the WFDB header spec's value when the record line omits it
WFDB_DEFAULT_GAIN = 200.0  # the spec's value when a signal line's gain is missing or zero

# ADC units per mV = written gain * factor (a gain is written in ADC units per physical unit).
_UNIT_TO_MV_FACTOR = {"mv": 1.0, "uv": 1000.0, "μv": 1000.0, "µv": 1000.0, "v": 0.001, "nv": 1e6}

# Format-specific invalid-sample markers (WFDB spec), mapped onto INVALID_ADC for fallback formats.
_INVALID_MARKERS = {
    "80": -(2**7), "508": -(2**7), "310": -(2**9), "311": -(2**9), "212": -(2**11),
    "16": -(2**15), "61": -(2**15), "160": -(2**15), "516": -(2**15),
    "24": -(2**23), "524": -(2**23), "32": -(2**31),
}  # fmt: skip
# Bytes per sample of the fixed-size formats, to tell a truncated file before wfdb reads it.
_BYTES_PER_SAMPLE = {
    "8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0,
    "212": 1.5, "310": 4 / 3, "311": 4 / 3,
}  # fmt: skip
_FAST_DTYPES = {"16": "<i2", "61": ">i2"}

_FORMAT_RE = re.compile(r"^(\d+)(?:x(\d+))?(?::(\d+))?(?:\+(\d+))?$")
_GAIN_RE = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)(?:\(([-+]?\d+)\))?(?:/(\S+))?$")
_MAT_V4_INT16_LE = 30  # MAT v4 type code: little-endian (0), int16 (3), full numeric matrix


class SignalSpec(NamedTuple):
    """One signal line of a WFDB header (a NamedTuple: built 12 times per record, it must be cheap)."""

    file_name: str
    fmt: str
    samples_per_frame: int
    skew: int
    byte_offset: int
    gain: float  # ADC units per physical unit, as written (0/missing already replaced by the default)
    baseline: int
    units: str
    description: str


@dataclass(frozen=True)
class Header:
    record_name: str
    n_sig: int
    fs_hz: float
    n_samples: int | None  # None when the record line omits it: the signal file's size decides
    base_time: str | None
    base_date: str | None
    signals: tuple[SignalSpec, ...]
    comments: tuple[str, ...]  # comment lines without the leading '#', stripped


@dataclass
class RawRecord:
    """A record's signal part, validated: what every layout reader builds its EcgRecord from."""

    header: Header
    checksum: str
    lead_names: list[str]
    digital: np.ndarray  # (n_leads, n_samples) int32
    adc_gain: np.ndarray  # (n_leads,) float64, ADC units per mV
    baseline: np.ndarray  # (n_leads,) int32

    def to_record(self, source: str, source_path: str) -> EcgRecord:
        """The EcgRecord with this signal; the layout reader fills in demographics and labels."""
        return EcgRecord(
            source=source,
            source_path=source_path,
            checksum=self.checksum,
            fs_hz=self.header.fs_hz,
            lead_names=self.lead_names,
            digital=self.digital,
            adc_gain=self.adc_gain,
            baseline=self.baseline,
            recorded_at=header_datetime(self.header),
        )


def header_datetime(header: Header) -> datetime | None:
    """The record line's base time and date (WFDB writes 'HH:MM:SS dd/mm/yyyy'; the Challenge headers
    write '05-Feb-2020 11:39:16'), or None when absent or unreadable."""
    if header.base_time is None or header.base_date is None:
        return None
    return parse_datetime(f"{header.base_date} {header.base_time}") or parse_datetime(
        f"{header.base_time} {header.base_date}"
    )


def _bad_header(where: str, what: str) -> RecordError:
    return RecordError(REASON_BAD_HEADER, f"{where}: {what}")


def _to_float(text: str, where: str, field: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise _bad_header(where, f"{field} {text!r} is not a number") from None


def _to_int(text: str, where: str, field: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad_header(where, f"{field} {text!r} is not an integer") from None


def parse_header(text: str, where: str) -> Header:
    """Parse WFDB header text; ``where`` (the file's path) is named in every error."""
    comments: list[str] = []
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            comments.append(line[1:].strip())
        elif line:
            lines.append(line)
    if not lines:
        raise _bad_header(where, "no record line")
    fields = lines[0].split()
    name = fields[0]
    if "/" in name:
        raise _bad_header(where, f"multi-segment record {name!r} is not supported; read its segments")
    if len(fields) < 2:
        raise _bad_header(where, f"record line {lines[0]!r} has no signal count")
    n_sig = _to_int(fields[1], where, "signal count")
    fs_hz = WFDB_DEFAULT_FS_HZ
    if len(fields) > 2:
        # fs may carry a counter frequency and base counter: "500/1000(0)"; only fs matters here
        fs_hz = _to_float(fields[2].split("/")[0], where, "sampling frequency")
    n_samples = _to_int(fields[3], where, "sample count") if len(fields) > 3 else None
    if n_samples is not None and n_samples < 0:
        raise _bad_header(where, f"sample count {n_samples} is negative")
    signals = tuple(_parse_signal_line(line, where) for line in lines[1:])
    return Header(
        record_name=name,
        n_sig=n_sig,
        fs_hz=fs_hz,
        n_samples=n_samples,
        base_time=fields[4] if len(fields) > 4 else None,
        base_date=fields[5] if len(fields) > 5 else None,
        signals=signals,
        comments=tuple(comments),
    )


def _parse_signal_line(line: str, where: str) -> SignalSpec:
    # file fmt gain(baseline)/units adc_res adc_zero init_value checksum block_size description...
    fields = line.split(maxsplit=8)
    if len(fields) < 2:
        raise _bad_header(where, f"signal line {line!r} has no format field")
    gain_field = fields[2] if len(fields) > 2 else None
    adc_zero_field = fields[4] if len(fields) > 4 else None
    try:
        fmt, spf, skew, offset, gain, baseline, units = _signal_fields(fields[1], gain_field, adc_zero_field)
    except ValueError as exc:
        raise _bad_header(where, str(exc)) from None
    description = fields[8].strip() if len(fields) > 8 else ""
    return SignalSpec(fields[0], fmt, spf, skew, offset, gain, baseline, units, description)


@lru_cache(maxsize=1024)
def _signal_fields(
    fmt_field: str, gain_field: str | None, adc_zero_field: str | None
) -> tuple[str, int, int, int, float, int, str]:
    """The parsed format and gain fields; cached because an archive repeats a handful of them millions
    of times (this was most of the header parsing time). Raises ValueError naming the bad field."""
    fmt_match = _FORMAT_RE.match(fmt_field)
    if fmt_match is None:
        raise ValueError(f"signal format {fmt_field!r} is not of the form FMT[xSPF][:SKEW][+OFFSET]")
    fmt, spf, skew, offset = fmt_match.groups()
    try:
        adc_zero = int(adc_zero_field) if adc_zero_field is not None else 0
    except ValueError:
        raise ValueError(f"ADC zero {adc_zero_field!r} is not an integer") from None
    gain, baseline, units = WFDB_DEFAULT_GAIN, adc_zero, "mV"
    if gain_field is not None:
        gain_match = _GAIN_RE.match(gain_field)
        if gain_match is None:
            raise ValueError(f"gain field {gain_field!r} is not of the form GAIN[(BASELINE)][/UNITS]")
        gain = float(gain_match.group(1)) or WFDB_DEFAULT_GAIN
        if gain_match.group(2) is not None:
            baseline = int(gain_match.group(2))
        if gain_match.group(3) is not None:
            units = gain_match.group(3)
    return fmt, int(spf or 1), int(skew or 0), int(offset or 0), gain, baseline, units


def comment_fields(header: Header) -> dict[str, str]:
    """``# Key: value`` comment lines (Challenge's Age, Sex, Dx...) as {lower-case key: value}."""
    out: dict[str, str] = {}
    for comment in header.comments:
        key, sep, value = comment.partition(":")
        if sep and key.strip():
            out.setdefault(key.strip().lower(), value.strip())
    return out


def read_wfdb_record(root: Path, source_path: str) -> RawRecord:
    """Read and validate the WFDB record ``source_path`` (relative to the archive ``root``, without
    extension; it names the record in errors). The header and every signal file it names must resolve
    inside ``root``: anything else is rejected as unsafe_path before it is opened."""
    where = source_path
    hea_path = inside_root(
        root, os.path.join(root, f"{source_path}.hea"), where
    )  # a str: no pathlib per record
    try:
        with open(hea_path, "rb") as f:
            header_bytes = f.read()
    except FileNotFoundError:
        raise RecordError(
            REASON_MISSING_FILE, f"{where}: header file {os.path.basename(hea_path)} does not exist"
        ) from None
    try:
        text = header_bytes.decode("utf-8")
    except UnicodeDecodeError:
        text = header_bytes.decode("latin-1")
    header = parse_header(text, where)
    lead_names = _check_leads(header, where)
    if not MIN_FS_HZ <= header.fs_hz <= MAX_FS_HZ:
        raise RecordError(
            REASON_BAD_RATE,
            f"{where}: sampling rate {header.fs_hz:g} Hz is outside the usable {MIN_FS_HZ:g}-{MAX_FS_HZ:g} Hz",
        )
    adc_gain = np.array(
        [_gain_per_mv(spec, name, where) for spec, name in zip(header.signals, lead_names, strict=True)]
    )
    if header.n_samples is not None:
        _check_length(header.n_samples, header.fs_hz, where)
    digital, file_bytes = _read_samples(header, root, hea_path, where)
    if header.n_samples is None:
        _check_length(digital.shape[1], header.fs_hz, where)
    digest = hashlib.sha256(header_bytes)
    for data in file_bytes:
        digest.update(data)
    return RawRecord(
        header=header,
        checksum=digest.hexdigest(),
        lead_names=lead_names,
        digital=digital,
        adc_gain=adc_gain,
        baseline=np.array([spec.baseline for spec in header.signals], dtype=np.int32),
    )


def _check_leads(header: Header, where: str) -> list[str]:
    if header.n_sig != len(header.signals):
        raise RecordError(
            REASON_BAD_LEADS,
            f"{where}: record line declares {header.n_sig} signals but {len(header.signals)} signal lines follow",
        )
    if header.n_sig == 0:
        raise RecordError(REASON_BAD_LEADS, f"{where}: the record has no signals")
    canonical = [normalize_lead_name(s.description) for s in header.signals]
    if not any(canonical):
        written = [s.description for s in header.signals]
        raise RecordError(
            REASON_BAD_LEADS,
            f"{where}: no standard ECG lead among {written}; expected names such as I, II, V1",
        )
    return [name or s.description for name, s in zip(canonical, header.signals, strict=True)]


def _gain_per_mv(spec: SignalSpec, lead_name: str, where: str) -> float:
    factor = _UNIT_TO_MV_FACTOR.get(spec.units.lower())
    if factor is not None:
        return spec.gain * factor
    if normalize_lead_name(lead_name) is not None:
        raise _bad_header(where, f"lead {lead_name} has units {spec.units!r}; expected a voltage (mV, uV, V)")
    # A non-ECG channel (respiration, blood pressure) keeps its own unit's gain: downstream drops it.
    return spec.gain


def _check_length(n_samples: int, fs_hz: float, where: str) -> None:
    duration_s = n_samples / fs_hz
    if not MIN_DURATION_S <= duration_s <= MAX_DURATION_S:
        raise RecordError(
            REASON_BAD_LENGTH,
            f"{where}: {n_samples} samples at {fs_hz:g} Hz is {duration_s:g} s; "
            f"usable records last {MIN_DURATION_S:g}-{MAX_DURATION_S:g} s",
        )


def _file_groups(header: Header) -> dict[str, list[int]]:
    """Signal indices per signal file, in order of first appearance (the checksum's byte order)."""
    groups: dict[str, list[int]] = {}
    for i, spec in enumerate(header.signals):
        groups.setdefault(spec.file_name, []).append(i)
    return groups


def _is_fast(header: Header, groups: dict[str, list[int]]) -> bool:
    """True when every file holds plain interleaved 16-bit frames this module decodes itself."""
    for idx in groups.values():
        group = [header.signals[i] for i in idx]
        if len({(s.fmt, s.byte_offset) for s in group}) != 1:
            return False
        if any(s.fmt not in _FAST_DTYPES or s.samples_per_frame != 1 or s.skew for s in group):
            return False
    return True


def _read_samples(header: Header, root: Path, hea_path: str, where: str) -> tuple[np.ndarray, list[bytes]]:
    groups = _file_groups(header)
    folder = os.path.dirname(hea_path)
    # every file checked before any is opened; the resolved path is the one opened
    resolved = [inside_root(root, os.path.join(folder, file_name), where) for file_name in groups]
    file_bytes: list[bytes] = []
    for file_name, real in zip(groups, resolved, strict=True):
        try:
            with open(real, "rb") as f:
                file_bytes.append(f.read())
        except (FileNotFoundError, IsADirectoryError):
            raise RecordError(
                REASON_MISSING_FILE, f"{where}: signal file {file_name} does not exist"
            ) from None
    if not _is_fast(header, groups):
        return _read_with_wfdb(header, hea_path, groups, file_bytes, where), file_bytes
    n_samples = header.n_samples
    parts: list[tuple[list[int], np.ndarray]] = []
    for (file_name, idx), data in zip(groups.items(), file_bytes, strict=True):
        if file_name.lower().endswith(".mat"):
            frames = _mat_frames(data, len(idx), Path(folder, file_name), where)
        else:
            frames = _dat_frames(data, header.signals[idx[0]], len(idx), n_samples)
        if n_samples is None:
            n_samples = frames.shape[0]
        elif frames.shape[0] < n_samples:
            raise RecordError(
                REASON_TRUNCATED_SIGNAL,
                f"{where}: {os.path.basename(file_name)} holds {frames.shape[0]} samples per signal; "
                f"the header says {n_samples}",
            )
        parts.append((idx, frames[:n_samples]))
    if len(parts) == 1 and parts[0][0] == list(range(header.n_sig)):
        return parts[0][1].T.astype(np.int32, order="C"), file_bytes
    digital = np.empty((header.n_sig, parts[0][1].shape[0]), dtype=np.int32)
    for idx, frames in parts:
        digital[idx] = frames.T
    return digital, file_bytes


def _dat_frames(data: bytes, spec: SignalSpec, n_in_file: int, n_samples: int | None) -> np.ndarray:
    """(n_samples, n_in_file) frames of one format-16/61 file; all of it when the header has no length."""
    available = max(len(data) - spec.byte_offset, 0) // (2 * n_in_file)
    count = available if n_samples is None else min(n_samples, available)
    frames = np.frombuffer(
        data, dtype=_FAST_DTYPES[spec.fmt], count=count * n_in_file, offset=spec.byte_offset
    )
    return frames.reshape(count, n_in_file)


def _mat_frames(data: bytes, n_in_file: int, path: Path, where: str) -> np.ndarray:
    """(n_samples, n_in_file) frames of a Challenge ``.mat`` file (variable ``val``, n_sig x n_samples).

    A MAT v4 int16 file is a 20-byte header, the variable name, then exactly WFDB's interleaved frames
    (the ``+24`` byte offset of the Challenge headers' format field): decoded in place. Any other MAT
    flavour (v5, other numeric types) goes through scipy.
    """
    if len(data) >= 20:
        mopt, mrows, ncols, imagf, namlen = (int(v) for v in np.frombuffer(data, "<i4", count=5))
        if mopt == _MAT_V4_INT16_LE and imagf == 0 and 0 < namlen < 64:
            if mrows != n_in_file:
                raise RecordError(
                    REASON_BAD_LEADS,
                    f"{where}: {path.name} holds {mrows} signals; the header lists {n_in_file}",
                )
            offset = 20 + namlen
            count = min(ncols, max(len(data) - offset, 0) // (2 * mrows))
            return np.frombuffer(data, "<i2", count=mrows * count, offset=offset).reshape(count, mrows)
    return _mat_with_scipy(data, n_in_file, path, where)


def _mat_with_scipy(data: bytes, n_in_file: int, path: Path, where: str) -> np.ndarray:
    from scipy.io import loadmat

    try:
        val = loadmat(io.BytesIO(data)).get("val")
    except Exception as exc:  # scipy raises ValueError, TypeError, MatReadError... for corrupt files
        raise RecordError(
            REASON_UNUSABLE_SIGNAL, f"{where}: {path.name} is not a readable MAT file: {exc}"
        ) from exc
    if not isinstance(val, np.ndarray) or val.ndim != 2:
        raise RecordError(REASON_UNUSABLE_SIGNAL, f"{where}: {path.name} holds no 2-D variable 'val'")
    if not np.issubdtype(val.dtype, np.integer) and not np.array_equal(val, np.round(val)):
        raise RecordError(
            REASON_UNUSABLE_SIGNAL, f"{where}: {path.name} 'val' holds {val.dtype} non-integer ADC values"
        )
    if val.shape[0] != n_in_file:
        raise RecordError(
            REASON_BAD_LEADS,
            f"{where}: {path.name} holds {val.shape[0]} signals; the header lists {n_in_file}",
        )
    return np.ascontiguousarray(val.T.astype(np.int32))


def _read_with_wfdb(
    header: Header, hea_path: str, groups: dict[str, list[int]], file_bytes: list[bytes], where: str
) -> np.ndarray:
    """Samples of formats this module does not decode itself, through wfdb.rdrecord (slower)."""
    import wfdb

    for (file_name, idx), data in zip(groups.items(), file_bytes, strict=True):
        spec = header.signals[idx[0]]
        bytes_per_sample = _BYTES_PER_SAMPLE.get(spec.fmt)
        if header.n_samples is None or bytes_per_sample is None:
            continue
        frame_samples = sum(header.signals[i].samples_per_frame for i in idx)
        needed = spec.byte_offset + int(np.ceil(header.n_samples * frame_samples * bytes_per_sample))
        if len(data) < needed:
            raise RecordError(
                REASON_TRUNCATED_SIGNAL,
                f"{where}: {file_name} has {len(data)} bytes; the header's {header.n_samples} samples "
                f"in format {spec.fmt} need {needed}",
            )
    try:
        record = wfdb.rdrecord(hea_path[: -len(".hea")], physical=False, return_res=32)
    except Exception as exc:  # wfdb raises bare ValueError/IndexError/... for undecodable files
        raise RecordError(
            REASON_UNUSABLE_SIGNAL, f"{where}: wfdb could not decode the signal: {type(exc).__name__}: {exc}"
        ) from exc
    if record.d_signal is None:
        raise RecordError(REASON_UNUSABLE_SIGNAL, f"{where}: wfdb returned no samples")
    digital = np.asarray(record.d_signal, dtype=np.int32).T.copy()
    for i, spec in enumerate(header.signals):
        marker = _INVALID_MARKERS.get(spec.fmt)
        if marker is not None and marker != INVALID_ADC:
            digital[i][digital[i] == marker] = INVALID_ADC
    return digital
