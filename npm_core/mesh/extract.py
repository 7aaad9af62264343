"""Mesh extraction from a neural (or analytic) SDF: exact narrow band, dense reference, posing.

Grid: resolution N = cells per axis; nodes (N + 1)^3 cover the cube [-bound, bound]^3, node
(i, j, k) at -bound + (i, j, k) * 2 bound / N (model units, canonical frame). The narrow band
starts on a coarse lattice of `coarse` cells per axis (N / coarse a power of two). Each block
is probed at its centre and kept while one of its 9 samples (8 corners + centre) is within
L' * half-diagonal of the level, or the samples lie on both sides of it; L' = max(L, the
block's own slope max_k |f(centre) - f(corner k)| / half-diagonal). Kept blocks are split
(their 18 other new nodes evaluated, deduplicated across blocks) down to single cells, and
sparse marching cubes runs on those. Node values are bit-identical to dense evaluation, so:
- f L-Lipschitz => the mesh equals extract_dense's exactly (every point of a block is within
  a half-diagonal of its centre, so a dropped block holds no zero);
- f steeper than L: L' follows the steepness where a block's own samples show it, and a
  block with samples on both sides of the level is always kept; so a small steep part is
  kept when it covers a sample or comes within L' * half-diagonal (in value) of one
  (tests/test_extract.py: 3 * min(sphere r 0.2, sphere r 0.03 at a coarse block's centre)
  at L = 1 and 2 equals dense). A part lying wholly between the samples of the blocks
  around it, farther than that from all of them, can still be missed.
Guard: a narrow mesh with open edges inside the cube (part of a surface dropped) means L was
too small: re-run with 2L, then fall back to dense; logged. A missing closed part leaves no
open edge: the centre probes are the guard for that.

Choosing L (default DEFAULT_LIPSCHITZ = 2.0): a true SDF needs L = 1. A decoder trained on
clamped losses is about 1-Lipschitz near its surface but steeper away from it (where the loss
does not see it); the per-block slope takes over there. The probes cost one evaluation per
dropped block; figures for L = 1 and 2 on the shipped checkpoint in
benchmarks/results/extract_cpu.md (benchmarks/bench_extract.py).

Must not: know how the decoder is built (decoder_fn is any callable points -> sdf; a shape
model precomputes its code part itself), import the viewer, or draw.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from npm_core.mesh.marching_cubes import NATURAL_OFFSETS, marching_cubes_dense, marching_cubes_sparse

log = logging.getLogger(__name__)

DEFAULT_LIPSCHITZ = 2.0
Decoder = Callable[[torch.Tensor], torch.Tensor]  # [N, 3] model units -> [N] SDF


@dataclass
class ExtractResult:
    vertices: torch.Tensor  # [V, 3] float32, model units, canonical frame
    faces: torch.Tensor  # [F, 3] int64, outward winding for a negative-inside SDF
    n_evaluations: int  # decoder points evaluated (dense: (N + 1)^3)
    seconds: float
    method: str  # 'narrow', 'narrow-2L' or 'dense'
    resolution: int = 0
    lipschitz: float = 0.0


def default_chunk(device) -> int:
    return 1 << 18 if torch.device(device).type == "cuda" else 1 << 16


def default_coarse(resolution: int) -> int:
    """Coarsest lattice: halve N while even and above 8 (coarser than 8 saves nothing: measured)."""
    n0 = resolution
    while n0 % 2 == 0 and n0 > 8:
        n0 //= 2
    return n0


def _node_points(ijk: torch.Tensor, resolution: int, bound: float) -> torch.Tensor:
    """ijk: [K, 3] int64 node indices -> [K, 3] float32 model units (the one formula both paths use)."""
    return ijk.float() * (2.0 * bound / resolution) - bound


def _evaluate(decoder_fn: Decoder, points: torch.Tensor, chunk: int) -> torch.Tensor:
    """points: [K, 3] model units -> [K] float32 SDF, decoder called on chunks of <= chunk points."""
    out = torch.empty(points.shape[0], device=points.device)
    for s in range(0, points.shape[0], chunk):
        out[s : s + chunk] = decoder_fn(points[s : s + chunk]).reshape(-1).float()
    return out


def _to_world(verts_grid: torch.Tensor, resolution: int, bound: float) -> torch.Tensor:
    return verts_grid * (2.0 * bound / resolution) - bound


def open_edge_count(verts_grid: torch.Tensor, faces: torch.Tensor, resolution: int) -> int:
    """Edges used by one face only, ignoring those on the grid's outer faces (surface cut by the cube).

    verts_grid: [V, 3] grid coordinates; faces: [F, 3].
    """
    if faces.shape[0] == 0:
        return 0
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).sort(dim=1).values
    key = e[:, 0] * verts_grid.shape[0] + e[:, 1]
    uniq, counts = torch.unique(key, return_counts=True)
    single = uniq[counts == 1]
    if single.numel() == 0:
        return 0
    a, b = verts_grid[single // verts_grid.shape[0]], verts_grid[single % verts_grid.shape[0]]
    on_side = ((a == 0) & (b == 0)) | ((a == resolution) & (b == resolution))
    return int((~on_side.any(dim=1)).sum())


def _narrow(decoder_fn, resolution, bound, lipschitz, chunk, device, coarse, level):
    """One narrow-band pass. Returns (verts_grid [V,3], faces [F,3], n_evaluations).

    Each candidate block is probed at its centre (a node that its split needs anyway) and kept
    when one of its 9 samples (8 corners, centre) is within L' * half-diagonal of the level or
    they lie on both sides of it, L' = max(L, the block's measured slope max_k |f(centre) -
    f(corner k)| / half-diagonal)."""
    n_nodes = resolution + 1
    h = 2.0 * bound / resolution
    size = resolution // coarse
    offsets8 = torch.as_tensor(NATURAL_OFFSETS, device=device)  # [8, 3]
    g = torch.arange(coarse + 1, device=device) * size
    nodes = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    values = _evaluate(decoder_fn, _node_points(nodes, resolution, bound), chunk)
    values = values.view(coarse + 1, coarse + 1, coarse + 1)
    n_eval = nodes.shape[0]
    c = torch.arange(coarse, device=device)
    blocks = torch.stack(torch.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)  # coarse units
    corner_values = values[tuple((blocks.unsqueeze(1) + offsets8).unbind(-1))]  # [B, 8]
    blocks = blocks * size  # lowest node, fine units
    # the 27 nodes of a split block: index a = ax + 3 ay + 9 az, a* in {0, 1, 2} half-sizes
    a27 = torch.stack(torch.meshgrid(*[torch.arange(3, device=device)] * 3, indexing="ij"), -1)
    a27 = a27.permute(2, 1, 0, 3).reshape(-1, 3)  # a = ax + 3 ay + 9 az
    strides = torch.tensor([1, 3, 9], device=device)  # (x * strides).sum(-1): CUDA has no integer matmul
    idx27 = (a27 * strides).sum(-1)
    is_corner = (a27 % 2 == 0).all(1)
    centre_slot = 13  # a = (1, 1, 1)
    corner_slot = (offsets8 * 2 * strides).sum(-1)  # [8] slot of parent corner k
    edge_face = ~is_corner & (idx27 != centre_slot)
    new_slots = idx27[edge_face]  # [18] edge midpoints and face centres
    # [8 child, 8 corner] slot of child c's corner k
    child_corner_slot = ((offsets8[:, None, :] + offsets8[None, :, :]) * strides).sum(-1)
    while size > 1:
        half = size // 2
        half_diag = size * h * math.sqrt(3.0) / 2.0
        centre = _evaluate(decoder_fn, _node_points(blocks + half, resolution, bound), chunk)
        n_eval += centre.shape[0]
        samples = torch.cat([corner_values, centre[:, None]], 1) - level  # [B, 9]
        slope = (corner_values - centre[:, None]).abs().max(dim=1).values / half_diag
        reach = slope.clamp(min=lipschitz) * half_diag
        keep = (samples.abs().min(dim=1).values <= reach) | ((samples > 0).any(1) & (samples <= 0).any(1))
        blocks, corner_values, centre = blocks[keep], corner_values[keep], centre[keep]
        new_nodes = blocks.unsqueeze(1) + a27[edge_face] * half  # [K, 18, 3]
        ids = (new_nodes[..., 0] * n_nodes + new_nodes[..., 1]) * n_nodes + new_nodes[..., 2]
        uniq, inverse = torch.unique(ids.reshape(-1), return_inverse=True)
        ijk = torch.stack([uniq // (n_nodes * n_nodes), (uniq // n_nodes) % n_nodes, uniq % n_nodes], 1)
        new_values = _evaluate(decoder_fn, _node_points(ijk, resolution, bound), chunk)
        n_eval += uniq.shape[0]
        v27 = torch.empty(blocks.shape[0], 27, device=device)
        v27[:, corner_slot] = corner_values
        v27[:, centre_slot] = centre
        v27[:, new_slots] = new_values[inverse].view(-1, 18)
        blocks = (blocks.unsqueeze(1) + offsets8 * half).reshape(-1, 3)
        corner_values = v27[:, child_corner_slot].reshape(-1, 8)
        size = half
    verts, faces = marching_cubes_sparse(blocks, corner_values, (n_nodes,) * 3, level)
    return verts, faces, n_eval


def extract_dense(
    decoder_fn: Decoder, resolution: int, bound: float = 0.5, chunk: int | None = None, device=None, level: float = 0.0
) -> ExtractResult:
    """Reference pipeline: evaluate all (N + 1)^3 nodes, dense marching cubes.

    decoder_fn: points [K, 3] (model units, canonical) -> SDF [K]. Returns ExtractResult with
    vertices [V, 3] float32 in model units.
    """
    device = torch.device(device or "cpu")
    chunk = chunk or default_chunk(device)
    t0 = time.perf_counter()
    n = resolution + 1
    with torch.inference_mode():
        values = torch.empty(n**3, device=device)
        for s in range(0, n**3, chunk):
            ids = torch.arange(s, min(s + chunk, n**3), device=device)
            ijk = torch.stack([ids // (n * n), (ids // n) % n, ids % n], 1)
            values[s : s + chunk] = decoder_fn(_node_points(ijk, resolution, bound)).reshape(-1).float()
        values = values.view(n, n, n)
        verts, faces = marching_cubes_dense(values, level)
        verts = _to_world(verts, resolution, bound)
    return ExtractResult(verts, faces, n**3, time.perf_counter() - t0, "dense", resolution, 0.0)


def extract(
    decoder_fn: Decoder,
    resolution: int,
    bound: float = 0.5,
    lipschitz: float = DEFAULT_LIPSCHITZ,
    chunk: int | None = None,
    device=None,
    coarse: int | None = None,
    level: float = 0.0,
) -> ExtractResult:
    """Narrow-band extraction (module docstring), equal to extract_dense when decoder_fn is
    lipschitz-Lipschitz.

    decoder_fn: points [K, 3] (model units, canonical, in [-bound, bound]^3) -> SDF [K].
    resolution: cells per axis N (nodes N + 1); coarse: cells per axis of the first lattice,
    N / coarse a power of two (default default_coarse(N)). Returns ExtractResult, vertices
    [V, 3] float32 model units; n_evaluations counts every decoder point of every attempt.
    """
    device = torch.device(device or "cpu")
    chunk = chunk or default_chunk(device)
    coarse = coarse or default_coarse(resolution)
    ratio = resolution // coarse
    if resolution % coarse or ratio & (ratio - 1):
        raise ValueError(f"resolution {resolution} must be coarse {coarse} times a power of two")
    t0 = time.perf_counter()
    n_eval = 0
    with torch.inference_mode():
        for method, lip in (("narrow", lipschitz), ("narrow-2L", 2.0 * lipschitz)):
            verts, faces, n = _narrow(decoder_fn, resolution, bound, lip, chunk, device, coarse, level)
            n_eval += n
            if open_edge_count(verts, faces, resolution) == 0:
                verts = _to_world(verts, resolution, bound)
                return ExtractResult(verts, faces, n_eval, time.perf_counter() - t0, method, resolution, lip)
            log.warning("narrow band with L=%g left open edges at N=%d: L too small for this decoder", lip, resolution)
    log.warning("narrow band failed twice at N=%d; falling back to dense extraction", resolution)
    dense = extract_dense(decoder_fn, resolution, bound, chunk, device, level)
    dense.n_evaluations += n_eval
    dense.seconds = time.perf_counter() - t0
    return dense


def pose_mesh(vertices_canonical: torch.Tensor, displacement_fn: Decoder, chunk: int = 1 << 16) -> torch.Tensor:
    """Posed vertices = v + displacement_fn(v); faces are shared with the canonical mesh.

    vertices_canonical: [V, 3] model units, canonical frame; displacement_fn: [K, 3] -> [K, 3].
    Returns [V, 3] posed vertices, model units.
    """
    out = torch.empty_like(vertices_canonical)
    with torch.inference_mode():
        for s in range(0, vertices_canonical.shape[0], chunk):
            v = vertices_canonical[s : s + chunk]
            out[s : s + chunk] = v + displacement_fn(v)
    return out
