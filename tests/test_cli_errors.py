"""The console entry point turns any unexpected failure into one line on stderr and exit 1."""

from __future__ import annotations

import pytest

from rare_ecg import cli


def _boom() -> None:
    raise RuntimeError("The current node timed out during startup.\n  a second line\n  a third")


def test_unexpected_failure_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RARE_ECG_DEBUG", raising=False)
    monkeypatch.setattr(cli, "app", _boom)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "rare-ecg: error: RuntimeError: The current node timed out"
    )
    assert "a second line a third" in err and "Traceback" not in err


def test_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RARE_ECG_DEBUG", "1")
    monkeypatch.setattr(cli, "app", _boom)
    with pytest.raises(RuntimeError, match="timed out"):
        cli.main()
