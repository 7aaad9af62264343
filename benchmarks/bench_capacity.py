"""Shape-decoder capacity: a larger decoder grown from a checkpoint's, against the checkpoint's own.

The grown decoder (wider, deeper or with more PE frequencies: `grow`) starts as the same function
and trains with the checkpoint's shape codes frozen, so the pose stage stays valid and only the
decoder changes. With no size option the checkpoint's own decoder trains on the same schedule:
the control that separates what the extra epochs buy from what the capacity buys. Printed side
by side, per decoder: the last epoch's training SDF L1, the IoU of tail identities (codes fitted
to their SDF samples, meshes at 256^3, as in `npms eval-model`) and the CPU time of the meshes
the app makes (48^3 preview, 128^3 full). Pick identities that the reported evaluation does not
use (the default five are not among the eight of benchmarks/README). The training state lives
in --work, so a stopped run resumes, and a finished one only re-measures.

    python benchmarks/bench_capacity.py --checkpoint checkpoints/body-v2 [--width 384] [--depth 7] \
        [--pe-freqs 8] --epochs 20 --work /tmp/capacity-384 [--out benchmarks/results/capacity_cpu.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from npm_core import evaluate, layout  # noqa: E402
from npm_core.config import DataConfig, from_dict  # noqa: E402
from npm_core.data import dataset  # noqa: E402
from npm_core.mesh.extract import extract  # noqa: E402
from npm_core.models import checkpoint as ckpt  # noqa: E402
from npm_core.train import TrainShapeConfig, tune_shape  # noqa: E402

DEV_TAILS = ["tail-height-lo-f", "tail-weight-hi-m", "tail-muscle-lo-m", "tail-age-hi-m", "tail-muscle-lo-f"]


def train_grown(model, ds, sizes: dict, epochs, lr, decay_every, work: Path):
    """The checkpoint's shape decoder grown to `sizes` (none: as it is, the control) and trained
    with the codes frozen (npm_core.train.tune_shape); resumes from `work`."""
    cfg = TrainShapeConfig(**model.sections["train_shape"])
    cfg = dataclasses.replace(cfg, epochs=epochs, lr_net=lr, lr_decay_every=decay_every)
    return tune_shape(model, ds.shape_samples(ds.split("train")), cfg, work, sizes, code_labels=ds.shape_code_labels())


def tail_iou(decoder, model, ds, names) -> dict:
    """Identity -> IoU with `decoder` in place of the model's, as `npms eval-model` measures it."""
    rows = evaluate.evaluate_shapes(
        dataclasses.replace(model, shape_decoder=decoder), ds, "tail", len(names), identities=names
    )
    for r in rows:
        print(f"  {r['identity']}: {r['iou']:.4f}", flush=True)
    return {r["identity"]: r["iou"] for r in rows}


def _sizes(cfg) -> str:
    return f"{cfg.depth}x{cfg.width}, PE {cfg.pe_freqs}"


def mesh_seconds(decoder, code, resolution, repeats=3) -> float:
    with torch.inference_mode():
        extract(decoder.sdf_fn(code), resolution)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            extract(decoder.sdf_fn(code), resolution)
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="checkpoints/body-v2")
    ap.add_argument("--width", type=int, help="hidden units (default: the checkpoint's, plus 6 per added PE frequency)")
    ap.add_argument("--depth", type=int, help="hidden layers (default: the checkpoint's)")
    ap.add_argument("--pe-freqs", type=int, help="PE frequencies (default: the checkpoint's)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--decay-every", type=int, default=8)
    ap.add_argument("--identities", nargs="+", default=DEV_TAILS)
    ap.add_argument("--work", required=True, help="folder for the wider decoder's training state and result")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", help="also write the report here (markdown)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = ckpt.load_model(args.checkpoint)
    if "data" not in model.sections:
        raise ValueError(f"{args.checkpoint}: config.yaml has no 'data' section (an Anny-trained checkpoint is needed)")
    ds = dataset.load(from_dict(DataConfig, model.sections["data"], f"{args.checkpoint} data"))
    sizes = {"width": args.width, "depth": args.depth, "pe_freqs": args.pe_freqs}
    res = train_grown(model, ds, sizes, args.epochs, args.lr, args.decay_every, Path(args.work))
    c = res.decoder.cfg
    size_args = "".join(f"--{k.replace('_', '-')} {v} " for k, v in sizes.items() if v)
    old_l1 = layout.read_checkpoint_meta(args.checkpoint)["shape"]["metrics"]["sdf_l1_last_epoch"]
    rows = []
    for name, dec, l1, minutes in (
        (f"{args.checkpoint} ({_sizes(model.config.shape)})", model.shape_decoder, old_l1, None),
        (
            f"{_sizes(c)}, grown, {args.epochs} epochs, codes frozen",
            res.decoder,
            res.history[-1]["sdf"],
            res.seconds / 60,
        ),
    ):
        print(name, flush=True)
        iou = tail_iou(dec, model, ds, args.identities)
        code = model.shape_codes[0]
        rows.append(
            (
                name,
                l1,
                np.mean(list(iou.values())),
                iou,
                mesh_seconds(dec, code, 48),
                mesh_seconds(dec, code, 128),
                minutes,
            )
        )
    lines = [
        f"`python benchmarks/bench_capacity.py --checkpoint {args.checkpoint} {size_args}--epochs {args.epochs} --work <folder>`",
        "",
        f"torch {torch.__version__}, {args.threads} thread(s); tail identities: {', '.join(args.identities)}",
        "",
        "| shape decoder | training SDF L1 | tail IoU (mean) | per identity | mesh 48^3 / 128^3 (s) | extra training (min) |",
        "|---|---|---|---|---|---|",
    ]
    for name, l1, mean, iou, t48, t128, minutes in rows:
        per = " / ".join(f"{v:.4f}" for v in iou.values())
        lines.append(
            f"| {name} | {l1:.2e} | {mean:.4f} | {per} | {t48:.3f} / {t128:.3f} | {'' if minutes is None else f'{minutes:.1f}'} |"
        )
    (a, b) = rows
    lines += [
        "",
        f"ratios grown / original: IoU {b[2] - a[2]:+.4f}, mesh time x{b[4] / a[4]:.2f} (48^3) x{b[5] / a[5]:.2f} (128^3)",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        from npm_core.atomic import write_text_atomic

        write_text_atomic(Path(args.out), report + "\n")


if __name__ == "__main__":
    main()
