"""A re-run finds its run finished from the checkpoints on disk, and never trusts a cut-short one."""

from __future__ import annotations

from pathlib import Path

import torch

from rare_ecg.train.loop import CHECKPOINT_FILE, finished_run


def checkpoint(run: Path, stamp: str, epoch: int) -> Path:
    folder = run / f"checkpoint_2026-12-01_{stamp}"
    folder.mkdir(parents=True)
    torch.save(
        {"epoch": epoch, "history": [{"epoch": e} for e in range(1, epoch + 1)]}, folder / CHECKPOINT_FILE
    )
    return folder


def test_the_newest_checkpoint_decides_and_a_truncated_one_is_skipped(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "r1"
    assert finished_run(tmp_path / "runs", "r1", 3) is None  # no folder at all
    checkpoint(run, "10-00-00.000001", 2)
    assert finished_run(tmp_path / "runs", "r1", 3) is None  # epoch 2 of 3: not finished
    third = checkpoint(run, "10-00-09.000001", 3)
    found = finished_run(tmp_path / "runs", "r1", 3)
    assert found is not None and found.path == str(third) and found.state["epoch"] == 3
    assert finished_run(tmp_path / "runs", "r1", 4) is None  # asked for more epochs: train on

    # a newer checkpoint cut short by a kill: skipped, the one before it still counts
    cut = run / "checkpoint_2026-12-01_10-00-20.000001"
    cut.mkdir()
    (cut / CHECKPOINT_FILE).write_bytes((third / CHECKPOINT_FILE).read_bytes()[:100])
    found = finished_run(tmp_path / "runs", "r1", 3)
    assert found is not None and found.path == str(third)
    (run / "checkpoint_2026-12-01_10-00-30.000001").mkdir()  # no file in it yet
    found = finished_run(tmp_path / "runs", "r1", 3)
    assert found is not None and found.path == str(third)
    # another run's checkpoints never count
    assert finished_run(tmp_path / "runs", "r2", 3) is None
