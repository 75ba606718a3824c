"""Model behaviour after short real training runs on CPU: losses fall on real PTB-XL records, the
anomaly score separates and localizes injected abnormalities, fine-tuning learns, checkpoints resume."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import wfdb

from rare_ecg.metrics.ranking import auroc
from rare_ecg.model.anomaly import anomaly_map
from rare_ecg.model.config import ModelConfig
from rare_ecg.model.network import EcgModel, with_labels
from rare_ecg.model.objectives import ClassifierLoss
from rare_ecg.model.training import (
    Batch,
    FinetuneSettings,
    finetune_step,
    load_checkpoint,
    make_optimizer,
    pretrain_losses,
    pretrain_step,
    save_checkpoint,
)
from rare_ecg.signals.preprocess import preprocess
from tests.model.helpers import r_peaks


def _pretrain_config(tiny: ModelConfig, **changes: object) -> ModelConfig:
    return ModelConfig.from_dict({**tiny.to_dict(), "labels": (), **changes})


def _ptbxl_batch(shared_data: Path, n: int, cfg: ModelConfig) -> Batch:
    root = shared_data / "ptbxl-sample"
    with open(root / "ptbxl_database.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:n]
    signals, masks, ages, sexes = [], [], [], []
    for row in rows:
        sig, fields = wfdb.rdsamp(str(root / row["filename_lr"]))
        pre = preprocess(sig.T, fields["fs"], list(fields["sig_name"]), target_fs_hz=cfg.fs_hz)
        signals.append(pre.signal[0])
        masks.append(pre.lead_mask)
        ages.append(float(row["age"]) if row["age"] else np.nan)
        sexes.append(float(row["sex"]))  # PTB-XL: 0 male, 1 female, as the model's target
    signal = np.stack(signals)
    return Batch(
        signal=signal,
        lead_mask=np.stack(masks),
        beat_positions=r_peaks(signal, cfg.fs_hz),
        age=np.asarray(ages, dtype=np.float32),
        sex=np.asarray(sexes, dtype=np.float32),
    )


def _subset(batch: Batch, idx: np.ndarray) -> Batch:
    return batch.subset(idx)


def _eval_terms(model: EcgModel, batch: Batch) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        terms = pretrain_losses(model, batch, torch.Generator().manual_seed(999))
    return {k: float(v) for k, v in terms.items()}


@pytest.mark.timeout(300)
def test_every_pretraining_term_falls_on_real_ptbxl_records(
    shared_data: Path, tiny_config: ModelConfig
) -> None:
    cfg = _pretrain_config(tiny_config)
    data = _ptbxl_batch(shared_data, 64, cfg)
    model = EcgModel(cfg)
    optimizer = make_optimizer(model, lr=3e-3)
    before = _eval_terms(model, data)
    rng = np.random.default_rng(0)
    for step in range(60):
        pretrain_step(model, optimizer, _subset(data, rng.choice(64, 16, replace=False)), seed=step)
    after = _eval_terms(model, data)
    for term in ("global", "local", "trend", "age", "sex"):
        assert after[term] < before[term], (term, before[term], after[term])
    # PTB-XL has no machine measurements: the term is masked out entirely, never imputed.
    assert before["measurements"] == after["measurements"] == 0.0


@pytest.mark.timeout(300)
def test_anomaly_score_separates_and_the_map_localizes_injected_abnormalities(
    synthetic_ecgs: Callable[..., Any], tiny_config: ModelConfig
) -> None:
    cfg = _pretrain_config(tiny_config, record_score="weighted_top")
    rng = np.random.default_rng(0)
    train = synthetic_ecgs(rng, 128).signal
    normal = synthetic_ecgs(rng, 30).signal
    abnormal = synthetic_ecgs(rng, 30, abnormal=True)
    data = Batch(train, np.ones((128, 12), dtype=bool), r_peaks(train))
    model = EcgModel(cfg)
    optimizer = make_optimizer(model, lr=3e-3)
    for step in range(80):
        pretrain_step(model, optimizer, data.subset(rng.choice(128, 16, replace=False)), seed=step)

    test = np.concatenate([normal, abnormal.signal])
    model.eval()
    inputs = Batch(test, np.ones((60, 12), dtype=bool), r_peaks(test)).inputs(cfg)
    with torch.no_grad():
        result = anomaly_map(model, *inputs.torch())
    is_abnormal = np.r_[np.zeros(30), np.ones(30)]
    assert auroc(is_abnormal, result.score.numpy()) > 0.8
    peak_time = result.point_map.numpy()[30:].sum(1).argmax(1)
    spans = abnormal.abnormal_span
    inside = [start <= t < end for t, (start, end) in zip(peak_time, spans, strict=True)]
    assert np.mean(inside) >= 0.8
    # The coarse map puts the abnormal record's largest segment where the abnormality is.
    seg_len = cfg.n_samples // cfg.map_segments
    seg_peak = result.coarse_map.numpy()[30:].sum(1).argmax(1)
    near = [
        start // seg_len - 1 <= s <= (end - 1) // seg_len + 1
        for s, (start, end) in zip(seg_peak, spans, strict=True)
    ]
    assert np.mean(near) >= 0.8


@pytest.mark.timeout(300)
@pytest.mark.parametrize("loss", [ClassifierLoss(), ClassifierLoss(kind="bce")])
def test_fine_tuning_learns_a_label(
    loss: ClassifierLoss, synthetic_ecgs: Callable[..., Any], tiny_config: ModelConfig
) -> None:
    """Label A = the record holds an ectopic complex; B and C are noise. A short run from scratch
    ranks A above chance and keeps the auxiliary reconstruction terms in the step's report."""
    rng = np.random.default_rng(1)
    normal = synthetic_ecgs(rng, 48).signal
    ectopic = synthetic_ecgs(rng, 48, abnormal=True).signal
    signal = np.concatenate([normal, ectopic])
    labels = np.zeros((96, 3), dtype=np.float32)
    labels[48:, 0] = 1
    labels[:, 1] = rng.random(96) < 0.3
    data = Batch(
        signal=signal,
        lead_mask=np.ones((96, 12), dtype=bool),
        beat_positions=r_peaks(signal),
        labels=labels,
    )
    model = with_labels(EcgModel(_pretrain_config(tiny_config)), ("A", "B", "C"))
    optimizer = make_optimizer(model, lr=3e-3)
    settings = FinetuneSettings(loss=loss)
    history = []
    for step in range(40):
        report = finetune_step(
            model, optimizer, _subset(data, rng.choice(96, 16, replace=False)), step, settings
        )
        history.append(report["classification"])
    assert {"global", "local", "trend"} <= report.keys()
    assert np.mean(history[-10:]) < np.mean(history[:10])
    model.eval()
    with torch.no_grad():
        x, lead_mask, beat_start, phase, _ = data.inputs(model.cfg).torch()
        probs = torch.sigmoid(model(x, lead_mask, beat_start, phase).logits)
    assert auroc(labels[:, 0], probs[:, 0].numpy()) > 0.8


def test_checkpoint_resumes_exactly(
    tmp_path: Path, synthetic_ecgs: Callable[..., Any], tiny_config: ModelConfig
) -> None:
    cfg = _pretrain_config(tiny_config)
    signal = synthetic_ecgs(np.random.default_rng(2), 8).signal
    batch = Batch(signal, np.ones((8, 12), dtype=bool), r_peaks(signal))
    model = EcgModel(cfg)
    optimizer = make_optimizer(model, lr=1e-3)
    for step in range(2):
        pretrain_step(model, optimizer, batch, seed=step)
    path = save_checkpoint(tmp_path / "ckpt.pt", model, optimizer, step=2)
    resumed = load_checkpoint(path)
    assert resumed.step == 2 and resumed.model.cfg == cfg
    assert resumed.optimizer.param_groups[0]["lr"] == 1e-3
    for step in (2, 3):
        a = pretrain_step(model, optimizer, batch, seed=step)
        b = pretrain_step(resumed.model, resumed.optimizer, batch, seed=step)
        assert a == pytest.approx(b, rel=1e-6)
    for (name, p), q in zip(model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, msg=name)
    with pytest.raises(ValueError, match="labels"):
        finetune_step(model, optimizer, batch, 0)
