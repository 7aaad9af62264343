"""Evaluation of a trained checkpoint on held-out data (`npms eval-model`).

Shapes: for held-out (and some training) identities, a shape code is optimised on the
identity's SDF samples with the decoder frozen, the mesh extracted, and IoU / Chamfer-L2
measured against the true canonical mesh (metrics.py definitions). Poses: pose codes of
held-out frames (test motions on training identities; test identities) are optimised on
flow samples, and the true canonical vertices moved by the decoder are compared with the
true posed vertices (mean vertex error, cm). Must not: train or write checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from . import bodies, metrics, space
from .data.dataset import Dataset
from .fit import fit_pose_codes, fit_shape_code
from .mesh.extract import extract


def evaluate_shapes(model, ds: Dataset, split: str, count: int, resolution: int = 256, iou_points: int = 1_000_000,
                    chamfer_points: int = 100_000, progress=None, codes_out: dict | None = None) -> list[dict]:
    """Per identity: {"identity", "iou", "chamfer_l2"}; test identities get an optimised code,
    training identities use their learned code. codes_out: filled with identity index -> code,
    so the pose evaluation reuses the optimised codes."""
    ids = ds.split(split)[:count]
    train = ds.split("train")
    faces = bodies.faces()
    canonical = ds.canonical(ids)
    rows = []
    samples = ds.shape_samples(ids)
    for k, i in enumerate(ids):
        if split == "train":
            code = model.shape_codes[train.index(i)]
        else:
            code = fit_shape_code(model.shape_decoder, samples.points[k], samples.sdf[k], model.shape_codes.mean(0))
        if codes_out is not None:
            codes_out[i] = code
        with torch.inference_mode():
            mesh = extract(model.shape_decoder.sdf_fn(code), resolution)
        v, f = mesh.vertices.numpy(), mesh.faces.numpy()
        rows.append({"identity": ds.identities[i]["id"],
                     "iou": metrics.iou(canonical[k], faces, v, f, iou_points, seed=k),
                     "chamfer_l2": metrics.chamfer_l2(canonical[k], faces, v, f, chamfer_points, seed=k)})
        if progress:
            progress(k + 1, len(ids))
    return rows


def evaluate_poses(model, ds: Dataset, max_frames: int = 200, points: int = 500, batch: int = 32, seed: int = 0,
                   progress=None, test_codes: dict | None = None) -> dict:
    """Mean vertex error (cm) of held-out frames with optimised pose codes; split by group.
    Frames are drawn from training identities (learned codes) and from the test identities in
    test_codes (identity index -> code optimised by evaluate_shapes), so no shape code is fitted
    twice; without test_codes, the first 4 test identities get one."""
    flow = ds.flow_samples(test=True)
    train = ds.split("train")
    if test_codes is None:
        test = ds.split("test")[:4]
        samples = ds.shape_samples(test)
        test_codes = {i: fit_shape_code(model.shape_decoder, samples.points[k], samples.sdf[k], model.shape_codes.mean(0))
                      for k, i in enumerate(test)}
    shape_code = {i: model.shape_codes[k] for k, i in enumerate(train)} | dict(test_codes)
    usable = np.array([t for t in range(flow.num_frames) if ds.test_frames[t]["identity"] in shape_code])
    rng = np.random.default_rng(seed)
    frames = np.sort(rng.choice(usable, min(max_frames, len(usable)), replace=False))
    gen = torch.Generator().manual_seed(seed)
    errors = {"test motions, training identities": [], "test identities": []}
    for b0 in range(0, len(frames), batch):
        fr = torch.as_tensor(frames[b0 : b0 + batch])
        idx = torch.randint(0, flow.face_index.shape[1], (len(fr), points), generator=gen)
        x, y = flow.pairs(fr, idx)
        s = torch.stack([shape_code[ds.test_frames[int(t)]["identity"]] for t in fr])
        codes = fit_pose_codes(model.pose_decoder, s, x, y, model.pose_codes.mean(0).expand(len(fr), -1))
        with torch.inference_mode():
            canon = flow.canonical_vertices[flow.frame_shape[fr]]
            moved = canon + model.pose_decoder(s, codes, canon)
        err_cm = space.model_to_metres((moved - flow.posed_vertices[fr]).norm(dim=-1).mean(-1)).numpy() * 100
        for t, e in zip(fr.tolist(), err_cm):
            group = "test identities" if ds.test_frames[t]["identity"] not in train else "test motions, training identities"
            errors[group].append(float(e))
        if progress:
            progress(min(b0 + batch, len(frames)), len(frames))
    return {k: {"frames": len(v), "mean_vertex_error_cm": float(np.mean(v)) if v else None} for k, v in errors.items()}
