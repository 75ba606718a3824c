"""Every size of the network and every constant of its objectives, in one frozen dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Machine measurements the attribute head predicts where an archive has them (EcgRecord.measurements keys).
MEASUREMENTS: tuple[str, ...] = ("hr_bpm", "pr_ms", "qrs_ms", "qt_ms")
# (centre, scale) that bring each regression target to about unit range (ours: adult population norms),
# so no single target dominates the attribute loss.
AGE_NORM = (60.0, 20.0)
MEASUREMENT_NORMS: tuple[tuple[float, float], ...] = (
    (70.0, 20.0),
    (160.0, 40.0),
    (100.0, 25.0),
    (400.0, 50.0),
)
SUPPORTED_FS_HZ = (100, 500)
# Per-point maps of the record-score candidates (rare_ecg.model.scores) and their aggregations.
POINT_MAPS: tuple[str, ...] = ("raw", "weighted", "nll", "log_var", "beat_dev")
AGGREGATIONS: tuple[str, ...] = ("top", "mean")  # mean of the largest score_top_fraction, or plain mean
SCORE_CANDIDATES: tuple[str, ...] = (
    *(f"{m}_{a}" for m in POINT_MAPS for a in AGGREGATIONS),
    "knn",  # distance of the pooled embedding to its nearest reference embeddings
    "age_gap",  # predicted minus recorded age: reads the recorded age, so never the label-free default
)


@dataclass(frozen=True)
class ModelConfig:
    labels: tuple[str, ...] = ()  # the classifier's label vocabulary, in logit order
    fs_hz: int = 100  # the model rate
    window_s: float = 10.0
    n_leads: int = 12
    patch_s: float = 0.08  # divides both the 10 s window and the 0.96 s beat window exactly
    d_model: int = 128
    n_layers: int = 3
    n_heads: int = 4
    mlp_ratio: int = 2
    dropout: float = 0.0
    # Objectives (METHOD.md)
    mask_ratio: float = 0.3  # global view: share of time patches zeroed, per sample
    beat_pre_s: float = 0.28  # local view: beat window from R - 0.28 s ...
    beat_post_s: float = 0.68  # ... to R + 0.68 s
    beat_mask_ratio: float = 0.3  # local view: contiguous share of the beat window zeroed
    # Reconstruction NLLs are averaged over hidden points; visible points count with this weight.
    visible_weight: float = 0.0
    beat_phase: bool = False  # time since / until the nearest R peaks as an input channel pair
    beat_copy: bool = True  # the visible R-aligned twins in the neighbouring beats: input channels and prior
    trend_smooth_s: float = 0.02
    n_measurements: int = len(MEASUREMENTS)
    # Anomaly map
    anomaly_rounds: int = 3  # K shifted patch masks that together hide every patch once
    anomaly_smooth_s: float = 0.03  # Gaussian sigma of the map smoothing
    map_segments: int = 10  # coarse map: 12 leads x this many time segments
    # The record score the inference graph computes (a name of SCORE_CANDIDATES, chosen on validation)
    record_score: str = "weighted_top"
    score_top_fraction: float = 0.01  # "_top" aggregations: the mean of the largest f * C * N values
    knn_k: int = 5  # "knn": mean distance to this many nearest reference embeddings
    n_reference: int = 0  # reference embeddings stored with the model (network.with_references)

    def __post_init__(self) -> None:
        if self.fs_hz not in SUPPORTED_FS_HZ:
            raise ValueError(f"fs_hz={self.fs_hz} is not supported; use one of {SUPPORTED_FS_HZ}")
        for name, length in (("window", self.n_samples), ("beat window", self.beat_len)):
            if length % self.patch_len:
                raise ValueError(
                    f"{name} of {length} samples is not a multiple of the patch ({self.patch_len})"
                )
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_samples % self.map_segments:
            raise ValueError(f"map_segments={self.map_segments} does not divide {self.n_samples} samples")
        if not 0.0 < self.mask_ratio < 1.0 or not 0.0 < self.beat_mask_ratio < 1.0:
            raise ValueError(f"mask ratios must be in (0, 1); got {self.mask_ratio}, {self.beat_mask_ratio}")
        if not 0.0 < self.score_top_fraction <= 1.0:
            raise ValueError(f"score_top_fraction={self.score_top_fraction} must be in (0, 1]")
        if self.record_score not in SCORE_CANDIDATES:
            raise ValueError(f"record_score={self.record_score!r} is not one of {SCORE_CANDIDATES}")
        if self.visible_weight < 0:
            raise ValueError(f"visible_weight={self.visible_weight} must be >= 0")
        if not 1 <= self.anomaly_rounds <= self.n_patches:
            raise ValueError(f"anomaly_rounds={self.anomaly_rounds} must be in [1, {self.n_patches}]")

    @property
    def n_samples(self) -> int:
        return round(self.window_s * self.fs_hz)

    @property
    def patch_len(self) -> int:
        return round(self.patch_s * self.fs_hz)

    @property
    def n_patches(self) -> int:
        return self.n_samples // self.patch_len

    @property
    def score_top_k(self) -> int:
        """Map points averaged into a "_top" record score."""
        return max(1, round(self.score_top_fraction * self.n_leads * self.n_samples))

    @property
    def beat_pre(self) -> int:
        return round(self.beat_pre_s * self.fs_hz)

    @property
    def beat_len(self) -> int:
        return self.beat_pre + round(self.beat_post_s * self.fs_hz)

    @property
    def beat_patches(self) -> int:
        return self.beat_len // self.patch_len

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**{**d, "labels": tuple(d.get("labels", ()))})
