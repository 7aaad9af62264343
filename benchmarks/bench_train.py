"""Training and decoder-inference throughput: our `fast` preset vs the reference (`paper`) sizes.

Prints markdown tables in one run:
  1. this machine's float32 matmul GFLOP/s (torch.mm), the yardstick for the rest;
  2. training throughput per stage and preset, through npm_core.train itself (sampling, forward,
     backward, Adam; second epoch timed): points/s, achieved GFLOP/s (3 x forward FLOPs) and
     the projected time of a whole stage on the default dataset (256 identities, 5592 frames);
  3. decoder inference (sdf_fn / displacement_fn, inference mode, 16k-point chunks): points/s,
     FLOPs per point (2 * sum in*out over layers, code columns excluded: they are per code),
     achieved GFLOP/s and its ratio to torch.mm;
  4. with --candidates, the `fast` sizes that were measured to choose it.
Points per sample are capped at --points (default 8192) when timing the `paper` presets (their
50k-point steps take minutes); throughput per point hardly depends on it at these sizes.

    python benchmarks/bench_train.py [--candidates] [--points 8192] [--out benchmarks/results/train_cpu.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from npm_core.data.samples import FlowSamples, ShapeSamples  # noqa: E402
from npm_core.models.decoders import (  # noqa: E402
    DecoderConfig,
    ModelConfig,
    PoseDecoder,
    ShapeDecoder,
    decoder_flops_per_point,
    model_preset,
)
from npm_core.train import pose_preset, shape_preset, train_pose, train_shape  # noqa: E402

DEFAULT_IDENTITIES, DEFAULT_FRAMES = 256, 5592  # training identities / frames of the default data config


def mm_gflops(n=2048, m=None, k=None, repeats=10, trials=5) -> float:
    """Best of `trials` timings of `repeats` float32 [m,k] @ [k,n] products."""
    m, k = m or n, k or n
    a, b = torch.randn(m, k), torch.randn(k, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(trials):
        t = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        best = max(best, 2 * m * k * n * repeats / (time.perf_counter() - t) / 1e9)
    return best


def synthetic_shapes(I, N) -> ShapeSamples:
    pts = torch.rand(I, N, 3) - 0.5
    return ShapeSamples(pts, pts.norm(dim=-1) - 0.3, int(0.7 * N))


def synthetic_flow(I, T, S) -> FlowSamples:
    g = torch.Generator().manual_seed(0)
    V, F = 600, 1000
    canon = torch.rand(I, V, 3, generator=g) - 0.5
    frame_shape = torch.arange(T) % I
    posed = canon[frame_shape] + 0.01 * torch.randn(T, V, 3, generator=g)
    bary = torch.rand(I, S, 3, generator=g)
    return FlowSamples(
        canon,
        posed,
        frame_shape,
        torch.randint(0, V, (F, 3), generator=g),
        torch.randint(0, F, (I, S), generator=g),
        bary / bary.sum(-1, keepdim=True),
        0.01 * torch.rand(I, S, generator=g),
        (torch.arange(S) >= S // 2).long(),
    )


def train_rate(stage, model_cfg, cfg) -> float:
    """Points/s of the second epoch (3 steps) of a real training run on synthetic samples."""
    events = []
    cfg.epochs, cfg.log_every_s = 2, 1e9
    if stage == "shape":
        train_shape(
            synthetic_shapes(3 * cfg.batch_shapes, cfg.points_per_shape * 2), cfg, model_cfg, progress=events.append
        )
    else:
        flow = synthetic_flow(2, 3 * cfg.batch_frames, cfg.points_per_frame * 2)
        train_pose(flow, None, torch.zeros(2, model_cfg.shape.code_dim), cfg, model_cfg, progress=events.append)
    return [e for e in events if e.kind == "epoch"][-1].samples_per_s


def infer_rate(fn, n=1 << 16, chunk=1 << 14, repeats=3) -> float:
    x = torch.rand(n, 3) - 0.5
    with torch.inference_mode():
        fn(x[:chunk])
        t = time.perf_counter()
        for _ in range(repeats):
            for s in range(0, n, chunk):
                fn(x[s : s + chunk])
    return n * repeats / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=8192, help="cap on points per sample when timing presets")
    ap.add_argument("--candidates", action="store_true", help="also time the candidate fast sizes")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    lines = []

    def emit(s=""):
        print(s, flush=True)
        lines.append(s)

    emit(f"`python benchmarks/bench_train.py{' --candidates' if args.candidates else ''}`")
    emit()
    emit(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, float32; training lines print per epoch above"
    )
    emit()
    peak = mm_gflops(2048)
    layer = mm_gflops(256, m=16384, k=256)
    emit("## torch.mm float32")
    emit()
    emit("| shape | GFLOP/s |")
    emit("|---|---|")
    emit(f"| 2048x2048 @ 2048x2048 (used as 'mm' below) | {peak:.1f} |")
    emit(f"| 16384x256 @ 256x256 (one fast-decoder layer) | {layer:.1f} |")
    emit()

    rows = []
    for preset in ("fast", "paper"):
        mc = model_preset(preset)
        for stage in ("shape", "pose"):
            if stage == "shape":
                cfg, d, dec = shape_preset(preset), mc.shape, ShapeDecoder(mc.shape)
                full, items = cfg.points_per_shape, DEFAULT_IDENTITIES
                cfg.points_per_shape = min(full, args.points)
                batch, pts = cfg.batch_shapes, cfg.points_per_shape
            else:
                cfg, d, dec = pose_preset(preset), mc.pose, PoseDecoder(mc.pose, mc.shape.code_dim)
                full, items = cfg.points_per_frame, DEFAULT_FRAMES
                cfg.points_per_frame = min(full, args.points)
                batch, pts = cfg.batch_frames, cfg.points_per_frame
            epochs = cfg.epochs
            rate = train_rate(stage, mc, cfg)
            gf = 3 * decoder_flops_per_point(dec) * rate / 1e9
            hours = items * full * epochs / rate / 3600
            rows.append(
                f"| {stage} | {preset} | {d.depth}x{d.width}, code {d.code_dim}, PE {d.pe_freqs} | "
                f"{batch} x {pts:,}{'' if pts == full else f' (preset {full:,})'} | {rate:,.0f} | "
                f"{rate / pts:,.1f} | {gf:.1f} | {100 * gf / peak:.0f}% | "
                f"{hours:,.1f} h ({epochs} ep x {items} x {full:,} pts) |"
            )
    emit("## Training throughput (npm_core.train: sampling, forward, backward, Adam)")
    emit()
    emit(
        "| stage | preset | network | batch x points | points/s | samples/s (shapes or frames) | "
        "train GFLOP/s (3x fwd) | % of mm | projected stage, default data |"
    )
    emit("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        emit(r)
    emit()

    emit("## Decoder inference (sdf_fn / displacement_fn: code part precomputed; inference mode, 16k-point chunks)")
    emit()
    emit("| decoder | preset | FLOPs/point | points/s | GFLOP/s | ratio to mm |")
    emit("|---|---|---|---|---|---|")
    for preset in ("fast", "paper"):
        mc = model_preset(preset)
        s, p = ShapeDecoder(mc.shape), PoseDecoder(mc.pose, mc.shape.code_dim)
        sc, pc = 0.1 * torch.randn(mc.shape.code_dim), 0.1 * torch.randn(mc.pose.code_dim)
        for name, dec, fn in [
            ("shape sdf_fn", s, s.sdf_fn(sc)),
            ("pose displacement_fn", p, p.displacement_fn(sc, pc)),
        ]:
            flops = decoder_flops_per_point(dec)
            rate = infer_rate(fn, n=(1 << 16) if preset == "fast" else (1 << 15))
            gf = flops * rate / 1e9
            emit(f"| {name} | {preset} | {flops / 1e6:.2f} M | {rate:,.0f} | {gf:.1f} | {gf / peak:.2f} |")
    emit()

    if args.candidates:
        emit("## Candidate `fast` sizes (training, batch 4 x 8192)")
        emit()
        emit("| network | points/s | train GFLOP/s | hours per 100M points |")
        emit("|---|---|---|---|")
        for name, d, stage in [
            ("shape 6x256 code 128 PE 6", DecoderConfig(256, 6, 128, 6, 3), "shape"),
            ("shape 5x384 code 128 PE 6", DecoderConfig(384, 5, 128, 6, 3), "shape"),
            ("shape 6x256 code 64 PE 6 (chosen)", DecoderConfig(256, 6, 64, 6, 3), "shape"),
            ("shape 5x256 code 64 PE 6", DecoderConfig(256, 5, 64, 6, 3), "shape"),
            ("shape 4x256 code 64 PE 6", DecoderConfig(256, 4, 64, 6, 2), "shape"),
            ("shape 6x192 code 64 PE 6", DecoderConfig(192, 6, 64, 6, 3), "shape"),
            ("pose 6x256 codes 64+128 PE 6 (chosen)", DecoderConfig(256, 6, 128, 6, 3), "pose"),
            ("pose 6x384 codes 64+128 PE 6", DecoderConfig(384, 6, 128, 6, 3), "pose"),
        ]:
            mc = ModelConfig(d if stage == "shape" else DecoderConfig(256, 6, 64, 6, 3), d)
            if stage == "shape":
                cfg, dec = shape_preset("fast"), ShapeDecoder(d)
                cfg.batch_shapes, cfg.points_per_shape = 4, 8192
            else:
                cfg, dec = pose_preset("fast"), PoseDecoder(d, 64)
                cfg.batch_frames, cfg.points_per_frame = 4, 8192
            rate = train_rate(stage, mc, cfg)
            emit(
                f"| {name} | {rate:,.0f} | {3 * decoder_flops_per_point(dec) * rate / 1e9:.1f} | {1e8 / rate / 3600:.2f} |"
            )
        emit()

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
