"""Picture of the semantic handles of a checkpoint: one row per phenotype slider (the mean
training identity with that phenotype swept over its training range, decoded through the
phenotype -> shape-code map), then rows along the first pose PCA directions (-2 to +2 standard
deviations) on the mean shape. Writes docs/semantics.png.

    python docs/semantic_sheet.py --checkpoint checkpoints/body-v2 [--out docs/semantics.png]
"""

import argparse

import numpy as np
import torch

from npm_core import bodies, layout, semantics
from npm_core.mesh import extract, pose_mesh
from npm_core.models import checkpoint
from npm_viewer.render import render_grid

COLS = 5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="checkpoints/body-v2")
    ap.add_argument("--out", default="docs/semantics.png")
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--pose-rows", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    m = checkpoint.load_model(args.checkpoint)
    sem = semantics.load(layout.checkpoint_semantics_path(args.checkpoint))
    lo, hi = sem.phenotype_range
    mid = np.median(np.concatenate([bodies.check_phenotypes(e["phenotypes"]) for e in m.meta["shape"]["codes"]]), 0)
    meshes = []

    def decode(code):
        with torch.inference_mode():
            r = extract(m.shape_decoder.sdf_fn(torch.as_tensor(code, dtype=torch.float32)), args.resolution)
        return r.vertices, r.faces.numpy()

    for j in range(len(bodies.PHENOTYPES)):
        for value in np.linspace(lo[j], hi[j], COLS):
            ph = mid.copy()
            ph[j] = value
            v, f = decode(sem.shape_code(ph)[0])
            meshes.append((v.numpy(), f))
    s = torch.as_tensor(sem.shape_code(mid)[0], dtype=torch.float32)
    mean_v, mean_f = decode(s)
    for k in range(args.pose_rows):
        for c in np.linspace(-2, 2, COLS):
            p = torch.as_tensor(sem.pose_pca.mean + sem.pose_pca.offset(np.eye(k + 1)[k] * c), dtype=torch.float32)
            meshes.append((pose_mesh(mean_v, m.pose_decoder.displacement_fn(s, p)).numpy(), mean_f))
    render_grid(
        meshes, COLS, args.out, spacing=(0.75, 0.85), size=(1000, 1000 * (6 + args.pose_rows) * 0.85 / (COLS * 0.75))
    )
    print("rows:", ", ".join(bodies.PHENOTYPES), f"then pose PC1..PC{args.pose_rows} (-2..+2 sd)")


if __name__ == "__main__":
    main()
