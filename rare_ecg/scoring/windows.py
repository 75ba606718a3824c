"""From ecg_waveforms rows to model windows and back: which records are scored at all (quality), the 10 s
windows of each record with their beat positions, and the per-record aggregation of window outputs.

Pure numpy (no Ray, no ONNX Runtime), so every rule here is tested on hand-made arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rare_ecg.model.inputs import window_beat_positions

N_LEADS = 12

# Skip reasons: a record with any of them is counted under that reason and never scored (no zero rows).
REASON_RATE = "model_rate_mismatch"  # the stored waveform is not at the model rate
REASON_TOO_FEW_LEADS = "too_few_leads"  # fewer usable leads than ScoreConfig.min_leads
REASON_TOO_SHORT = "too_short"  # less real signal than ScoreConfig.min_signal_s


@dataclass(frozen=True)
class QualityPolicy:
    fs_hz: int  # the model rate
    min_leads: int = 6
    min_signal_s: float = 5.0
    skip_flags: tuple[str, ...] = ("nan_samples",)  # quality flags that reject a record outright


def skip_reason(
    quality_flags: Sequence[str], lead_mask: np.ndarray, valid_samples: int, fs_hz: int, policy: QualityPolicy
) -> str | None:
    """The reason a record is not scored, or None. Rejecting flags come first, in the policy's order."""
    for flag in policy.skip_flags:
        if flag in quality_flags:
            return flag
    if fs_hz != policy.fs_hz:
        return REASON_RATE
    if int(np.count_nonzero(lead_mask)) < policy.min_leads:
        return REASON_TOO_FEW_LEADS
    if valid_samples < policy.min_signal_s * fs_hz:
        return REASON_TOO_SHORT
    return None


@dataclass
class Windows:
    signal: np.ndarray  # (W, 12, N) float32
    lead_mask: np.ndarray  # (W, 12) bool
    beat_positions: list[np.ndarray]  # per window: R peaks relative to its first sample
    record: np.ndarray  # (W,) index of the window's record in the input order
    window: np.ndarray  # (W,) the window's position in its record


def kept_windows(n_windows: int, valid_samples: int, window_samples: int) -> list[int]:
    """Windows worth scoring: the first always; a later one only if at least half of it is real signal
    (a mostly-padded tail would add a window of zeros to the record's maximum)."""
    keep = [0]
    for w in range(1, n_windows):
        if valid_samples - w * window_samples >= window_samples / 2:
            keep.append(w)
    return keep


def split_windows(rows: pa.Table, window_samples: int) -> Windows:
    """Cut each ecg_waveforms row (columns signal, lead_mask, n_windows, valid_samples, beat_positions)
    into its 10 s windows. Decodes the list columns through their flat buffers, not Python lists."""
    n = rows.num_rows
    n_windows = rows.column("n_windows").to_numpy().astype(np.int64)
    valid = rows.column("valid_samples").to_numpy().astype(np.int64)
    flat = _flat_values(rows.column("signal"), np.float32)
    masks = _flat_values(rows.column("lead_mask"), np.bool_).reshape(n, N_LEADS)
    beats = rows.column("beat_positions").combine_chunks()
    beat_values = beats.values.to_numpy(zero_copy_only=False).astype(np.int64)
    beat_offsets = beats.offsets.to_numpy()

    signals, lead_masks, positions, record, window = [], [], [], [], []
    start = 0
    for i in range(n):
        length = N_LEADS * int(n_windows[i]) * window_samples
        x = flat[start : start + length].reshape(N_LEADS, int(n_windows[i]), window_samples)
        start += length
        peaks = beat_values[beat_offsets[i] : beat_offsets[i + 1]]
        for w in kept_windows(int(n_windows[i]), int(valid[i]), window_samples):
            signals.append(x[:, w])
            lead_masks.append(masks[i])
            positions.append(window_beat_positions(peaks, w, window_samples))
            record.append(i)
            window.append(w)
    if start != flat.size:
        raise ValueError(f"signal column holds {flat.size} values; n_windows says {start}")
    return Windows(
        signal=np.stack(signals).astype(np.float32, copy=False)
        if signals
        else np.zeros((0, N_LEADS, window_samples), np.float32),
        lead_mask=np.stack(lead_masks) if lead_masks else np.zeros((0, N_LEADS), bool),
        beat_positions=positions,
        record=np.asarray(record, dtype=np.int64),
        window=np.asarray(window, dtype=np.int64),
    )


def _flat_values(column: pa.ChunkedArray, dtype: type) -> np.ndarray:
    arr = column.combine_chunks()
    if arr.offset != 0 or (len(arr) and arr.offsets[0].as_py() != 0):
        arr = pa.concat_arrays([arr])  # a sliced list array: make its values start at 0
    return np.asarray(arr.flatten().to_numpy(zero_copy_only=False), dtype=dtype)


@dataclass
class RecordOutputs:
    probs: np.ndarray  # (R, L) max over the record's windows
    anomaly_score: np.ndarray  # (R,) max over windows
    anomaly_map: list[np.ndarray]  # per record (12, kept_windows * segments): windows side by side
    age: np.ndarray  # (R,) mean over windows
    sex_female_prob: np.ndarray  # (R,) mean over windows


def aggregate(
    record: np.ndarray,
    n_records: int,
    probs: np.ndarray,
    score: np.ndarray,
    amap: np.ndarray,
    age: np.ndarray,
    sex: np.ndarray,
) -> RecordOutputs:
    """Window outputs -> one output per record (METHOD.md: a finding anywhere in a long record flags it).
    ``record`` gives each window's record index, windows in their order within the record."""
    if n_records and not np.array_equal(np.unique(record), np.arange(n_records)):
        raise ValueError("every record needs at least one window")
    out_probs = np.full((n_records, probs.shape[1]), -np.inf, dtype=np.float32)
    np.maximum.at(out_probs, record, probs)
    out_score = np.full(n_records, -np.inf, dtype=np.float32)
    np.maximum.at(out_score, record, score)
    counts = np.bincount(record, minlength=n_records).astype(np.float32)
    out_age = (np.bincount(record, weights=age, minlength=n_records) / counts).astype(np.float32)
    out_sex = (np.bincount(record, weights=sex, minlength=n_records) / counts).astype(np.float32)
    maps = [np.concatenate(list(amap[record == r]), axis=-1) for r in range(n_records)]
    return RecordOutputs(out_probs, out_score, maps, out_age, out_sex)
