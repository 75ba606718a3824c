"""The network: one shared transformer backbone over three views, their fusion, and every head.

Views (METHOD.md): the global 10 s signal (patch-masked in pretraining), the local beat window
around an R peak (span-masked), and the trend (unmasked). Shapes: B batch, C = 12 leads, N samples,
P patches of ``patch_len`` samples, W beat-window samples, D = d_model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rare_ecg.model.config import AGE_NORM, MEASUREMENT_NORMS, ModelConfig
from rare_ecg.model.objectives import extract_beat, trend_view

GLOBAL, LOCAL, TREND = 0, 1, 2
LOG_VAR_LIMIT = 10.0  # |s| bound: keeps exp(-s) finite in float32 early in training and under ONNX


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:  # (B, T, D), (B, S, D)
        b, t, d = x.shape
        h = self.n_heads
        q = self.q(x).reshape(b, t, h, d // h).transpose(1, 2)  # (B, h, T, D/h)
        k, v = self.kv(ctx).reshape(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)  # 2 x (B, h, S, D/h)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block; given ``ctx`` it cross-attends to it (the fusion of two views)."""

    def __init__(self, cfg: ModelConfig, cross: bool = False) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        # Only fusion blocks own a context norm: a parameter no loss reaches would break DDP.
        self.ln_ctx = nn.LayerNorm(cfg.d_model) if cross else None
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model),
            nn.Dropout(cfg.dropout),
        )

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        if (ctx is None) != (self.ln_ctx is None):
            raise ValueError("a fusion block (cross=True) needs a context; a self-attention block takes none")
        h = self.ln1(x)
        x = x + self.attn(h, h if ctx is None or self.ln_ctx is None else self.ln_ctx(ctx))
        return x + self.mlp(self.ln2(x))


