"""Evaluation metrics as the NPMs evaluation code defines them (its compute_errors.py), model units.

- IoU: 1M uniform points in the cube [-0.5, 0.5]^3, inside/outside of gt and prediction
  (winding number here, ray parity there: the same for watertight meshes).
- Chamfer-L2: 100k area-weighted samples per mesh, squared nearest distances,
  0.5 * (mean gt->pred + mean pred->gt), in model units^2.
- EPE (default keyframes="reference", the reference's definition): 100k barycentric samples
  (face, barycentrics) drawn on gt and on prediction in frame 0 and followed through the
  sequence (both topologies fixed). T frames get n = int(T / min(50, T)) keyframes at
  i * floor(T / n), i < n. At each keyframe every gt sample is matched to its nearest
  predicted sample; for every other frame t of the whole sequence (before and after the
  keyframe) the error is the mean L2 distance between the gt sample and its matched sample
  moved with the prediction. EPE = mean over all (keyframe, frame) pairs, in model units
  (not squared); NaN for T = 1 (no pairs). One difference, on purpose: the reference
  drops a keyframe outright when any match is farther than ~0.19 units (its k=1 match
  weight exp(-d^2 / (2 * 0.005^2)) underflows to 0); here every keyframe counts.
  keyframes="windowed" is the earlier definition of this package: a keyframe every 50
  frames, each scored only on the frames up to the next keyframe (short-horizon tracking;
  lower than the reference's whenever tracking drifts).
Nearest neighbours come from scipy's cKDTree; inside tests from warp (data/sdf.py).
Must not: load files or know about fits (callers pass vertex arrays).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .data.sdf import inside, sample_surface
from .space import CUBE_BOUND, METRES_TO_MODEL

KEYFRAME_EVERY = 50


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


def reference_keyframes(frames: int, every: int = KEYFRAME_EVERY) -> list[int]:
    """The reference's keyframes of a T-frame sequence: i * floor(T / n), n = int(T / min(every, T))."""
    if frames < 1 or every < 1:
        raise ValueError(f"keyframes need frames >= 1 and every >= 1, got frames={frames}, every={every}")
    n = frames // min(every, frames)
    return [i * (frames // n) for i in range(n)]


def _scored_pairs(frames: int, keyframes: str, every: int) -> dict[int, list[int]]:
    """keyframe -> frames scored against it."""
    if keyframes == "reference":
        return {k: [t for t in range(frames) if t != k] for k in reference_keyframes(frames, every)}
    if keyframes == "windowed":
        return {k: list(range(k + 1, min(k + every, frames))) for k in range(0, frames, every)}
    raise ValueError(f"EPE keyframes must be 'reference' or 'windowed', got {keyframes!r}")


def epe(
    gt_seq,
    gt_faces,
    pred_seq,
    pred_faces,
    n_points: int = 100_000,
    keyframes: str = "reference",
    every: int = KEYFRAME_EVERY,
    seed: int = 0,
) -> float:
    """End-point (tracking) error of a predicted sequence against gt, model units (module docstring).

    gt_seq: [T, V, 3] with gt_faces [F, 3]; pred_seq: [T, V', 3] with pred_faces [F', 3]; both
    model units, fixed topology over time. keyframes: 'reference' (default) or 'windowed'.
    Returns NaN when no (keyframe, frame) pair exists (T = 1)."""
    gt_seq, pred_seq = np.asarray(gt_seq, np.float64), np.asarray(pred_seq, np.float64)
    if len(gt_seq) != len(pred_seq):
        raise ValueError(f"EPE: {len(gt_seq)} gt frames vs {len(pred_seq)} predicted frames")
    pairs = _scored_pairs(len(gt_seq), keyframes, every)
    rng = np.random.default_rng(seed)
    gf, gb, _, _ = sample_surface(gt_seq[0], gt_faces, n_points, rng)
    pf, pb, _, _ = sample_surface(pred_seq[0], pred_faces, n_points, rng)

    def points(seq, faces, face, bary, t):  # [N, 3] samples in frame t
        return np.einsum("nkc,nk->nc", seq[t][faces[face]], bary)

    match = {
        k: cKDTree(points(pred_seq, pred_faces, pf, pb, k)).query(points(gt_seq, gt_faces, gf, gb, k), workers=-1)[1]
        for k in pairs
    }
    errors = []
    for t in range(len(gt_seq)):  # one frame's samples in memory at a time
        ks = [k for k, ts in pairs.items() if t in ts]
        if ks:
            g, p = points(gt_seq, gt_faces, gf, gb, t), points(pred_seq, pred_faces, pf, pb, t)
            errors += [np.linalg.norm(g - p[match[k]], axis=1).mean() for k in ks]
    return float(np.mean(errors)) if errors else float("nan")


def evaluate_sequence(
    pred_seq_m,
    pred_faces,
    gt_seq_m,
    gt_faces,
    iou_points: int = 1_000_000,
    chamfer_points: int = 100_000,
    epe_points: int = 100_000,
    progress=None,
    model_per_metre: float = METRES_TO_MODEL,
) -> dict:
    """Per-frame IoU and Chamfer-L2 and the sequence EPE (reference keyframes) of predicted vs
    gt meshes given in metres ([T, V, 3] each; converted to the model's units here:
    model_per_metre is its domain's, 0.4 for bodies). Returns plain lists/floats."""
    pred = np.asarray(pred_seq_m, np.float64) * model_per_metre
    gt = np.asarray(gt_seq_m, np.float64) * model_per_metre
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} predicted frames vs {len(gt)} gt frames")
    ious, chamfers = [], []
    for t in range(len(gt)):
        ious.append(iou(gt[t], gt_faces, pred[t], pred_faces, iou_points, seed=t))
        chamfers.append(chamfer_l2(gt[t], gt_faces, pred[t], pred_faces, chamfer_points, seed=t))
        if progress:
            progress(t + 1, len(gt))
    e = epe(gt, gt_faces, pred, pred_faces, epe_points)
    return {
        "iou": ious,
        "chamfer_l2": chamfers,
        "epe": e,
        "mean": {
            "iou": float(np.mean(ious)),
            "chamfer_l2": float(np.mean(chamfers)),
            "epe": e,
            "epe_cm": e * 100 / model_per_metre,
        },
    }
