"""Approximate posing through anchors: evaluate a displacement field at a few anchor vertices and
spread it to every vertex with fixed k-nearest-anchor inverse-distance weights.

The explorer's pose sliders use it while dragging (a few thousand decoder queries instead of
one per vertex); pose_mesh (extract.py) is the exact posing. The weights depend only on the
canonical mesh, so they are built once per mesh and reused for every pose.
Must not: know decoders or checkpoints (the field arrives as a plain callable), or use torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ANCHORS = 2048
ANCHOR_K = 4


@dataclass(frozen=True)
class Anchors:
    """Anchor rows of a mesh and each vertex's weighted nearest anchors."""

    index: np.ndarray  # [A] int64, the vertex rows used as anchors (sorted)
    neighbours: np.ndarray  # [V, k] int64, positions in `index` of each vertex's nearest anchors
    weights: np.ndarray  # [V, k] float32, inverse-distance weights, each row sums to 1

    def spread(self, displacement: np.ndarray) -> np.ndarray:
        """displacement [A, 3] at the anchors -> [V, 3] at every vertex (weighted mean of its k anchors)."""
        return np.einsum("vk,vkc->vc", self.weights, np.asarray(displacement, np.float32)[self.neighbours])


def anchors(vertices: np.ndarray, n: int = ANCHORS, k: int = ANCHOR_K, seed: int = 0) -> Anchors:
    """Anchors of a mesh: a fixed random subset of min(n, V) of its vertices [V, 3] (any frame,
    any units) and, per vertex, its k nearest anchors with weights 1 / (distance + 1e-4)."""
    from scipy.spatial import cKDTree

    vertices = np.asarray(vertices)
    V = len(vertices)
    index = np.sort(np.random.default_rng(seed).permutation(V)[: min(n, V)]).astype(np.int64)
    k = min(k, len(index))
    d, nn = cKDTree(vertices[index]).query(vertices, k=k)
    d, nn = d.reshape(V, k), nn.reshape(V, k)
    w = 1.0 / (d + 1e-4)
    return Anchors(index, nn.astype(np.int64), (w / w.sum(1, keepdims=True)).astype(np.float32))


def pose_with_anchors(
    vertices: np.ndarray, a: Anchors, displacement_fn: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """Posed vertices [V, 3] = v + spread(displacement_fn(v[anchors])).

    vertices: [V, 3] canonical, model units (the mesh `a` was built for); displacement_fn:
    [A, 3] canonical -> [A, 3] displacements, same units."""
    vertices = np.asarray(vertices, np.float32)
    return vertices + a.spread(displacement_fn(vertices[a.index]))