def patchify(x: torch.Tensor, patch_len: int) -> torch.Tensor:  # (B, C, N) -> (B, P, C * patch_len)
    b, c, n = x.shape
    return x.reshape(b, c, n // patch_len, patch_len).permute(0, 2, 1, 3).reshape(b, n // patch_len, -1)


def unpatchify(t: torch.Tensor, channels: int) -> torch.Tensor:  # (B, P, C * patch_len) -> (B, C, N)
    b, p, _ = t.shape
    return t.reshape(b, p, channels, -1).permute(0, 2, 1, 3).reshape(b, channels, -1)


@dataclass
class Outputs:
    x_hat: torch.Tensor  # (B, C, N) global reconstruction
    x_log_var: torch.Tensor  # (B, C, N) its log-variance s
    beat: torch.Tensor  # (B, C, W) the unmasked beat window (the local target)
    beat_hidden: torch.Tensor  # (B, W) bool, the beat window's hidden samples (the sample's one mask)
    beat_hat: torch.Tensor  # (B, C, W)
    beat_log_var: torch.Tensor  # (B, C, W)
    trend_hat: torch.Tensor  # (B, C, N) raw signal reconstructed from the trend and global latents
    local_tokens: torch.Tensor  # (B, W / patch_len, D) encoded beat, before fusion
    embedding: torch.Tensor  # (B, 3 * D) pooled representation (heads)
    knn_embedding: (
        torch.Tensor
    )  # (B, 4 * D) the embedding and the max over the fused global tokens (kNN score)
    age: torch.Tensor  # (B,) years
    sex_logit: torch.Tensor  # (B,) logit of female
    measurements: torch.Tensor  # (B, M) hr bpm, pr / qrs / qt ms
    logits: torch.Tensor  # (B, L) one per label of cfg.labels


class EcgModel(nn.Module):
    reference: torch.Tensor  # (n_reference, 4 * D) buffer of knn embeddings

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, c, p = cfg.d_model, cfg.n_leads, cfg.patch_len
        # A patch token sees its samples, which of them are hidden (an extra "visible" channel) and the
        # auxiliary channels of aux_channels (beat phase, neighbouring-beat copy) where enabled.
        self.n_aux = (2 if cfg.beat_phase else 0) + (2 * c + 2 if cfg.beat_copy else 0)
        self.embed = nn.Linear((c + 1 + self.n_aux) * p, d)
        self.lead_embed = nn.Linear(c, d, bias=False)  # which leads are present
        self.view_embed = nn.Parameter(torch.zeros(3, d))
        self.pos_global = nn.Parameter(0.02 * torch.randn(cfg.n_patches, d))
        self.pos_local = nn.Parameter(0.02 * torch.randn(cfg.beat_patches, d))
        self.backbone = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)])
        self.ln_backbone = nn.LayerNorm(d)
        self.fuse_global = Block(cfg, cross=True)  # global tokens attend to the beat
        self.fuse_local = Block(cfg, cross=True)  # beat tokens attend to the global signal
        self.fuse_trend = Block(cfg, cross=True)  # global tokens attend to the trend
        self.global_head = nn.Linear(d, 2 * c * p)  # signal and log-variance per patch
        self.local_head = nn.Linear(d, 2 * c * p)
        self.trend_head = nn.Linear(d, c * p)
        self.ln_repr = nn.LayerNorm(3 * d)
        self.attribute_head = nn.Linear(3 * d, 2 + cfg.n_measurements)  # age, sex logit, measurements
        self.classifier = nn.Linear(3 * d, len(cfg.labels)) if cfg.labels else None
        if cfg.beat_copy:  # the decoders start at the copy prior exactly (a zero correction, s = 0)
            for head in (self.global_head, self.local_head):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        # Embeddings of reference records (training normals) for the "knn" record score.
        self.register_buffer("reference", torch.zeros(cfg.n_reference, 4 * d))
        norms = torch.tensor([AGE_NORM, (0.0, 1.0), *MEASUREMENT_NORMS[: cfg.n_measurements]])
        self.register_buffer("attr_centre", norms[:, 0].clone(), persistent=False)
        self.register_buffer("attr_scale", norms[:, 1].clone(), persistent=False)

    def aux_channels(
        self,
        x: torch.Tensor,  # (B, C, N)
        visible: torch.Tensor,  # (B, N) 1 = visible
        lead_mask: torch.Tensor,  # (B, C)
        beat_phase: torch.Tensor | None,  # (B, 2, N)
        beat_neighbours: torch.Tensor | None,  # (B, 2, N)
    ) -> torch.Tensor | None:
        """(B, n_aux, N) channels beside the signal: with cfg.beat_phase the time since / until the
        nearest R peaks; with cfg.beat_copy, for every sample, the values of its R-aligned twins in the
        previous and next beats (2 x C channels) and whether each twin is visible (2 channels). A
        hidden twin enters as zero: the copy reads visible samples only. Without ``beat_neighbours``
        no sample has a twin (the copy channels and the prior are zero)."""
        parts: list[torch.Tensor] = []
        if self.cfg.beat_phase:
            if beat_phase is None:
                raise ValueError("this model takes a beat_phase input (cfg.beat_phase=True); got None")
            parts.append(beat_phase.to(x.dtype))
        if self.cfg.beat_copy:
            b, c, n = x.shape
            if beat_neighbours is None:  # no R peaks known: every sample is its own twin (no copy)
                beat_neighbours = torch.arange(n, device=x.device).expand(b, 2, n)
            idx = beat_neighbours.long()
            own = torch.arange(n, device=x.device)[None, :]
            xm = x * lead_mask.to(x.dtype)[:, :, None]
            values, flags = [], []
            for j in range(2):
                ok = visible.gather(1, idx[:, j]) * (idx[:, j] != own).to(x.dtype)  # (B, N)
                values.append(xm.gather(2, idx[:, j : j + 1].expand(b, c, n)) * ok[:, None, :])
                flags.append(ok[:, None, :])
            parts.extend(values + flags)
        return torch.cat(parts, dim=1) if parts else None

    def copy_prior(self, aux: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        """(B, C, n) the mean of the visible R-aligned twins (0 where neither is visible), read from the
        auxiliary channels; with cfg.beat_copy the decoders predict a correction to it (ours: the
        network starts from the neighbouring-beat copy instead of having to learn to copy)."""
        if not self.cfg.beat_copy or aux is None:
            return torch.zeros_like(like)
        c = self.cfg.n_leads
        p0 = 2 if self.cfg.beat_phase else 0
        prev, nxt = aux[:, p0 : p0 + c], aux[:, p0 + c : p0 + 2 * c]
        flags = aux[:, p0 + 2 * c : p0 + 2 * c + 2]
        return (prev + nxt) / flags.sum(1, keepdim=True).clamp_min(1.0)

    def encode(
        self,
        x: torch.Tensor,
        visible: torch.Tensor,
        lead_mask: torch.Tensor,
        view: int,
        aux: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, C, n) signal, (B, n) visible-sample mask, (B, C) lead mask, (B, n_aux, n) auxiliary
        channels -> (B, n / patch_len, D). Hidden samples and absent leads enter as exact zeros."""
        vis = visible.to(x.dtype)[:, None, :]
        lm = lead_mask.to(x.dtype)
        parts = [x * vis * lm[:, :, None], vis]
        if self.n_aux:
            if aux is None or aux.shape[1] != self.n_aux:
                raise ValueError(f"this model takes {self.n_aux} auxiliary channels (aux_channels)")
            parts.append(aux)
        tokens = self.embed(patchify(torch.cat(parts, dim=1), self.cfg.patch_len))
        pos = self.pos_local if view == LOCAL else self.pos_global
        tokens = tokens + pos + self.view_embed[view] + self.lead_embed(lm)[:, None, :]
        for block in self.backbone:
            tokens = block(tokens)
        return self.ln_backbone(tokens)

    def encode_beat(
        self,
        x: torch.Tensor,
        lead_mask: torch.Tensor,
        beat_start: torch.Tensor,
        hidden: torch.Tensor | None,
        aux: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The beat window (B, C, W), its hidden samples (B, W) and its tokens. ``hidden`` (B, N) is the
        sample's one mask (True = hidden) over the whole signal; the window shows exactly what it shows."""
        w = self.cfg.beat_len
        beat = extract_beat(x, beat_start, w)
        beat_hidden = (
            torch.zeros_like(beat[:, 0], dtype=torch.bool)
            if hidden is None
            else extract_beat(hidden[:, None, :].to(x.dtype), beat_start, w)[:, 0] > 0.5
        )
        beat_aux = None if aux is None else extract_beat(aux, beat_start, w)
        tokens = self.encode(beat, (~beat_hidden).to(x.dtype), lead_mask, LOCAL, beat_aux)
        return beat, beat_hidden, tokens

    def signal_and_log_var(self, head_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A decoder's (B, T, 2 * C * patch_len) output -> signal and log-variance s, each (B, C, T * patch_len)."""
        x_hat, log_var = unpatchify(head_out, 2 * self.cfg.n_leads).chunk(2, dim=1)
        return x_hat, log_var.clamp(-LOG_VAR_LIMIT, LOG_VAR_LIMIT)

    def reconstruct(
        self,
        x: torch.Tensor,
        lead_mask: torch.Tensor,
        beat_start: torch.Tensor,
        hidden: torch.Tensor,
        beat_phase: torch.Tensor | None = None,
        beat_neighbours: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Global reconstruction and log-variance (B, C, N) under one sample mask ``hidden`` (B, N),
        shared by the global patches and the beat window; the trend view takes no part in it."""
        visible = (~hidden).to(x.dtype)
        aux = self.aux_channels(x, visible, lead_mask, beat_phase, beat_neighbours)
        g = self.encode(x, visible, lead_mask, GLOBAL, aux)
        _, _, local = self.encode_beat(x, lead_mask, beat_start, hidden, aux)
        x_hat, log_var = self.signal_and_log_var(self.global_head(self.fuse_global(g, local)))
        return x_hat + self.copy_prior(aux, x), log_var

    def forward(
        self,
        x: torch.Tensor,  # (B, C, N) canonical leads at cfg.fs_hz
        lead_mask: torch.Tensor,  # (B, C) True / 1 where the lead is present
        beat_start: torch.Tensor,  # (B,) first sample of the beat window (R peak - beat_pre)
        beat_phase: torch.Tensor | None = None,  # (B, 2, N) rare_ecg.model.inputs (cfg.beat_phase)
        hidden: torch.Tensor | None = None,  # (B, N) True = sample hidden from every view (pretraining)
        beat_neighbours: torch.Tensor | None = None,  # (B, 2, N) rare_ecg.model.inputs (cfg.beat_copy)
    ) -> Outputs:
        cfg = self.cfg
        visible = torch.ones_like(x[:, 0]) if hidden is None else (~hidden).to(x.dtype)
        aux = self.aux_channels(x, visible, lead_mask, beat_phase, beat_neighbours)
        g = self.encode(x, visible, lead_mask, GLOBAL, aux)  # (B, P, D)
        beat, beat_hidden, local = self.encode_beat(x, lead_mask, beat_start, hidden, aux)
        # The trend is unmasked: it reconstructs the signal through its own head and feeds the pooled
        # representation, never the global reconstruction of hidden points.
        trend = self.encode(
            trend_view(x, cfg.fs_hz, cfg.trend_smooth_s), torch.ones_like(visible), lead_mask, TREND, aux
        )

        g_local = self.fuse_global(g, local)
        local_g = self.fuse_local(local, g)
        g_trend = self.fuse_trend(g, trend)
        x_hat, x_log_var = self.signal_and_log_var(self.global_head(g_local))
        beat_hat, beat_log_var = self.signal_and_log_var(self.local_head(local_g))
        prior = self.copy_prior(aux, x)
        x_hat = x_hat + prior
        beat_hat = beat_hat + extract_beat(prior, beat_start, cfg.beat_len)

        z = self.ln_repr(torch.cat([g_local.mean(1), local_g.mean(1), g_trend.mean(1)], dim=-1))  # (B, 3D)
        # The kNN score also sees the most extreme global token: one abnormal complex changes a few of
        # the P tokens and barely moves their mean (measured on synthetic twins: tests/model/test_model_scores).
        peak = F.layer_norm(g_local.amax(1), (cfg.d_model,))
        attrs = self.attr_centre + self.attr_scale * self.attribute_head(z)
        logits = self.classifier(z) if self.classifier is not None else z.new_zeros(z.shape[0], 0)
        return Outputs(
            x_hat=x_hat,
            x_log_var=x_log_var,
            beat=beat,
            beat_hidden=beat_hidden,
            beat_hat=beat_hat,
            beat_log_var=beat_log_var,
            trend_hat=unpatchify(self.trend_head(g_trend), cfg.n_leads),
            local_tokens=local,
            embedding=z,
            knn_embedding=torch.cat([z, peak], dim=-1),
            age=attrs[:, 0],
            sex_logit=attrs[:, 1],
            measurements=attrs[:, 2:],
            logits=logits,
        )


def with_labels(pretrained: EcgModel, labels: tuple[str, ...]) -> EcgModel:
    """A fine-tuning model over ``labels`` that starts from every pretrained weight (new classifier)."""
    # the encoder's knn references live in its embedding, which fine-tuning moves: not carried over
    cfg = ModelConfig.from_dict({**pretrained.cfg.to_dict(), "labels": labels, "n_reference": 0})
    model = EcgModel(cfg)
    state = {
        k: v
        for k, v in pretrained.state_dict().items()
        if not k.startswith("classifier.") and k != "reference"
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not (k.startswith("classifier.") or k == "reference") for k in missing):
        raise ValueError(f"pretrained weights do not fit: missing {missing}, unexpected {unexpected}")
    return model


def with_references(model: EcgModel, embeddings: torch.Tensor) -> EcgModel:
    """The same model carrying ``embeddings`` (R, 4 * D, Outputs.knn_embedding) as its reference set for
    the "knn" score."""
    cfg = ModelConfig.from_dict({**model.cfg.to_dict(), "n_reference": int(embeddings.shape[0])})
    out = EcgModel(cfg)
    state = {k: v for k, v in model.state_dict().items() if k != "reference"}
    out.load_state_dict({**state, "reference": embeddings.detach().to(torch.float32)})
    return out
