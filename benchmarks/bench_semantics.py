"""Semantic sliders, measured: do phenotype / joint-angle requests give the asked-for body?

Shape: 100 random phenotype requests inside the training range -> shape code by the ridge
map -> decoded mesh, vs the true Anny body of those phenotypes: height error (cm), R^2 of
requested (true) vs measured height, Chamfer-L2. Pose: 100 random joint-angle requests inside
the training range -> pose code -> training identity's true canonical vertices moved by the
decoder, vs the true Anny body in that pose: mean vertex error (cm).

    python benchmarks/bench_semantics.py --checkpoint checkpoints/body-v1
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from npm_core import bodies, metrics, semantics, space
from npm_core.mesh.extract import extract
from npm_core.models import checkpoint


def height_m(v):
    return space.model_to_metres(v[:, 1].max() - v[:, 1].min())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="checkpoints/body-v1")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--out", default="benchmarks/results/semantics_cpu.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = checkpoint.load_model(args.checkpoint)
    path = checkpoint.semantics_path(args.checkpoint)
    sem = semantics.load(path) if path.exists() else semantics.compute(m)
    rng = np.random.default_rng(0)
    lo, hi = sem.phenotype_range
    ph = lo + rng.random((args.requests, 6)) * (hi - lo)
    true = bodies.body_meshes(ph)
    faces = bodies.faces()
    codes = torch.as_tensor(sem.shape_code(ph), dtype=torch.float32)
    h_true, h_pred, cham = [], [], []
    for k in range(args.requests):
        with torch.inference_mode():
            r = extract(m.shape_decoder.sdf_fn(codes[k]), args.resolution)
        v = r.vertices.numpy()
        h_true.append(height_m(true[k]))
        h_pred.append(height_m(v))
        cham.append(metrics.chamfer_l2(true[k], faces, v, r.faces.numpy(), 20_000, seed=k))
    h_true, h_pred = np.array(h_true), np.array(h_pred)
    r2 = 1 - ((h_pred - h_true) ** 2).sum() / ((h_true - h_true.mean()) ** 2).sum()
    rows = [("shape: mean height error", f"{np.abs(h_pred - h_true).mean() * 100:.2f} cm", "<= 2 cm"),
            ("shape: height R^2 (requested vs decoded)", f"{r2:.3f}", ">= 0.95"),
            ("shape: Chamfer-L2 decoded vs true body (20k samples)", f"{np.mean(cham):.2e}", "-")]
    if sem.angles_to_pose is not None:
        alo, ahi = sem.angle_range
        ang = alo + rng.random((args.requests, len(bodies.JOINT_NAMES))) * (ahi - alo)
        pose_codes = torch.as_tensor(sem.pose_code(ang), dtype=torch.float32)
        ident = [l["phenotypes"] for l in m.meta["shape"]["codes"]]
        pick = rng.integers(0, len(ident), args.requests)
        ph_id = np.array([[ident[i][k] for k in bodies.PHENOTYPES] for i in pick])
        canon = torch.as_tensor(bodies.body_meshes(ph_id))
        posed_true = bodies.body_meshes(ph_id, ang)
        with torch.inference_mode():
            moved = canon + m.pose_decoder(m.shape_codes[torch.as_tensor(pick)], pose_codes, canon)
        err = space.model_to_metres(np.linalg.norm(moved.numpy() - posed_true, axis=-1).mean(1)) * 100
        rows.append(("pose: mean vertex error of joint-angle requests", f"{err.mean():.2f} cm", "<= 3 cm"))
    lines = [f"`python benchmarks/bench_semantics.py --checkpoint {args.checkpoint}`", "",
             f"{args.requests} random requests inside the training range, decoded at {args.resolution}^3", "",
             "| measure | ours | target |", "|---|---|---|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
