"""Semantic sliders, measured: do phenotype / joint-angle requests give the asked-for body?

Shape: 100 random phenotype requests inside the training range -> shape code by the map ->
decoded mesh, vs the true Anny body of those phenotypes: height error (cm), R^2 of requested
(true) vs measured height, Chamfer-L2. Floor: the training identities' own codes decoded, vs
their true bodies (what a perfect map could reach with this decoder).
Pose: 100 joint-angle requests -> pose code -> a training identity's true canonical vertices
moved by the decoder, vs the true Anny body in that pose: mean vertex error (cm). Requests are
drawn two ways: from the training pose sampler (fresh seed), and uniformly per joint in the
box of training ranges (harsher: combinations no training pose has). Floor: the training
frames' own codes. Each map kind side by side: ridge-linear and MLP fitted to the training
codes here, and the checkpoint's semantics.npz as `npms semantics` wrote it (MLPs refined
through the frozen decoders on fresh Anny bodies, whose seeds differ from these requests).

    python benchmarks/bench_semantics.py --checkpoint checkpoints/body-v2
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from npm_core import bodies, layout, metrics, semantics, space
from npm_core.mesh.extract import extract
from npm_core.models import checkpoint


def height_m(v):
    return space.model_to_metres(v[:, 1].max() - v[:, 1].min())


def shape_errors(m, codes, phenotypes, resolution):
    """Height error (cm), height R^2 and Chamfer-L2 of decoded codes vs the true bodies."""
    true, faces = bodies.body_meshes(phenotypes), bodies.faces()
    h_true, h_pred, cham = [], [], []
    for k, code in enumerate(torch.as_tensor(np.asarray(codes), dtype=torch.float32)):
        with torch.inference_mode():
            r = extract(m.shape_decoder.sdf_fn(code), resolution)
        v = r.vertices.numpy()
        h_true.append(height_m(true[k]))
        h_pred.append(height_m(v))
        cham.append(metrics.chamfer_l2(true[k], faces, v, r.faces.numpy(), 20_000, seed=k))
    h_true, h_pred = np.array(h_true), np.array(h_pred)
    r2 = 1 - ((h_pred - h_true) ** 2).sum() / ((h_true - h_true.mean()) ** 2).sum()
    return np.abs(h_pred - h_true).mean() * 100, r2, float(np.mean(cham))


def pose_error_cm(m, codes, angles, shape_rows):
    """Mean vertex error (cm): true canonical bodies moved by the decoder vs true posed bodies."""
    ident = m.meta["shape"]["codes"]
    ph = np.concatenate([bodies.check_phenotypes(ident[i]["phenotypes"]) for i in shape_rows])
    canon = torch.as_tensor(bodies.body_meshes(ph))
    posed_true = bodies.body_meshes(ph, angles)
    with torch.inference_mode():
        moved = canon + m.pose_decoder(
            m.shape_codes[torch.as_tensor(shape_rows)], torch.as_tensor(codes, dtype=torch.float32), canon
        )
    return float(space.model_to_metres(np.linalg.norm(moved.numpy() - posed_true, axis=-1).mean()) * 100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="checkpoints/body-v2")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/semantics_cpu.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = checkpoint.load_model(args.checkpoint)
    maps = {}
    for kind in ("linear", "mlp"):
        t = time.time()
        maps[f"{kind} map"] = semantics.compute(m, shape_map=kind, pose_map=kind)
        maps[f"{kind} map"].fit_time = f"{time.time() - t:.0f} s"
    shipped = layout.checkpoint_semantics_path(args.checkpoint)
    refined = maps[f"MLP map refined through the decoders (shipped {shipped})"] = semantics.load(shipped)
    refined.fit_time = "see `npms semantics`"
    rng = np.random.default_rng(0)
    lo, hi = maps["linear map"].phenotype_range
    ph = lo + rng.random((args.requests, 6)) * (hi - lo)
    rows = []
    labels = m.meta["shape"]["codes"]
    floor_ids = rng.choice(len(labels), min(args.requests, len(labels)), replace=False)
    floor_ph = np.concatenate([bodies.check_phenotypes(labels[i]["phenotypes"]) for i in floor_ids])
    h, r2, ch = shape_errors(m, m.shape_codes[torch.as_tensor(floor_ids)].numpy(), floor_ph, args.resolution)
    rows.append(("shape floor: training identities' own codes", f"{h:.2f} cm", f"{r2:.3f}", f"{ch:.2e}", "-"))
    for kind, sem in maps.items():
        h, r2, ch = shape_errors(m, sem.shape_code(ph), ph, args.resolution)
        rows.append((f"shape: phenotype requests, {kind}", f"{h:.2f} cm", f"{r2:.3f}", f"{ch:.2e}", sem.fit_time))
    lines = [
        f"`python benchmarks/bench_semantics.py --checkpoint {args.checkpoint}`",
        "",
        f"{args.requests} random requests inside the training range; meshes decoded at {args.resolution}^3; "
        f"torch {torch.__version__}, CPU",
        "",
        "| shape | mean height error | height R^2 | Chamfer-L2 | map fit time |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} | {e} |" for a, b, c, d, e in rows]
    lines += ["", "targets: mean height error <= 2 cm, height R^2 >= 0.95"]
    if m.pose_decoder is not None:
        plabels = m.meta["pose"]["codes"]
        sampled = bodies.sample_poses(args.requests, seed=12345)
        alo, ahi = maps["linear map"].angle_range
        uniform = alo + rng.random((args.requests, len(bodies.JOINT_NAMES))) * (ahi - alo)
        shape_rows = rng.integers(0, len(labels), args.requests)
        frames = rng.choice(len(plabels), args.requests, replace=False)
        floor_angles = np.array([plabels[t]["angles"] for t in frames])
        floor_rows = np.array([plabels[t]["shape_index"] for t in frames])
        prow = [
            (
                "pose floor: training frames' own codes",
                f"{pose_error_cm(m, m.pose_codes[torch.as_tensor(frames)].numpy(), floor_angles, floor_rows):.2f} cm",
                "-",
            )
        ]
        for kind, sem in maps.items():
            prow.append(
                (
                    f"pose: {kind}, requests from the training pose sampler",
                    f"{pose_error_cm(m, sem.pose_code(sampled), sampled, shape_rows):.2f} cm",
                    sem.fit_time,
                )
            )
            prow.append(
                (
                    f"pose: {kind}, requests uniform in the box of training ranges",
                    f"{pose_error_cm(m, sem.pose_code(uniform), uniform, shape_rows):.2f} cm",
                    "",
                )
            )
        lines += ["", "| pose | mean vertex error | map fit time (both maps) |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in prow]
        lines += ["", "target: mean vertex error <= 3 cm"]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
