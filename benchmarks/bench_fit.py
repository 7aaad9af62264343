"""Depth-sequence fitting, side by side: `fast` vs `paper` schedules and ablations.

For each sequence (test identities doing test motions, one camera, with gt meshes): fit, then
IoU / Chamfer-L2 / EPE (metrics.py, NPMs definitions) and wall time. With --identities (the
sequences' identity ids), a first row shows the decoders' ceiling: codes fitted to the full 3D
truth (evaluate.sequence_ceiling), which a fit from depth of this checkpoint should not beat. `paper` is the
reference schedule (500 iterations over all frame pairs, 20k points per frame); on 2 CPU
cores it is far too slow for whole sequences, so it runs on the first --paper-frames frames
with --paper-iterations iterations, and the table says so.

    python benchmarks/bench_fit.py --checkpoint checkpoints/body-v2 --sequences SEQ_DIR [SEQ_DIR ...] [--identities ID ...]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from npm_core import bodies, config, evaluate, fit, metrics
from npm_core.data import depth
from npm_core.models import checkpoint


def run(model, seq_dir, cfg, frames, resolution, iou_points, shape_code=None, true_canonical_vertices=None):
    """Fit and evaluate; with the true canonical body ([V,3] model units), also the IoU of the
    fitted canonical shape against it (shape_iou): the shape alone, without the poses."""
    seq = depth.read_sequence(seq_dir, slice(0, frames) if frames else None)
    cfg = fit.for_domain(cfg, model.domain)  # as `npms fit`: no yaw search for domains without an upright axis
    t = time.time()
    res = fit.fit(model, seq, cfg, shape_code=shape_code)
    fit_s = time.time() - t
    with tempfile.TemporaryDirectory() as tmp:
        out = fit.write_result(Path(tmp) / "fit", res, model, cfg, "bench", seq_dir, resolution)
        canon, posed, faces = fit.read_result(out).meshes()
    scale = model.domain.model_per_metre
    m = metrics.evaluate_sequence(posed, faces, seq.gt_vertices, seq.gt_faces, iou_points, model_per_metre=scale)
    row = {"frames": len(seq), "fit_s": fit_s, **m["mean"], "iou_per_frame": m["iou"]}
    if true_canonical_vertices is not None:
        row["shape_iou"] = metrics.iou(true_canonical_vertices, seq.gt_faces, canon * scale, faces, iou_points)
    return row


def true_canonical(model, identity):
    """The identity's canonical mesh vertices (model units): from the body model, or for an imported
    domain from the dataset the checkpoint records."""
    if model.domain.source == "meshes":
        from npm_core.data import dataset

        ds = dataset.open_dataset(model.path / model.sections["dataset"])
        return ds.canonical([x["id"] for x in ds.identities].index(identity))
    ident = bodies.find_identity(identity, config.from_dict(config.DataConfig, model.sections.get("data")).identities)
    return bodies.body_meshes(ident.phenotypes)[0]


def ceiling(model, seq_dir, canonical, frames, every, resolution, iou_points):
    seq = depth.read_sequence(seq_dir, slice(0, frames, every))
    t = time.time()
    posed, faces = evaluate.sequence_ceiling(model, canonical, seq.gt_faces, seq.gt_vertices, resolution)
    fit_s = time.time() - t
    m = metrics.evaluate_sequence(
        posed, faces, seq.gt_vertices, seq.gt_faces, iou_points, model_per_metre=model.domain.model_per_metre
    )
    return {"frames": len(seq), "fit_s": fit_s, **m["mean"], "iou_per_frame": m["iou"]}


def partial_sdf_vs_grid(seq_dir, resolutions=(128, 256), n=20000):
    """Reference formulation (partial SDF on a dense grid + trilinear sampling) vs ours (exact
    evaluation at the query points): build time per frame and error of the grid at samples."""
    seq = depth.read_sequence(seq_dir, slice(0, 1))
    psdf = fit.PartialSDF(seq, 0, 0.01)
    gen = torch.Generator().manual_seed(0)
    q = psdf.points[torch.randint(0, len(psdf.points), (n,), generator=gen)] + 0.03 * torch.randn(n, 3, generator=gen)
    t = time.time()
    exact, mask, _ = psdf(q, 0.1)
    ours_ms = (time.time() - t) * 1000
    rows = []
    for r in resolutions:
        g = torch.linspace(-0.5, 0.5, r)
        t = time.time()
        vals = []
        for i in range(r):  # slab by slab, as a grid this size does not fit a single query comfortably
            pts = torch.stack(torch.meshgrid(g[i : i + 1], g, g, indexing="ij"), -1).reshape(-1, 3)
            vals.append(psdf(pts, 0.1)[0].reshape(1, r, r))
        grid = torch.cat(vals)
        build_s = time.time() - t
        # trilinear sampling (grid_sample wants z, y, x order in [-1, 1])
        coords = (q / 0.5).flip(-1)[None, None, None]
        sampled = torch.nn.functional.grid_sample(grid[None, None], coords, align_corners=True)[0, 0, 0, 0]
        err = (sampled - exact)[mask].abs()
        rows.append(
            {
                "resolution": r,
                "grid_build_s": build_s,
                "mean_abs_err": err.mean().item(),
                "p95_abs_err": err.quantile(0.95).item(),
            }
        )
    return ours_ms, n, rows


def summary(variant, per):
    """A table row: the means over sequences, with the per-sequence results."""
    keys = ["frames", "fit_s", "iou", "chamfer_l2", "epe", "epe_cm"] + (
        ["shape_iou"] if all("shape_iou" in p for p in per) else []
    )
    return {
        "variant": variant,
        "sequences": len(per),
        **{k: float(np.mean([p[k] for p in per])) for k in keys},
        "per_sequence": per,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="checkpoints/body-v2")
    ap.add_argument("--sequences", nargs="+", required=True)
    ap.add_argument(
        "--identities",
        nargs="+",
        default=None,
        help="the sequences' identity ids, in order: adds the decoders' ceiling row (3D ground truth)",
    )
    ap.add_argument(
        "--ceiling-every", type=int, default=1, help="the ceiling on every Nth frame only (it costs ~10 s a frame)"
    )
    ap.add_argument("--frames", type=int, default=None, help="first N frames of each sequence (default all)")
    ap.add_argument("--paper-frames", type=int, default=10)
    ap.add_argument("--paper-iterations", type=int, default=500)
    ap.add_argument("--resolution", type=int, default=256, help="output mesh resolution for evaluation")
    ap.add_argument("--iou-points", type=int, default=1_000_000)
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument(
        "--ablation-sequences",
        type=int,
        default=None,
        help="run the ablations (and the paper/fast cut) on the first N sequences only (default all)",
    )
    ap.add_argument("--no-ablations", action="store_true", help="only the fast row (and the ceiling with --identities)")
    ap.add_argument(
        "--known-shape",
        action="store_true",
        help="add a `fast` row with the shape code fitted to the true canonical body (needs --identities; "
        "ablation sequences): how much of the gap to the ceiling is the shape",
    )
    ap.add_argument("--out", default="benchmarks/results/fit_cpu.md")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    ap.add_argument("--no-rotation", action="store_true", help="fits without the per-frame body rotation")
    ap.add_argument(
        "--fit-set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="`fast` settings for every row instead of the defaults, e.g. w_shape_prior=0.1",
    )
    args = ap.parse_args()
    base = {"use_rotation": False} if args.no_rotation else {}
    for kv in args.fit_set:
        key, eq, value = kv.partition("=")
        if not eq:
            ap.error(f"--fit-set {kv!r}: expected KEY=VALUE (e.g. w_shape_prior=0.1)")
        base[key] = yaml.safe_load(value)
    try:  # unknown keys and wrong types, by name
        config.from_dict(fit.FitConfig, {**config.to_dict(fit.fast_config()), **base}, "--fit-set")
    except config.ConfigError as e:
        ap.error(str(e))
    torch.set_num_threads(args.threads)
    model = checkpoint.load_model(args.checkpoint)
    few = args.sequences[: args.ablation_sequences]
    variants = [
        ("fast", fit.fast_config(**base), args.frames, args.sequences),
        ("fast, no L_c", fit.fast_config(**base, use_temporal=False), args.frames, few),
        ("fast, no L_icp", fit.fast_config(**base, use_icp=False), args.frames, few),
    ]
    if args.no_ablations:
        variants = variants[:1]
    if args.known_shape:
        if not args.identities:
            ap.error("--known-shape needs --identities")
        variants.append(
            ("fast, shape known (code fitted to the true canonical body)", fit.fast_config(**base), args.frames, few)
        )
    canonicals = {sq: true_canonical(model, i) for sq, i in zip(args.sequences, args.identities or [])}
    if (
        len(few) < len(args.sequences) and not args.no_ablations
    ):  # the full fit on the same subset, for a like-for-like ablation
        variants.insert(
            1, (f"fast ({len(few)} sequence(s) of the ablations)", fit.fast_config(**base), args.frames, few)
        )
    if not args.skip_paper:
        variants += [
            (f"fast (first {args.paper_frames} frames)", fit.fast_config(**base), args.paper_frames, few),
            (
                f"paper (first {args.paper_frames} frames, {args.paper_iterations} it)",
                fit.paper_config(iterations=args.paper_iterations, keep_iteration=min(400, args.paper_iterations)),
                args.paper_frames,
                few,
            ),
        ]
    rows, done = [], {}
    if args.identities:
        if len(args.identities) != len(args.sequences):
            ap.error(f"--identities: {len(args.identities)} ids for {len(args.sequences)} sequences")
        per = []
        for sq in args.sequences:
            per.append(
                ceiling(model, sq, canonicals[sq], args.frames, args.ceiling_every, args.resolution, args.iou_points)
            )
            print(f"  ceiling on {Path(sq).name}: {per[-1]}", flush=True)
        every = f", every {args.ceiling_every}th frame" if args.ceiling_every > 1 else ""
        rows.append(summary(f"decoder ceiling (codes fitted to 3D ground truth{every})", per))
    for name, cfg, frames, seqs in variants:
        per = []
        for sq in seqs:  # the full fast fit of a sequence is reused by the subset row
            shape = None
            if name.startswith("fast, shape known"):
                shape = evaluate.true_shape_code(model, canonicals[sq], bodies.faces())
            key = (repr(cfg), frames, sq, shape is not None)
            if key not in done:
                done[key] = run(model, sq, cfg, frames, args.resolution, args.iou_points, shape, canonicals.get(sq))
                print(f"  {name} on {Path(sq).name}: {done[key]}", flush=True)
            per.append(done[key])
        row = summary(name, per)
        rows.append(row)
        print(
            f"{name}: IoU {row['iou']:.4f}  C-L2 {row['chamfer_l2']:.3e}  EPE {row['epe']:.4f} ({row['epe_cm']:.2f} cm)  "
            f"{row['fit_s']:.0f} s for {row['frames']:.0f} frames",
            flush=True,
        )
    lines = [
        f"`python {' '.join(sys.argv)}`",
        "",
        f"torch {torch.__version__}, {args.threads} threads, CPU{', no body rotation' if args.no_rotation else ''}; each row is the mean over its sequences",
        "",
        "| variant | sequences | frames (mean) | IoU | Chamfer-L2 | EPE (model) | EPE (cm) | fit time s | s / frame | canonical shape IoU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        shape_iou = f"{r['shape_iou']:.4f}" if "shape_iou" in r else "-"
        lines.append(
            f"| {r['variant']} | {r['sequences']} | {r['frames']:.0f} | {r['iou']:.4f} | {r['chamfer_l2']:.2e} | {r['epe']:.4f} | "
            f"{r['epe_cm']:.2f} | {r['fit_s']:.0f} | {r['fit_s'] / r['frames']:.1f} | {shape_iou} |"
        )
    fast = next(r for r in rows if r["variant"] == "fast")
    ceil = rows[0] if args.identities else None
    lines += [
        "",
        "`fast`, per sequence" + (" (ceiling in brackets)" if ceil else "") + ":",
        "",
        "| sequence | frames | IoU | Chamfer-L2 | EPE (cm) | fit time s | hardest frames (IoU) |",
        "|---|---|---|---|---|---|---|",
    ]
    for k, (sq, p) in enumerate(zip(args.sequences, fast["per_sequence"])):
        c = ceil["per_sequence"][k] if ceil else None

        def cell(key, fmt, p=p, c=c):
            return format(p[key], fmt) + (f" ({format(c[key], fmt)})" if c else "")

        worst = ", ".join(f"{t}: {p['iou_per_frame'][t]:.2f}" for t in np.argsort(p["iou_per_frame"])[:3])
        lines.append(
            f"| {Path(sq).name} | {p['frames']} | {cell('iou', '.4f')} | {cell('chamfer_l2', '.2e')} | "
            f"{cell('epe_cm', '.2f')} | {p['fit_s']:.0f} | {worst} |"
        )
    paper = [r for r in rows if r["variant"].startswith("paper")]
    fast_cut = [r for r in rows if r["variant"].startswith("fast (first")]
    if paper and fast_cut:
        p, f = paper[0], fast_cut[0]
        lines += [
            "",
            f"fast vs paper on the same {p['frames']:.0f}-frame cuts: time ratio {p['fit_s'] / f['fit_s']:.1f}x faster, "
            f"IoU {f['iou']:.4f} vs {p['iou']:.4f}, EPE {f['epe_cm']:.2f} vs {p['epe_cm']:.2f} cm",
        ]
    ours_ms, n, grid_rows = partial_sdf_vs_grid(args.sequences[0])
    lines += [
        "",
        "Partial SDF: reference dense grid + trilinear vs ours (exact at the query points), one 320x240 frame:",
        "",
        "| formulation | per-frame cost | error at samples (model units, mean / p95) |",
        "|---|---|---|",
        f"| ours, exact at {n} query points | {ours_ms:.0f} ms per query batch, no build | 0 / 0 |",
    ]
    lines += [
        f"| reference grid {r['resolution']}^3 | {r['grid_build_s']:.1f} s build per frame | "
        f"{r['mean_abs_err']:.2e} / {r['p95_abs_err']:.2e} |"
        for r in grid_rows
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
