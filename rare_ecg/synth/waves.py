"""The cardiac dipole: waves as 3-D vectors over time, and their projection onto the 12 leads.

Coordinates are Frank's vectorcardiographic axes in mV: X to the patient's left, Y to the feet,
Z to the back. A wave is a smooth bump in time (an asymmetric Gaussian, or a plateau with logistic
edges for ST-segment shifts) times a fixed dipole vector; the heart's dipole is the sum of all waves.
Leads I, II and V1-V6 are the Dower transform of the dipole (Edenbrandt & Pahlm, 1988); III, aVR, aVL
and aVF follow from I and II by Einthoven's and Goldberger's relations, so the limb leads are
consistent with each other exactly, as in a real recording. Near-field potentials that a single
dipole cannot produce (Brugada-type coving in V1-V2) are added to the precordial leads directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rare_ecg.signals.leads import CANONICAL_LEADS

# Dower inverse transform: rows I, II, V1..V6; columns X, Y, Z.
DOWER = np.array(
    [
        [0.632, -0.235, 0.059],
        [0.235, 1.066, -0.132],
        [-0.515, 0.157, -0.917],
        [0.044, 0.164, -1.387],
        [0.882, 0.098, -1.277],
        [1.213, 0.127, -0.601],
        [1.125, 0.127, -0.086],
        [0.831, 0.076, 0.230],
    ]
)
N_LEADS = len(CANONICAL_LEADS)
PRECORDIAL = slice(6, 12)

# From the two independent limb leads (I, II) to the six limb leads.
_LIMB_FROM_I_II = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 1.0], [-0.5, -0.5], [1.0, -0.5], [-0.5, 1.0]])
# Electrodes RA, LA, LL, V1..V6 to the 12 leads (Wilson's central terminal for V1-V6).
ELECTRODES = ("RA", "LA", "LL", "V1", "V2", "V3", "V4", "V5", "V6")
ELECTRODE_TO_LEAD = np.zeros((N_LEADS, len(ELECTRODES)))
ELECTRODE_TO_LEAD[0, [0, 1]] = [-1, 1]  # I = LA - RA
ELECTRODE_TO_LEAD[1, [0, 2]] = [-1, 1]  # II = LL - RA
ELECTRODE_TO_LEAD[2, [1, 2]] = [-1, 1]  # III = LL - LA
ELECTRODE_TO_LEAD[3, :3] = [1, -0.5, -0.5]  # aVR
ELECTRODE_TO_LEAD[4, :3] = [-0.5, 1, -0.5]  # aVL
ELECTRODE_TO_LEAD[5, :3] = [-0.5, -0.5, 1]  # aVF
for _i in range(6):
    ELECTRODE_TO_LEAD[6 + _i, :3] = -1.0 / 3.0
    ELECTRODE_TO_LEAD[6 + _i, 3 + _i] = 1.0

GAUSS = 0
PLATEAU = 1
_GAUSS_REACH = 4.0  # a Gaussian is evaluated over +-4 sigma (exp(-8) of its peak beyond)
_PLATEAU_REACH = 7.0  # a logistic edge over +-7 widths


def lead_matrix(dower: np.ndarray = DOWER) -> np.ndarray:
    """(12, 3): dipole to the 12 canonical leads, limb leads derived from I and II."""
    out = np.empty((N_LEADS, 3))
    out[:6] = _LIMB_FROM_I_II @ dower[:2]
    out[6:] = dower[2:]
    return out


@dataclass
class WaveTable:
    """Waves placed on the record's time axis (struct of arrays, seconds and mV)."""

    t0: np.ndarray  # Gaussian: peak time; plateau: rising edge time
    t1: np.ndarray  # plateau: falling edge time (unused for Gaussians)
    s0: np.ndarray  # Gaussian: sigma before the peak; plateau: rising edge width
    s1: np.ndarray  # Gaussian: sigma after the peak; plateau: falling edge width
    shape: np.ndarray  # GAUSS | PLATEAU
    vec: np.ndarray  # (n, 3) dipole vector
    local: np.ndarray = field(default_factory=lambda: np.zeros((0, 6)))  # (n, 6) near-field mV at V1-V6

    def __len__(self) -> int:
        return len(self.t0)


