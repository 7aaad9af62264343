"""The hands domain, truth against the model: one column per gesture (the last frame of each
gesture sequence); rows: a training hand as `npms data hands` made it, the checkpoint decoding
that hand's shape code with that frame's pose code, then a held-out hand doing the held-out
gestures (truth) and the checkpoint's codes fitted to that truth (evaluate.true_shape_code for the
shape, evaluate.sequence_ceiling for the poses). Writes docs/hands.png.

    python docs/hands_sheet.py --checkpoint checkpoints/hands-v1 [--out docs/hands.png]

The checkpoint's recorded dataset must be there (`npms data hands`, then `npms data import`).
"""

import argparse

import numpy as np
import torch

from npm_core import evaluate, hands
from npm_core.data import dataset
from npm_core.mesh.extract import extract, pose_mesh
from npm_core.models import checkpoint
from npm_viewer.render import render_grid


def last_frames(ds, frames, identity: int, names) -> list[int]:
    """Row indices into `frames` of `identity`'s last frame of each gesture in `names`."""
    out = []
    for name in names:
        rows = [
            (f["frame"], k)
            for k, f in enumerate(frames)
            if f["identity"] == identity and f["motion"].split("/")[0] == name
        ]
        out.append(max(rows)[1])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="checkpoints/hands-v1")
    ap.add_argument("--resolution", type=int, default=160)
    ap.add_argument("--out", default="docs/hands.png")
    args = ap.parse_args()
    torch.manual_seed(0)
    m = checkpoint.load_model(args.checkpoint)
    ds = dataset.open_dataset(m.path / m.sections["dataset"])
    dom, faces = ds.domain, ds.faces()
    to_m = lambda v: np.asarray(v) / dom.model_per_metre  # noqa: E731  (centred metres, for pictures)
    train_ids, test_ids = ds.split("train"), ds.split("test")
    trained = [g for g in hands.GESTURES if g not in ("open", *hands.TEST_GESTURES)][:7]

    # a training hand: truth and its own codes
    hand = train_ids[0]
    rows_t = last_frames(ds, ds.frames, hand, trained)
    truth = [to_m(ds._npy("posed")[k]) for k in rows_t]
    labels = ds.pose_code_labels()
    s = m.shape_codes[0]
    with torch.inference_mode():
        canon = extract(m.shape_decoder.sdf_fn(s), args.resolution)
        decoded = [
            to_m(pose_mesh(canon.vertices, m.pose_decoder.displacement_fn(s, m.pose_codes[k])).numpy()) for k in rows_t
        ]
    assert all(labels[k]["shape_index"] == 0 for k in rows_t)

    # a held-out hand doing the held-out gestures: codes fitted to its 3D truth
    other = test_ids[0]
    rows_h = last_frames(ds, ds.test_frames, other, hands.TEST_GESTURES)
    truth_h = np.stack([to_m(ds._npy("test_posed")[k]) for k in rows_h])
    fitted_h, f_h = evaluate.sequence_ceiling(m, ds.canonical(other), faces, truth_h, args.resolution)
    f_c = canon.faces.numpy()
    meshes = [(v, faces) for v in truth] + [(v, f_c) for v in decoded]
    meshes += [(v, faces) for v in truth_h] + [(np.asarray(v), f_h) for v in fitted_h]
    cols = len(trained)
    grid = []
    for r in range(4):
        row = meshes[r * cols : (r + 1) * cols] if r < 2 else meshes[2 * cols + (r - 2) * 4 : 2 * cols + (r - 1) * 4]
        grid += row + [(np.zeros((3, 3)), np.array([[0, 1, 2]]))] * (cols - len(row))
    render_grid(grid, cols, args.out, spacing=(0.22, 0.3), size=(1400, 1000))
    print("columns:", ", ".join(trained), "| rows 3-4:", ", ".join(hands.TEST_GESTURES))


if __name__ == "__main__":
    main()
