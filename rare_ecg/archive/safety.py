"""Every file a reader opens resolves inside the archive root: checked before the file is opened.

An archive is untrusted input. A header's signal file name, an index table's file name or a symlink can
name any path (``../../etc/passwd``, ``/data/other.dat``); a file that happens to have a plausible
length would otherwise be ingested as an ECG. Paths are resolved (symlinks followed) and compared with
the resolved root; anything outside is rejected as ``unsafe_path`` and never opened.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from rare_ecg.archive.record import REASON_UNSAFE_PATH, RecordError


@lru_cache(maxsize=16)
def _real_root(root: str) -> str:
    return os.path.realpath(root)


@lru_cache(maxsize=4096)
def _real_dir(folder: str) -> str:
    """Resolved folders, cached: an archive has few of them and millions of files (a folder replaced by
    a symlink during a run is not noticed; the files in it are still checked one by one)."""
    return os.path.realpath(folder)


def _resolve(path: str) -> str:
    folder, name = os.path.split(os.path.abspath(path))
    candidate = os.path.join(_real_dir(folder), name)
    if os.path.islink(candidate):  # the file itself is a symlink: follow it all the way
        return os.path.realpath(candidate)
    return candidate


def inside_root(root: str | Path, path: str | Path, where: str) -> str:
    """``path`` (absolute, or relative to the working directory), resolved, if it lies inside ``root``;
    else RecordError(unsafe_path) naming the file. Only the path is examined: nothing is opened.
    Strings throughout (pathlib costs more than the check itself, twice per record)."""
    real_root = _real_root(os.fspath(root))
    real = _resolve(os.fspath(path))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise RecordError(
            REASON_UNSAFE_PATH,
            f"{where}: {os.fspath(path)!r} resolves to {real!r}, outside the archive root {real_root!r}",
        )
    return real