def _bumps(
    table: WaveTable, fs_hz: float, n: int, t_start: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample indices, bump values and owning wave of every (wave, sample) pair inside the record."""
    gauss = table.shape == GAUSS
    lo_t = np.where(gauss, table.t0 - _GAUSS_REACH * table.s0, table.t0 - _PLATEAU_REACH * table.s0)
    hi_t = np.where(gauss, table.t0 + _GAUSS_REACH * table.s1, table.t1 + _PLATEAU_REACH * table.s1)
    lo = np.maximum(np.floor((lo_t - t_start) * fs_hz).astype(np.int64), 0)
    hi = np.minimum(np.ceil((hi_t - t_start) * fs_hz).astype(np.int64) + 1, n)
    width = hi - lo
    keep = width > 0
    if not keep.any():
        empty = np.zeros(0)
        return empty.astype(np.int64), empty, empty.astype(np.int64)
    # Bucket waves by window length so short QRS waves do not pay for the long ST plateaus.
    idx_parts, val_parts, own_parts = [], [], []
    order = np.flatnonzero(keep)
    for bucket in (width[order] <= 48, (width[order] > 48) & (width[order] <= 160), width[order] > 160):
        waves = order[bucket]
        if waves.size == 0:
            continue
        w = int(width[waves].max())
        idx = lo[waves, None] + np.arange(w)[None, :]
        valid = idx < hi[waves, None]
        t = t_start + idx / fs_hz
        t0, t1 = table.t0[waves, None], table.t1[waves, None]
        s0, s1 = table.s0[waves, None], table.s1[waves, None]
        d = t - t0
        g = np.exp(-0.5 * (d / np.where(d < 0, s0, s1)) ** 2)
        if not gauss[waves].all():
            # logistic plateau: rises over s0 around t0, falls over s1 around t1
            with np.errstate(over="ignore"):
                p = 1.0 / ((1.0 + np.exp(-d / s0)) * (1.0 + np.exp((t - t1) / s1)))
            g = np.where(gauss[waves, None], g, p)
        idx_parts.append(idx[valid])
        val_parts.append(g[valid])
        own_parts.append(np.broadcast_to(waves[:, None], idx.shape)[valid])
    return np.concatenate(idx_parts), np.concatenate(val_parts), np.concatenate(own_parts)


def render(table: WaveTable, fs_hz: float, n: int, t_start: float, leads: np.ndarray) -> np.ndarray:
    """(12, n) mV: the waves' dipole projected by ``leads`` (12, 3), plus their near-field terms."""
    out = np.zeros((N_LEADS, n))
    if len(table) == 0:
        return out
    idx, val, own = _bumps(table, fs_hz, n, t_start)
    dipole = np.stack([np.bincount(idx, weights=val * table.vec[own, k], minlength=n) for k in range(3)])
    out += leads @ dipole
    if table.local.size and np.any(table.local):
        has = np.flatnonzero(np.any(table.local != 0, axis=1))
        sel = np.isin(own, has)
        for k in range(6):
            out[6 + k] += np.bincount(idx[sel], weights=val[sel] * table.local[own[sel], k], minlength=n)
    return out


def concat(tables: list[WaveTable]) -> WaveTable:
    tables = [t for t in tables if len(t)]
    if not tables:
        z = np.zeros(0)
        return WaveTable(z, z, z, z, z.astype(np.int64), np.zeros((0, 3)), np.zeros((0, 6)))
    return WaveTable(
        t0=np.concatenate([t.t0 for t in tables]),
        t1=np.concatenate([t.t1 for t in tables]),
        s0=np.concatenate([t.s0 for t in tables]),
        s1=np.concatenate([t.s1 for t in tables]),
        shape=np.concatenate([t.shape for t in tables]),
        vec=np.concatenate([t.vec for t in tables]),
        local=np.concatenate([t.local if t.local.size else np.zeros((len(t), 6)) for t in tables]),
    )


def rotation(axis: str, degrees: float) -> np.ndarray:
    """3x3 rotation about a Frank axis ('x', 'y' or 'z'), right-handed."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    if axis == "z":
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    if axis == "y":
        return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    if axis == "x":
        return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    raise ValueError(f"rotation axis {axis!r} is not one of 'x', 'y', 'z'")


def unit(v: np.ndarray | list[float] | tuple[float, ...]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)
