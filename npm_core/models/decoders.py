"""The two NPM networks: shape decoder f_s(s, x) -> SDF and pose decoder f_p(s, p, x) -> dx.

DeepSDF-style MLPs (NPMs; docs/design.md "Networks"): input [codes, PE(x)], `depth` hidden
layers of `width` with ReLU and weight norm, the input concatenated again before layer
`skip` (layer skip-1 outputs width - input width), then a plain linear output: 1 value +
tanh (SDF) or 3 values (displacement, canonical -> posed, model units).

The code part of the first layer (and of the skip layer) does not depend on x, so it is
computed once per code, not once per point: the first/skip weights are split into code
columns and the rest, and W_code @ code enters as a per-code bias. `forward` (training,
batched codes) and `sdf_fn` / `displacement_fn` (mesh extraction and posing: one code, many
points, weights resolved once) share that path; tests pin it against a plain concatenation.

Presets (MODEL_PRESETS): `paper` = the reference sizes; `fast` = ours (the default): 6 hidden
layers of 256, PE 6, shape code 64, pose code 128, the widest net that keeps a training stage
near an hour on 2 CPU cores. The throughput of the candidate sizes is measured by
benchmarks/bench_train.py --candidates.

Must not: know file layouts (layout.py does) or training (train.py does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm


@dataclass
class DecoderConfig:
    width: int = 256
    depth: int = 6  # hidden layers
    code_dim: int = 64  # this decoder's own code (shape code / pose code)
    pe_freqs: int = 6  # NeRF frequencies 2^0 .. 2^(pe_freqs-1)
    skip: int = 3  # input concatenated again before hidden layer `skip` (0-based); 0 = none

    @property
    def pe_dim(self) -> int:
        return 3 + 6 * self.pe_freqs


@dataclass
class ModelConfig:
    shape: DecoderConfig = field(default_factory=DecoderConfig)
    pose: DecoderConfig = field(default_factory=DecoderConfig)


MODEL_PRESETS = {
    "fast": lambda: ModelConfig(DecoderConfig(256, 6, 64, 6, 3), DecoderConfig(256, 6, 128, 6, 3)),  # ours, the default
    "paper": lambda: ModelConfig(
        DecoderConfig(512, 8, 256, 8, 4), DecoderConfig(1024, 8, 256, 8, 4)
    ),  # reference sizes
}


def model_preset(name: str) -> ModelConfig:
    """A fresh ModelConfig of preset `name` (MODEL_PRESETS)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}; expected one of {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]()


def positional_encoding(x: torch.Tensor, n_freq: int) -> torch.Tensor:
    """x [..., 3] model units -> [..., 3 + 6 n_freq]: [pi x, sin(2^k pi x), cos(2^k pi x)], k < n_freq."""
    px = math.pi * x
    f = px[..., None] * (2.0 ** torch.arange(n_freq, device=x.device, dtype=x.dtype))  # [..., 3, n_freq]
    return torch.cat([px, f.sin().flatten(-2), f.cos().flatten(-2)], -1)


