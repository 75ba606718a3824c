"""Record-score candidates: each ranks a record with an injected abnormal span above its clean twin;
the choice of score reads validation rows only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from rare_ecg.model.config import SCORE_CANDIDATES, ModelConfig
from rare_ecg.model.inference import InferenceGraph
from rare_ecg.model.loop import LoopSettings, pretrain_loop, with_reference_set
from rare_ecg.model.network import EcgModel
from rare_ecg.model.scores import ECG_ONLY, aggregate, knn_distance
from rare_ecg.model.selection import choose_record_score, record_candidates, with_record_score
from rare_ecg.model.training import Batch
from tests.model.helpers import r_peaks


def _twins(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same records with one wide ectopic-like complex added at a random time (as in conftest)."""
    t = np.arange(clean.shape[-1]) / 100
    out = clean.copy()
    for i in range(clean.shape[0]):
        c = rng.uniform(2.0, 8.0)
        amp = rng.choice([-1.0, 1.0], size=12) * rng.uniform(0.8, 1.5, size=12)
        bump = np.exp(-0.5 * ((t - c) / 0.04) ** 2) - 0.5 * np.exp(-0.5 * ((t - c - 0.2) / 0.06) ** 2)
        out[i] += (amp[:, None] * bump[None]).astype(np.float32)
    return out


def _pretrained(
    cfg: ModelConfig, train: Batch, rng: np.random.Generator, synthetic_ecgs: Callable[..., Any]
) -> EcgModel:
    val_x = synthetic_ecgs(rng, 16).signal
    validation = Batch(
        val_x, np.ones((16, 12), bool), r_peaks(val_x), age=rng.uniform(30, 80, 16).astype(np.float32)
    )
    settings = LoopSettings(max_steps=80, batch_size=16, lr=3e-3, warmup_steps=10, eval_every=40)
    return with_reference_set(pretrain_loop(EcgModel(cfg), train, validation, settings).model, train)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("beat_copy", [True, False], ids=["default", "no_copy_prior"])
def test_every_ecg_candidate_ranks_an_injected_abnormal_span_above_its_clean_twin(
    synthetic_ecgs: Callable[..., Any], tiny_config: ModelConfig, beat_copy: bool
) -> None:
    """After a short run (80 steps), each ECG-only candidate scores the twin with one wide ectopic
    complex above its clean original in most of 12 pairs, with the default network (the copy prior)
    and without it (where the network still predicts about zero, so its errors are the signal's
    energy: a weaker claim). Two fixes made this hold with the prior: the anomaly-map rounds hid a
    hidden sample's twins too whenever the RR interval was near a multiple of 3 patches, so a clean
    record's largest errors were its heart rate's (rounds now go by beat:
    objectives.anomaly_round_masks); and the kNN embedding was a mean over 125 tokens that one complex
    barely moves (now with the max over the global tokens). Win rates with the prior, on this draw:
    raw/weighted/nll/beat_dev 0.92-1.0, log_var_top 0.67, log_var_mean 0.58, knn 0.58 (on another
    draw, before -> after the fixes: weighted_top and nll_top 0.75 -> 1.0, raw_top 0.67 -> 0.75,
    log_var_top 0.58 -> 0.75, knn 0.50 -> 0.83). Without the prior: knn 1.0, the errors 0.75-1.0, the
    log-variance 0.5-0.67: s is predicted from visible context and neither the span nor a copy of it
    is visible, so it is not asserted there. ``age_gap`` (predicted minus recorded age) is not among
    them: an ectopic complex has no reason to make an ECG look older and these records carry no age
    (it ranked twins at chance, 0.5-0.67); what it is for, an ECG that looks older than its recorded
    age, needs records whose ECG carries age: not tested here."""
    cfg = ModelConfig.from_dict({**tiny_config.to_dict(), "labels": (), "beat_copy": beat_copy})
    rng = np.random.default_rng(0)
    train_x = synthetic_ecgs(rng, 96).signal
    train = Batch(train_x, np.ones((96, 12), bool), r_peaks(train_x))
    model = _pretrained(cfg, train, rng, synthetic_ecgs)

    clean = synthetic_ecgs(rng, 12).signal
    twins = _twins(clean, rng)
    both = np.concatenate([clean, twins])
    scores = record_candidates(model, Batch(both, np.ones((24, 12), bool), r_peaks(both)))
    assert set(scores) == set(ECG_ONLY)  # no recorded age: no age_gap
    wins = {name: float(np.mean(s[12:] > s[:12])) for name, s in scores.items()}
    # Without the prior the log-variance cannot see the span: s is predicted from visible context only,
    # and with neither the span nor a copy of it visible the short run's s is the same for both twins.
    exempt = () if beat_copy else ("log_var_top", "log_var_mean")
    losing = {name: w for name, w in wins.items() if w <= 0.5 and name not in exempt}
    assert not losing, f"candidates at or below chance {losing}; all win rates {wins}"
    assert wins["beat_dev_mean"] == 1.0 and wins["raw_mean"] == 1.0, wins


