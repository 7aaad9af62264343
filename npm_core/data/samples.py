"""In-memory training samples handed to the training loops (the contract between data and train).

Shape stage: SDF samples per training identity. Pose stage: flow samples are stored compactly
as posed *vertices* per frame plus one fixed set of (face, barycentrics, normal offset) per
identity; `flow_points` turns them into canonical/posed point pairs on the fly (the same
barycentrics and offset carried into every frame, as the reference does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ShapeSamples:
    """points: [I, N, 3] canonical, model units; sdf: [I, N] (negative inside).

    Columns [:n_near] are near-surface samples, [n_near:] uniform in the cube."""

    points: torch.Tensor
    sdf: torch.Tensor
    n_near: int

    def __post_init__(self):
        if self.points.ndim != 3 or self.points.shape[-1] != 3:
            raise ValueError(f"ShapeSamples.points: expected [I, N, 3], got {tuple(self.points.shape)}")
        if self.sdf.shape != self.points.shape[:2]:
            raise ValueError(f"ShapeSamples.sdf: expected {tuple(self.points.shape[:2])}, got {tuple(self.sdf.shape)}")

    @property
    def num_shapes(self) -> int:
        return self.points.shape[0]


@dataclass
class FlowSamples:
    """Correspondences canonical -> posed for every training frame.

    canonical_vertices: [I, V, 3] rest-pose vertices of each training identity (model units)
    posed_vertices:     [T, V, 3] posed vertices of each training frame (model units, pelvis-centred)
    frame_shape:        [T] int64, index of the identity (shape code) of each frame
    faces:              [F, 3] int64, shared by every mesh
    face_index:         [I, S] int64, per-identity fixed sample faces
    barycentric:        [I, S, 3] float32
    offset:             [I, S] float32, signed offset along the face normal (model units)
    sigma_index:        [S] int64, which sigma set each sample belongs to (0: 0.002, 1: 0.01)
    """

    canonical_vertices: torch.Tensor
    posed_vertices: torch.Tensor
    frame_shape: torch.Tensor
    faces: torch.Tensor
    face_index: torch.Tensor
    barycentric: torch.Tensor
    offset: torch.Tensor
    sigma_index: torch.Tensor

    @property
    def num_frames(self) -> int:
        return self.posed_vertices.shape[0]

    def pairs(self, frames: torch.Tensor, sample_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Canonical and posed points of `sample_index` [B, K] in frames `frames` [B].

        Returns (x [B, K, 3] canonical, y [B, K, 3] posed), model units."""
        ident = self.frame_shape[frames]
        fi = torch.gather(self.face_index[ident], 1, sample_index)
        bary = torch.gather(self.barycentric[ident], 1, sample_index[..., None].expand(-1, -1, 3))
        off = torch.gather(self.offset[ident], 1, sample_index)
        x = flow_points(self.canonical_vertices[ident], self.faces, fi, bary, off)
        y = flow_points(self.posed_vertices[frames], self.faces, fi, bary, off)
        return x, y


def face_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """vertices [B, V, 3], faces [F, 3] -> unit normals [B, F, 3] (outward for CCW faces)."""
    tri = vertices[:, faces]  # [B, F, 3, 3]
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def flow_points(
    vertices: torch.Tensor,
    faces: torch.Tensor,
    face_index: torch.Tensor,
    barycentric: torch.Tensor,
    offset: torch.Tensor,
) -> torch.Tensor:
    """Surface point + offset * face normal, per mesh of a batch.

    vertices [B, V, 3]; faces [F, 3]; face_index [B, K]; barycentric [B, K, 3]; offset [B, K]
    -> points [B, K, 3] in the frame of `vertices`."""
    tri = torch.stack(
        [torch.gather(vertices, 1, faces[face_index][..., c, None].expand(-1, -1, 3)) for c in range(3)], 2
    )
    p = (tri * barycentric[..., None]).sum(2)
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    n = n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return p + offset[..., None] * n