class _CodeMLP(nn.Module):
    """MLP on [code, PE(x)] with a skip connection; code terms computed once per code."""

    def __init__(self, cfg: DecoderConfig, code_dim: int, out_dim: int):
        super().__init__()
        if not 0 <= cfg.skip < cfg.depth:
            raise ValueError(f"skip layer {cfg.skip} must be in [0, depth={cfg.depth})")
        self.cfg, self.code_dim = cfg, code_dim
        self.in_dim = code_dim + cfg.pe_dim
        if cfg.skip and cfg.width <= self.in_dim:
            raise ValueError(f"width {cfg.width} must exceed the input width {self.in_dim} for the skip")
        layers = []
        for i in range(cfg.depth):
            d_in = self.in_dim if i == 0 else cfg.width
            d_out = cfg.width - self.in_dim if (cfg.skip and i == cfg.skip - 1) else cfg.width
            layers.append(weight_norm(nn.Linear(d_in, d_out)))
        self.layers = nn.ModuleList(layers)
        self.out = nn.Linear(cfg.width, out_dim)

    def _weights(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Effective (weight, bias) per hidden layer (weight norm resolved) + output layer."""
        return [(l.weight, l.bias) for l in self.layers] + [(self.out.weight, self.out.bias)]

    def _code_terms(self, weights, code: torch.Tensor):
        """code [..., Dc] -> the code columns' contribution (+ bias) at layer 0 and at the skip layer."""
        D = self.code_dim
        W0, b0 = weights[0]
        t0 = F.linear(code, W0[:, :D], b0)
        if not self.cfg.skip:
            return t0, None
        Ws, bs = weights[self.cfg.skip]
        h = Ws.shape[1] - self.in_dim  # the skip layer's input is [h, code, PE(x)]
        return t0, F.linear(code, Ws[:, h : h + D], bs)

    def _run(self, weights, terms, pe: torch.Tensor) -> torch.Tensor:
        """pe [..., P] -> raw output [..., out]; `terms` from _code_terms, broadcastable over points."""
        D, t0, ts = self.code_dim, terms[0], terms[1]
        W, _ = weights[0]
        x = torch.relu(F.linear(pe, W[:, D:]) + t0)
        for i in range(1, self.cfg.depth):
            W, b = weights[i]
            if self.cfg.skip and i == self.cfg.skip:
                h = W.shape[1] - self.in_dim
                x = torch.relu(F.linear(x, W[:, :h]) + F.linear(pe, W[:, h + D :]) + ts)
            else:
                x = torch.relu(F.linear(x, W, b))
        W, b = weights[-1]
        return F.linear(x, W, b)

    def _forward(self, code: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """code [B, Dc]; x [B, N, 3] -> [B, N, out]."""
        w = self._weights()
        t0, ts = self._code_terms(w, code)
        return self._run(
            w, (t0[:, None], None if ts is None else ts[:, None]), positional_encoding(x, self.cfg.pe_freqs)
        )

    def _fn(self, code: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """code [Dc] -> callable x [N, 3] -> [N, out], weights and code terms computed once."""
        w = [(W.detach(), b.detach()) for W, b in self._weights()]
        terms = self._code_terms(w, code.detach())
        pe_freqs = self.cfg.pe_freqs
        return lambda x: self._run(w, terms, positional_encoding(x, pe_freqs))


class ShapeDecoder(_CodeMLP):
    """f_s(s, x) -> SDF in (-1, 1) (tanh), negative inside; x canonical, model units."""

    def __init__(self, cfg: DecoderConfig):
        super().__init__(cfg, cfg.code_dim, 1)

    def forward(self, shape_code: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """shape_code [B, Ds]; x [B, N, 3] canonical -> sdf [B, N]."""
        return torch.tanh(self._forward(shape_code, x))[..., 0]

    def sdf_fn(self, shape_code: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """shape_code [Ds] -> callable points [N, 3] canonical -> sdf [N] (for mesh extraction)."""
        f = self._fn(shape_code)
        return lambda x: torch.tanh(f(x))[..., 0]


class PoseDecoder(_CodeMLP):
    """f_p(s, p, x) -> dx [.., 3]: canonical point x moves to x + dx in pose p (model units)."""

    def __init__(self, cfg: DecoderConfig, shape_code_dim: int):
        super().__init__(cfg, shape_code_dim + cfg.code_dim, 3)
        self.shape_code_dim = shape_code_dim

    def forward(self, shape_code: torch.Tensor, pose_code: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """shape_code [B, Ds]; pose_code [B, Dp]; x [B, N, 3] canonical -> dx [B, N, 3]."""
        return self._forward(torch.cat([shape_code, pose_code], -1), x)

    def displacement_fn(
        self, shape_code: torch.Tensor, pose_code: torch.Tensor
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """shape_code [Ds], pose_code [Dp] -> callable points [N, 3] canonical -> dx [N, 3]."""
        return self._fn(torch.cat([shape_code, pose_code], -1))


def _pe_columns(old_freqs: int, new_freqs: int) -> list[int]:
    """Where each PE column of `old_freqs` frequencies sits among those of `new_freqs`
    (positional_encoding's layout: [pi x (3), sin (axis-major), cos (axis-major)])."""
    cols = list(range(3))
    for part in range(2):
        base = 3 + part * 3 * new_freqs
        cols += [base + a * new_freqs + k for a in range(3) for k in range(old_freqs)]
    return cols


def grow_shape_decoder(
    old: ShapeDecoder, width: int | None = None, depth: int | None = None, pe_freqs: int | None = None
) -> ShapeDecoder:
    """A larger shape decoder that computes exactly what `old` computes, to train on from there
    with the codes kept (npm_core.train.tune_shape). Old units keep their weights; new units get
    the default init for their inputs and zero weight in every old unit and the output; new PE
    columns weigh 0; new hidden layers are appended after the last one as identities (their
    inputs are ReLU outputs, so ReLU(I h) = h). More PE frequencies widen the input, and the
    layer before the skip keeps its units only if `width` grows by as much (the default)."""
    cfg = DecoderConfig(**vars(old.cfg))
    cfg.pe_freqs = pe_freqs or cfg.pe_freqs
    added_inputs = 6 * (cfg.pe_freqs - old.cfg.pe_freqs)
    cfg.width = width or old.cfg.width + added_inputs
    cfg.depth = depth or cfg.depth
    if cfg.pe_freqs < old.cfg.pe_freqs or cfg.depth < old.cfg.depth or cfg.width - added_inputs < old.cfg.width:
        raise ValueError(
            f"cannot grow a shape decoder of width {old.cfg.width}, depth {old.cfg.depth}, PE {old.cfg.pe_freqs} into "
            f"width {cfg.width}, depth {cfg.depth}, PE {cfg.pe_freqs}: none may shrink, and the width must grow "
            f"by the {added_inputs} new PE inputs or more"
        )
    new = ShapeDecoder(cfg)
    D, pe = old.code_dim, _pe_columns(old.cfg.pe_freqs, cfg.pe_freqs)
    with torch.no_grad():
        for i, layer in enumerate(new.layers):
            g_n, v_n = layer.parametrizations.weight.original0, layer.parametrizations.weight.original1
            if i >= len(old.layers):  # appended identity
                v_n.copy_(torch.eye(*v_n.shape))
                g_n.fill_(1.0)
                layer.bias.zero_()
                continue
            lo = old.layers[i]
            g_o, v_o = lo.parametrizations.weight.original0, lo.parametrizations.weight.original1
            rows = v_o.shape[0]
            if i == 0:  # input [code, PE]
                cols = list(range(D)) + [D + c for c in pe]
            elif cfg.skip and i == cfg.skip:  # input [h, code, PE]
                h_old, h_new = v_o.shape[1] - old.in_dim, v_n.shape[1] - new.in_dim
                cols = list(range(h_old)) + [h_new + j for j in range(D)] + [h_new + D + c for c in pe]
            else:
                cols = list(range(v_o.shape[1]))
            v_n[:rows] = 0.0  # old units see their old inputs only (same row norm, so the same weight)
            v_n[:rows, cols] = v_o
            g_n[:rows] = g_o
            g_n[rows:] = v_n[rows:].norm(dim=1, keepdim=True)
            layer.bias[:rows] = lo.bias
        new.out.weight.zero_()
        new.out.weight[:, : old.out.weight.shape[1]] = old.out.weight
        new.out.bias.copy_(old.out.bias)
    return new.eval()


def build_decoders(cfg: ModelConfig) -> tuple[ShapeDecoder, PoseDecoder]:
    return ShapeDecoder(cfg.shape), PoseDecoder(cfg.pose, cfg.shape.code_dim)


def decoder_flops_per_point(dec: _CodeMLP) -> int:
    """Multiply-adds x 2 per point of the per-point part (code columns excluded: they are per code)."""
    total = 0
    for i, (W, _) in enumerate(dec._weights()):
        cols = W.shape[1]
        if i == 0 or (dec.cfg.skip and i == dec.cfg.skip):
            cols -= dec.code_dim
        total += 2 * W.shape[0] * cols
    return total
