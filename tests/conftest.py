"""Session-wide fixtures: the real shared data folder and one real local Ray for the whole run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# RARE_ECG_SHARED_DATA moves it (the test of the CI rule below points it at a missing folder)
SHARED_DATA = Path(os.environ.get("RARE_ECG_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (tests may read it; product code never does). Skips where it is absent, except
    under CI=true: there a missing folder fails every test that needs it instead of hiding them."""
    if not (SHARED_DATA / "ptbxl-sample" / "ptbxl_database.csv").exists():
        message = f"shared data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(f"{message} (CI=true: tests that need it fail, never skip)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One real local Ray for the session, on its own temp dir so it never joins someone else's cluster."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="rare-ecg-ray-", dir="/tmp")
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        _temp_dir=temp_dir,
        log_to_driver=False,
        ignore_reinit_error=True,
    )
    try:
        yield
    finally:
        ray.shutdown()
