"""The ingest workers' allocator setting: glibc keeps the filters' temporaries in the heap."""

from __future__ import annotations

import ctypes
import platform

import numpy as np
import pytest

from rare_ecg.runtime import tune_allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_tune_allocator_takes_effect_once_and_changes_no_result() -> None:
    x = np.random.default_rng(0).standard_normal((64, 12, 1400)).astype(np.float32)
    before = np.fft.rfft(x, axis=-1)
    assert tune_allocator() is True
    assert tune_allocator() is True  # idempotent
    np.testing.assert_array_equal(np.fft.rfft(x, axis=-1), before)
    assert ctypes.CDLL(None).mallopt  # the symbol it used is the process's own glibc
