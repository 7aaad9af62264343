"""Composing latent codes: the blend of two codes, a sample from the codes' prior, the semantic
slider edits, and the shape-of-one-identity-with-the-pose-of-another grid. numpy only.

Codes are rows of a checkpoint's code tables: shape codes [Ds], pose codes [Dp] (float32).
Must not: decode (meshes come from the decoders, elsewhere) or read files.
"""

from __future__ import annotations

import numpy as np


def mix(a, b, t: float) -> np.ndarray:
    """Linear blend of two codes (or any rows of a per-code table): (1 - t) a + t b, float32."""
    return ((1.0 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)).astype(np.float32)


def prior_sample(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A code from the Gaussian that fits the training codes [K, D] (per-dimension mean and std;
    one code alone gets std 0.01)."""
    codes = np.asarray(codes, np.float32)
    std = codes.std(0) if len(codes) > 1 else np.full(codes.shape[1], 0.01, np.float32)
    return (codes.mean(0) + rng.standard_normal(codes.shape[1]) * std).astype(np.float32)


def edit_shape(code: np.ndarray, semantics=None, phenotypes=None, delta=None, pca=None) -> np.ndarray:
    """The shape code after the semantic sliders: code [Ds] moved along the phenotype map by
    `delta` [6] from `phenotypes` [6] (the code's own), plus offsets `pca` [K] along the shape
    PCA in standard deviations. No semantics (npm_core.semantics.Semantics): the code unchanged."""
    if semantics is None:
        return np.asarray(code, np.float32)
    return _edit(code, semantics.move_shape, phenotypes, delta, semantics.shape_pca, pca)


def edit_pose(code: np.ndarray, semantics=None, angles=None, delta=None, pca=None) -> np.ndarray:
    """The pose code after the semantic sliders: code [Dp] moved along the joint-angle map by
    `delta` [J] degrees from `angles` [J], plus offsets `pca` [K] along the pose PCA (std units).
    Semantics without a joint-angle map (a domain without joint angles): only the PCA offsets;
    without a pose PCA either: the code unchanged."""
    if semantics is None or semantics.pose_pca is None:
        return np.asarray(code, np.float32)
    move = semantics.move_pose if semantics.angles_to_pose is not None else None
    return _edit(code, move, angles, delta, semantics.pose_pca, pca)


def _edit(code, move, labels, delta, pca_basis, pca) -> np.ndarray:
    code = np.asarray(code, np.float32)
    if move is not None and delta is not None and len(delta) and labels is not None:
        code = move(code, labels, delta)
    if pca is not None and len(pca):
        code = code + pca_basis.offset(pca)
    return np.asarray(code, np.float32)


def transfer_grid(shape_codes: np.ndarray, pose_codes: np.ndarray | None, shapes: list, poses: list) -> list:
    """(shape code, pose code or None) of every shape row i in `shapes` with every pose row j in
    `poses`, row-major: the body of identity i in the pose of frame j, as in the paper's transfer
    figure. No pose codes: each shape once per entry of `poses`, in the canonical pose."""
    return [
        (np.asarray(shape_codes[i], np.float32), None if pose_codes is None else np.asarray(pose_codes[j], np.float32))
        for i in shapes
        for j in poses
    ]
