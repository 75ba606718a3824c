"""Lake rows -> model inputs: beat window from the stored R peaks, beat phase, R-aligned neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from rare_ecg.model.config import ModelConfig
from rare_ecg.model.inputs import model_inputs, window_beat_positions

PEAKS = np.arange(50, 1000, 80)  # every 0.8 s at 100 Hz


def _rows(cfg: ModelConfig, n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, 12, cfg.n_samples), dtype=np.float32), np.ones((n, 12), dtype=bool)


def test_beat_window_is_a_stored_r_peak_deterministic_or_drawn() -> None:
    cfg = ModelConfig()
    signal, mask = _rows(cfg)
    inputs = model_inputs(signal, mask, [PEAKS, np.zeros(0, dtype=np.int32)], cfg)
    # The R peak nearest the centre (sample 500 -> peak 530); no peaks -> the centred window.
    assert inputs.beat_start.tolist() == [530 - 28, (1000 - 96) // 2]
    signal, mask = _rows(cfg, 200)
    drawn = model_inputs(signal, mask, [PEAKS] * 200, cfg, np.random.default_rng(0)).beat_start
    eligible = {int(p) - 28 for p in PEAKS if p - 28 >= 0 and p - 28 + 96 <= 1000}
    assert set(drawn.tolist()) == eligible  # every R peak whose window fits, and nothing else


def test_beat_phase_is_time_since_and_until_the_nearest_r_peaks() -> None:
    cfg = ModelConfig()
    signal, mask = _rows(cfg, 1)
    phase = model_inputs(signal, mask, [PEAKS], cfg).beat_phase[0]
    assert phase.shape == (2, 1000)
    assert phase[0, 130] == 0.0 and phase[1, 130] == pytest.approx(0.80)  # on an R peak: the next is 0.8 s on
    assert phase[0, 150] == pytest.approx(0.20) and phase[1, 150] == pytest.approx(0.60)
    assert phase[0, 10] == 1.0 and phase[1, 10] == pytest.approx(0.40)  # before the first peak: clipped


def test_neighbours_are_the_same_offset_from_r_in_the_adjacent_beats() -> None:
    cfg = ModelConfig()
    signal, mask = _rows(cfg, 1)
    neigh = model_inputs(signal, mask, [PEAKS], cfg).beat_neighbours[0]
    # Sample 140 belongs to the peak at 130 (offset +10): twins 60 and 220.
    assert neigh[:, 140].tolist() == [60, 220]
    # Sample 45 belongs to the first peak (50): no previous beat, the next one stands in.
    assert neigh[:, 45].tolist() == [125, 125]
    # Sample 999 belongs to the last peak (930, offset 69): the next beat would be past the end.
    assert neigh[:, 999].tolist() == [919, 919]
    # Fewer than two peaks: each sample is its own twin (no information).
    alone = model_inputs(signal, mask, [PEAKS[:1]], cfg).beat_neighbours[0]
    assert np.array_equal(alone, np.stack([np.arange(1000)] * 2))


def test_windows_of_a_long_record_get_their_own_peaks_and_bad_input_is_refused() -> None:
    record_peaks = np.array([30, 990, 1010, 1500, 2999], dtype=np.int32)
    assert window_beat_positions(record_peaks, 0, 1000).tolist() == [30, 990]
    assert window_beat_positions(record_peaks, 1, 1000).tolist() == [10, 500]
    assert window_beat_positions(record_peaks, 2, 1000).tolist() == [999]
    cfg = ModelConfig()
    signal, mask = _rows(cfg)
    with pytest.raises(ValueError, match="one beat_positions array per row"):
        model_inputs(signal, mask, [PEAKS], cfg)
    with pytest.raises(ValueError, match="1-D array"):
        model_inputs(signal, mask, [PEAKS[None], PEAKS], cfg)
    with pytest.raises(ValueError, match=r"signal must be \(B, 12, 1000\)"):
        model_inputs(signal[:, :, :500], mask, [PEAKS, PEAKS], cfg)
