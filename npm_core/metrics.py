"""Evaluation metrics with NPMs' definitions (see ../shared/REFERENCE.md), model units.

- IoU: 1M uniform points in the cube, inside/outside of gt and prediction (winding number).
- Chamfer-L2: 100k area-weighted samples per mesh, squared nearest distances,
  0.5 * (mean gt->pred + mean pred->gt).
- EPE: 100k barycentric samples on gt and prediction (fixed topologies); at keyframes every
  50 frames each gt sample is matched to its nearest predicted sample; for every other frame,
  the L2 distance between the gt sample and its matched sample moved with the prediction;
  mean over all keyframe/frame pairs (not squared).
Nearest neighbours come from scipy's cKDTree; inside tests from warp (data/sdf.py).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .data.sdf import inside, sample_surface
from .space import CUBE_BOUND


def iou(gt_vertices, gt_faces, pred_vertices, pred_faces, n_points: int = 1_000_000, seed: int = 0) -> float:
    """Volumetric IoU of two watertight meshes (model units) from uniform points in the cube."""
    pts = np.random.default_rng(seed).uniform(-CUBE_BOUND, CUBE_BOUND, (n_points, 3)).astype(np.float32)
    a, b = _inside_boxed(gt_vertices, gt_faces, pts), _inside_boxed(pred_vertices, pred_faces, pts)
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def _inside_boxed(vertices, faces, points):
    """Inside test that only queries points within the mesh's bounding box (a body fills ~5%
    of the cube, so this is ~20x fewer BVH queries for the same answer)."""
    v = np.asarray(vertices)
    box = np.all((points >= v.min(0)) & (points <= v.max(0)), axis=1)
    out = np.zeros(len(points), dtype=bool)
    if box.any():
        out[box] = inside(v, faces, points[box])
    return out


def chamfer_l2(gt_vertices, gt_faces, pred_vertices, pred_faces, n_points: int = 100_000, seed: int = 0) -> float:
    """Symmetric squared Chamfer distance between area-weighted surface samples (model units^2)."""
    rng = np.random.default_rng(seed)
    a = sample_surface(np.asarray(gt_vertices, np.float64), gt_faces, n_points, rng)[2]
    b = sample_surface(np.asarray(pred_vertices, np.float64), pred_faces, n_points, rng)[2]
    d_ab = cKDTree(b).query(a, workers=-1)[0]
    d_ba = cKDTree(a).query(b, workers=-1)[0]
    return float(0.5 * (np.mean(d_ab**2) + np.mean(d_ba**2)))


def _barycentric_points(vertices_seq: np.ndarray, faces: np.ndarray, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """[T, V, 3] vertices -> [T, N, 3] points of fixed (face, barycentric) samples in every frame."""
    tri = vertices_seq[:, faces[face]]  # [T, N, 3, 3]
    return np.einsum("tnkc,nk->tnc", tri, bary)


def epe(gt_seq, gt_faces, pred_seq, pred_faces, n_points: int = 100_000, keyframe_every: int = 50,
        seed: int = 0) -> float:
    """End-point (tracking) error of a predicted sequence [T, V', 3] against gt [T, V, 3]."""
    gt_seq, pred_seq = np.asarray(gt_seq, np.float64), np.asarray(pred_seq, np.float64)
    if len(gt_seq) != len(pred_seq):
        raise ValueError(f"EPE: {len(gt_seq)} gt frames vs {len(pred_seq)} predicted frames")
    if len(gt_seq) < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    gf, gb, _, _ = sample_surface(gt_seq[0], gt_faces, n_points, rng)
    pf, pb, _, _ = sample_surface(pred_seq[0], pred_faces, n_points, rng)
    gt_pts = _barycentric_points(gt_seq, gt_faces, gf, gb)
    pred_pts = _barycentric_points(pred_seq, pred_faces, pf, pb)
    errors = []
    T = len(gt_seq)
    for k in range(0, T, keyframe_every):
        match = cKDTree(pred_pts[k]).query(gt_pts[k], workers=-1)[1]
        for t in range(k, min(k + keyframe_every, T)):
            if t != k:
                errors.append(np.linalg.norm(gt_pts[t] - pred_pts[t][match], axis=1).mean())
    return float(np.mean(errors))


def evaluate_sequence(pred_seq_m, pred_faces, gt_seq_m, gt_faces, iou_points: int = 1_000_000,
                      chamfer_points: int = 100_000, epe_points: int = 100_000, progress=None) -> dict:
    """Per-frame IoU and Chamfer-L2 and the sequence EPE of predicted vs gt meshes given in
    metres ([T, V, 3] each; converted to model units here). Returns plain lists/floats."""
    from .space import metres_to_model

    pred = metres_to_model(np.asarray(pred_seq_m, np.float64))
    gt = metres_to_model(np.asarray(gt_seq_m, np.float64))
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted frames vs {len(gt)} gt frames")
    ious, chamfers = [], []
    for t in range(len(gt)):
        ious.append(iou(gt[t], gt_faces, pred[t], pred_faces, iou_points, seed=t))
        chamfers.append(chamfer_l2(gt[t], gt_faces, pred[t], pred_faces, chamfer_points, seed=t))
        if progress:
            progress(t + 1, len(gt))
    e = epe(gt, gt_faces, pred, pred_faces, epe_points)
    return {"iou": ious, "chamfer_l2": chamfers, "epe": e,
            "mean": {"iou": float(np.mean(ious)), "chamfer_l2": float(np.mean(chamfers)), "epe": e, "epe_cm": e * 100 / 0.4}}