def test_top_aggregation_ignores_absent_leads_and_knn_is_the_mean_distance_to_the_nearest() -> None:
    cfg = ModelConfig()
    m = torch.zeros(1, 12, 1000)
    m[0, 3, :10] = 5.0  # an absent lead with large values
    m[0, 0, :120] = 1.0
    present = torch.ones(1, 12)
    present[0, 3] = 0.0
    assert aggregate(m, present, "top", cfg.score_top_k).item() == pytest.approx(1.0)
    assert aggregate(m, present, "mean", cfg.score_top_k).item() == pytest.approx(120 / (11 * 1000))
    ref = torch.tensor([[0.0, 0.0], [3.0, 4.0], [30.0, 40.0]])
    assert knn_distance(torch.tensor([[0.0, 0.0]]), ref, 2).item() == pytest.approx(2.5)
    with pytest.raises(ValueError, match="reference embeddings"):
        knn_distance(torch.zeros(1, 2), torch.zeros(0, 2), 5)


def test_score_selection_never_reads_test_records() -> None:
    """A guard: whatever the test rows hold, the choice and its AUROC are those of validation alone."""
    rng = np.random.default_rng(0)
    n = 60
    split = np.array(["train"] * 20 + ["validation"] * 20 + ["test"] * 20)
    abnormal = np.tile([False, True], n // 2)
    cands = {name: rng.normal(size=n) for name in SCORE_CANDIDATES}
    cands["raw_top"] = cands["raw_top"] + 2.0 * abnormal  # the best on validation
    name, value, aurocs = choose_record_score(cands, abnormal, split)
    assert name == "raw_top" and set(aurocs) == set(ECG_ONLY)  # age_gap is never the label-free default
    poisoned = {k: v.copy() for k, v in cands.items()}
    test = split == "test"
    poisoned["knn"][test] = 100.0 * abnormal[test]  # perfect on test, and on training rows too
    poisoned["knn"][split == "train"] = 100.0 * abnormal[split == "train"]
    flipped = abnormal.copy()
    flipped[test] = ~flipped[test]
    assert choose_record_score(poisoned, flipped, split)[:2] == (name, value)
    with pytest.raises(ValueError, match="validation rows"):
        choose_record_score(cands, abnormal, np.array(["test"] * n))


def test_the_served_graph_computes_the_chosen_candidate(
    synthetic_ecgs: Callable[..., Any], tiny_config: ModelConfig
) -> None:
    x = synthetic_ecgs(np.random.default_rng(3), 4, abnormal=True).signal
    data = Batch(x, np.ones((4, 12), bool), r_peaks(x))
    model = with_reference_set(EcgModel(tiny_config), data)
    cands = record_candidates(model, data)
    for name in ("beat_dev_top", "knn", "nll_mean"):
        chosen = with_record_score(model, name).eval()
        assert chosen.cfg.record_score == name
        x_t, lead_mask, beat_start, phase, neighbours = data.inputs(chosen.cfg).torch()
        with torch.no_grad():
            served = InferenceGraph(chosen)(x_t, lead_mask.float(), beat_start, phase, neighbours)[1]
        np.testing.assert_allclose(served.numpy(), cands[name], rtol=1e-5, atol=1e-6)
