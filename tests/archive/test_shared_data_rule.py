"""Under CI=true a missing ../shared/data fails the tests that need it; elsewhere they skip."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NEEDS_DATA = (
    "tests/archive/test_archive_unsafe_paths.py::test_a_ptbxl_index_row_pointing_out_of_the_root_is_rejected"
)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_missing_shared_data_fails_under_ci_and_skips_elsewhere(
    ci: str, outcome: str, tmp_path: Path
) -> None:
    env = {**os.environ, "CI": ci, "RARE_ECG_SHARED_DATA": str(tmp_path / "missing")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", NEEDS_DATA],
        capture_output=True, text=True, timeout=110, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert outcome in result.stdout, result.stdout[-2000:]
    assert (result.returncode != 0) == (ci == "true")
