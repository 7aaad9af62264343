"""Flow (correspondence) samples canonical -> posed, the pose stage's training data.

Per identity, a fixed set of area-weighted surface samples (face, barycentrics) plus an
offset u * sigma along the face normal, u ~ U[-1, 1], one set per sigma (reference: 0.002
and 0.01). Because every Anny mesh shares one topology, the same face, barycentrics and
offset along *that frame's* face normal give the posed point of any frame: only posed
vertices are stored per frame, and points are made on the fly (samples.flow_points).
"""

from __future__ import annotations

import numpy as np
import torch

from .samples import flow_points
from .sdf import sample_surface


def flow_sample_set(
    canonical_vertices: np.ndarray, faces: np.ndarray, per_sigma: int, sigmas=(0.002, 0.01), seed: int = 0
):
    """Fixed flow samples of one identity: (face [S], barycentric [S,3], offset [S], sigma_index [S]),
    S = per_sigma * len(sigmas); offsets in model units."""
    rng = np.random.default_rng(seed)
    out = []
    for k, sigma in enumerate(sigmas):
        face, bary, _, _ = sample_surface(canonical_vertices, faces, per_sigma, rng)
        offset = (rng.uniform(-1.0, 1.0, per_sigma) * sigma).astype(np.float32)
        out.append((face.astype(np.int64), bary, offset, np.full(per_sigma, k, dtype=np.int64)))
    return tuple(np.concatenate(parts) for parts in zip(*out))


def posed_flow_points(
    vertices: np.ndarray, faces: np.ndarray, face: np.ndarray, bary: np.ndarray, offset: np.ndarray
) -> np.ndarray:
    """Points [S,3] of one flow sample set on a mesh with vertices [V,3] (canonical or posed)."""
    out = flow_points(
        torch.as_tensor(vertices, dtype=torch.float32)[None],
        torch.as_tensor(faces),
        torch.as_tensor(face)[None],
        torch.as_tensor(bary, dtype=torch.float32)[None],
        torch.as_tensor(offset, dtype=torch.float32)[None],
    )
    return out[0].numpy()
