"""Close-ups of decoded faces and hands, checkpoint against checkpoint: for each body, its code is
fitted to the true canonical body (evaluate.true_shape_code, the outer surface), decoded at
--resolution and cropped to the head and to the left hand. Rows: the truth, then each checkpoint.
Writes docs/closeups.png.

    python docs/closeups.py --checkpoints checkpoints/body-v1 checkpoints/body-v2 [--out docs/closeups.png]
"""

import argparse

import numpy as np
import torch

from npm_core import bodies, evaluate, space
from npm_core.mesh.extract import extract
from npm_core.models import checkpoint
from npm_viewer.render import render_grid

# a mid-range body, two tail bodies and a teenager (held out of every checkpoint's training)
PEOPLE = {
    "mid-range woman": {"gender": 1.0, "age": 0.78},
    "tall muscular man": {"gender": 0.0, "age": 0.78, "height": 1.0, "muscle": 1.0, "weight": 0.8},
    "heavy elderly woman": {"gender": 1.0, "age": 0.91, "weight": 1.0, "height": 0.3},
}


def crops(truth_m: np.ndarray):
    """Boxes (lo, hi) in metres around the head and the left hand (+x) of a canonical body."""
    top = truth_m[:, 1].max()
    head = truth_m[truth_m[:, 1] > top - 0.27]
    hand_x = truth_m[:, 0].max()
    hand = truth_m[truth_m[:, 0] > hand_x - 0.2]
    pad = np.array([0.01, 0.01, 0.01])
    return [(head.min(0) - pad, head.max(0) + pad), (hand.min(0) - pad, hand.max(0) + pad)]


def cut(v: np.ndarray, f: np.ndarray, box):
    """The triangles of (v, f) with all three corners inside the box, re-indexed."""
    inside = np.all((v >= box[0]) & (v <= box[1]), 1)
    f = f[inside[f].all(1)]
    used, f = np.unique(f, return_inverse=True)
    return v[used], f.reshape(-1, 3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoints", nargs="+", default=["checkpoints/body-v1", "checkpoints/body-v2"])
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--out", default="docs/closeups.png")
    args = ap.parse_args()
    torch.manual_seed(0)
    faces = bodies.body_faces("outer")
    truths = bodies.body_meshes(np.concatenate([bodies.check_phenotypes(p) for p in PEOPLE.values()]))
    rows = [[(space.model_to_metres(v), faces) for v in truths]]
    for path in args.checkpoints:
        m = checkpoint.load_model(path)
        row = []
        for v in truths:
            code = evaluate.true_shape_code(m, v, faces)
            with torch.inference_mode():
                mesh = extract(m.shape_decoder.sdf_fn(code), args.resolution)
            row.append((space.model_to_metres(mesh.vertices.numpy()), mesh.faces.numpy()))
        rows.append(row)
        print("decoded", path)
    tiles = []
    for row in rows:
        for k, (v, f) in enumerate(row):
            for box in crops(rows[0][k][0]):
                tiles.append(cut(v, f, box))
    cols = 2 * len(PEOPLE)
    # each tile centred on its own box, so rows line up whatever a checkpoint decoded
    centred = []
    for i, (v, f) in enumerate(tiles):
        lo, hi = crops(rows[0][(i % cols) // 2][0])[i % 2]
        centred.append((v - (lo + hi) / 2, f))
    render_grid(centred, cols, args.out, spacing=(0.32, 0.36), size=(1800, 300 * len(rows)))
    print("rows: truth,", ", ".join(args.checkpoints), "| columns: head, left hand of", ", ".join(PEOPLE))


if __name__ == "__main__":
    main()
