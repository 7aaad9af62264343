"""Shape-decoder capacity: a wider decoder grown from a checkpoint's, against the checkpoint's own.

The wider decoder starts as the same function (the new units' outgoing weights are zero) and
trains with the checkpoint's shape codes frozen, so the pose stage stays valid and only the
decoder's capacity changes. Printed side by side, per decoder: the last epoch's training SDF L1,
the IoU of tail identities (codes fitted to their SDF samples, meshes at 256^3, as in
`npms eval-model`) and the CPU time of the meshes the app makes (48^3 preview, 128^3 full).
Pick identities that the reported evaluation does not use (the default five are not among the
eight of benchmarks/README). The training state lives in --work, so a stopped run resumes.

    python benchmarks/bench_capacity.py --checkpoint checkpoints/body-v2 --width 384 --epochs 20 \
        --work /tmp/capacity-384 [--out benchmarks/results/capacity_cpu.md]
"""

from __future__ import annotations

import argparse
import copy
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
from npm_core.models.decoders import ShapeDecoder  # noqa: E402
from npm_core.train import TrainShapeConfig, train_shape  # noqa: E402

DEV_TAILS = ["tail-height-lo-f", "tail-weight-hi-m", "tail-muscle-lo-m", "tail-age-hi-m", "tail-muscle-lo-f"]


def widen(old: ShapeDecoder, width: int) -> ShapeDecoder:
    """A decoder `width` wide computing exactly what `old` computes: old units keep their weights,
    new units get the default init for their inputs and zero weights towards the next layer."""
    cfg = copy.deepcopy(old.cfg)
    cfg.width = width
    new = ShapeDecoder(cfg)
    in_dim = old.in_dim
    with torch.no_grad():
        for i, (lo, ln) in enumerate(zip(old.layers, new.layers)):
            g_o, v_o = lo.parametrizations.weight.original0, lo.parametrizations.weight.original1
            g_n, v_n = ln.parametrizations.weight.original0, ln.parametrizations.weight.original1
            rows, cols_old = v_o.shape
            if i == 0:
                cols, extra = list(range(cols_old)), []
            elif cfg.skip and i == cfg.skip:  # input [h, code, PE(x)]: the new hidden columns sit before the code
                h_old, h_new = cols_old - in_dim, v_n.shape[1] - in_dim
                cols, extra = list(range(h_old)) + [h_new + j for j in range(in_dim)], list(range(h_old, h_new))
            else:
                cols, extra = list(range(cols_old)), list(range(cols_old, v_n.shape[1]))
            v_n[:, extra] = 0.0
            v_n[:rows] = 0.0
            v_n[:rows, cols] = v_o
            g_n[:rows] = g_o
            g_n[rows:] = v_n[rows:].norm(dim=1, keepdim=True)
            ln.bias[:rows] = lo.bias
        new.out.weight.zero_()
        new.out.weight[:, : old.out.weight.shape[1]] = old.out.weight
        new.out.bias.copy_(old.out.bias)
    return new.eval()


def train_wider(model, ds, width, epochs, lr, decay_every, work: Path):
    """Train the widened decoder with the shape codes frozen (lr_codes 0); resumes from `work`."""
    torch.manual_seed(0)
    wide = widen(model.shape_decoder, width)
    x = torch.rand(1, 4096, 3) - 0.5
    gap = (wide(model.shape_codes[:1], x) - model.shape_decoder(model.shape_codes[:1], x)).abs().max().item()
    print(f"widened to {width}: largest difference from the original at the start {gap:.1e}", flush=True)
    if gap > 1e-5:
        raise RuntimeError(f"the widened decoder differs from the original by {gap:.1e} before training")
    cfg = TrainShapeConfig(**model.sections["train_shape"])
    cfg.epochs, cfg.lr_net, cfg.lr_codes, cfg.lr_decay_every, cfg.prior_ramp_epochs = epochs, lr, 0.0, decay_every, 0
    model_cfg = copy.deepcopy(model.config)
    model_cfg.shape.width = width
    res = train_shape(
        ds.shape_samples(ds.split("train")),
        cfg,
        model_cfg,
        work,
        code_labels=ds.shape_code_labels(),
        init_decoder=wide.state_dict(),
        init_codes=model.shape_codes,
    )
    if not torch.equal(res.codes, model.shape_codes):
        raise RuntimeError("the shape codes moved; the pose stage would no longer match them")
    return res


def tail_iou(decoder, model, ds, names) -> dict:
    """Identity -> IoU with `decoder` in place of the model's, as `npms eval-model` measures it."""
    rows = evaluate.evaluate_shapes(
        dataclasses.replace(model, shape_decoder=decoder), ds, "tail", len(names), identities=names
    )
    for r in rows:
        print(f"  {r['identity']}: {r['iou']:.4f}", flush=True)
    return {r["identity"]: r["iou"] for r in rows}


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
    ap.add_argument("--width", type=int, default=384)
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
    res = train_wider(model, ds, args.width, args.epochs, args.lr, args.decay_every, Path(args.work))
    old_l1 = layout.read_checkpoint_meta(args.checkpoint)["shape"]["metrics"]["sdf_l1_last_epoch"]
    rows = []
    for name, dec, l1, minutes in (
        (f"{args.checkpoint} ({model.config.shape.width} wide)", model.shape_decoder, old_l1, None),
        (
            f"widened to {args.width}, {args.epochs} epochs, codes frozen",
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
        f"`python benchmarks/bench_capacity.py --checkpoint {args.checkpoint} --width {args.width} --epochs {args.epochs} --work <folder>`",
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
        f"ratios wide / original: IoU {b[2] - a[2]:+.4f}, mesh time x{b[4] / a[4]:.2f} (48^3) x{b[5] / a[5]:.2f} (128^3)",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        from npm_core.atomic import write_text_atomic

        write_text_atomic(Path(args.out), report + "\n")


if __name__ == "__main__":
    main()
