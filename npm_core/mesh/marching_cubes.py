"""Marching cubes in torch tensor ops, on any device (CPU, CUDA); no Python loop over cells.

Two entry points: a dense grid of values (marching_cubes_dense) and a sparse list of cells
with their 8 corner values (marching_cubes_sparse, used by narrow-band extraction). Both run
the same cell kernel, so a sparse list holding every crossed cell of a grid gives exactly
the dense result (same vertices in the same order, same faces in the same order).

Conventions
- Grid: node (i, j, k) holds values[i, j, k]; a cell is named by its lowest node. Output
  vertices are in grid coordinates (node index units) or, with origin/spacing,
  world = origin + index * spacing.
- Table: the classic 256-case table (tables.py: Bourke/Bloyd, == skimage CASESCLASSIC),
  laid on the grid as skimage lays it (table x, y, z = array axes 2, 1, 0). Corner bit set
  when value > level (outside of a negative-inside SDF), as skimage does. Output, in grid
  coordinates, has the same triangles as skimage.measure.marching_cubes(volume, level,
  method='lorensen'): the same vertex positions, each within 2 float32 steps of
  max(1, |coordinate|) (ours interpolates in float32, skimage in float64 rounded once), and
  the same faces with the same winding as skimage's default gradient_direction, in another
  order (tests/test_marching_cubes.py, also over all 254 single-cell cases). Lewiner
  (skimage's default method) tiles ambiguous cases differently, so its faces differ.
- One vertex per crossed grid edge, keyed by its global edge id (lowest node id * 3 +
  axis), vertices sorted by that key; faces wound so normals point outward (towards
  value > level), i.e. outward for a negative-inside SDF. Watertight and consistently wound
  wherever the surface does not leave the grid: in every case the triangles' boundary lies
  on the cell's faces and depends only on each face's four corner signs, so neighbouring
  cells meet edge to edge (tested over all 254 cases). A node exactly at the level is
  inside; its crossed edges then put vertices on the node itself, and the triangles between
  them are degenerate (zero area), as skimage's with allow_degenerate=True (its default).

Must not: import numpy arrays into the hot path, or know about decoders (see extract.py).
"""

from __future__ import annotations

import numpy as np
import torch

from npm_core.mesh import tables

# natural corner order used by this module's callers: corner k at (k & 1, k >> 1 & 1, k >> 2 & 1)
NATURAL_OFFSETS = np.array([[k & 1, (k >> 1) & 1, (k >> 2) & 1] for k in range(8)], dtype=np.int64)


def _build_luts() -> dict[str, np.ndarray]:
    """Tables re-expressed in the natural corner order, Bourke x, y, z = grid axes 2, 1, 0 (as
    skimage lays its table on an array): the same triangles as skimage's lorensen."""
    bourke_to_nat = tables.CORNER_OFFSETS @ np.array([4, 2, 1])  # [8] natural id of Bourke corner c
    cases = np.arange(256)
    nat_to_bourke = np.zeros(256, dtype=np.int64)
    for c in range(8):
        nat_to_bourke |= ((cases >> bourke_to_nat[c]) & 1) << c
    lo = bourke_to_nat[tables.EDGE_CORNERS[:, 0]]
    hi = bourke_to_nat[tables.EDGE_CORNERS[:, 1]]
    edge_table = tables.edge_table()
    crossed = (edge_table[:, None] >> np.arange(12)) & 1  # [256, 12]
    rank = np.cumsum(crossed, 1) - crossed  # rank of edge e among the case's crossed edges
    # the axis reversal is a reflection: swap two corners of each triangle to keep its winding
    tri = tables.padded_tri_table().reshape(256, 5, 3)[:, :, [0, 2, 1]].reshape(256, 15)
    tri_rank = np.where(tri >= 0, np.take_along_axis(rank, tri.clip(0), 1), 0)
    return {
        "nat_to_bourke": nat_to_bourke,  # [256]
        "edge_table": edge_table,  # [256] Bourke case -> crossed-edge bitmask
        "edge_mask": crossed.astype(bool),  # [256, 12] crossed edges per Bourke case
        "n_edges": crossed.sum(1),  # [256] crossed edges per case
        "n_tri_verts": (tri >= 0).sum(1),  # [256] 3 x triangles per case
        "tri_rank": tri_rank.reshape(-1),  # [256 * 15] triangle corners as ranks among crossed edges
        "edge_lo": lo,  # [12] natural corner at the edge's low end
        "edge_hi": hi,  # [12] natural corner at the edge's high end
        "edge_start": NATURAL_OFFSETS[lo],  # [12, 3] grid offset of the low end
        "edge_axis": (NATURAL_OFFSETS[hi] - NATURAL_OFFSETS[lo]).argmax(1),  # [12] grid axis of each edge
        "unit": np.eye(3, dtype=np.float32),
    }


_LUTS_NP = _build_luts()
_LUTS: dict[torch.device, dict[str, torch.Tensor]] = {}


def _luts(device: torch.device) -> dict[str, torch.Tensor]:
    if device not in _LUTS:
        _LUTS[device] = {k: torch.as_tensor(v, device=device) for k, v in _LUTS_NP.items()}
    return _LUTS[device]


def _empty(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(0, 3, device=device), torch.zeros(0, 3, dtype=torch.int64, device=device)


def _to_world(verts: torch.Tensor, origin, spacing) -> torch.Tensor:
    if origin is None and spacing is None:
        return verts
    if spacing is not None:
        verts = verts * torch.as_tensor(spacing, dtype=verts.dtype, device=verts.device)
    if origin is not None:
        verts = verts + torch.as_tensor(origin, dtype=verts.dtype, device=verts.device)
    return verts


def _exclusive_cumsum(x: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(x, 0) - x


def _mesh_cells(cells, cases, grid_shape, level, corner_values=None, values=None):
    """Cell kernel shared by both entry points.

    cells: [M, 3] int64 lowest node of each crossed cell, sorted by linear cell id.
    cases: [M] int64 natural cube index (bit k set when corner k > level), none 0 or 255.
    Edge end values come from corner_values [M, 8] (natural corner order) or, for a dense
    grid, from values [Nx, Ny, Nz] directly (same numbers either way).
    Returns vertices [V, 3] float32 grid coordinates, faces [F, 3] int64.
    """
    device = cells.device
    lut = _luts(device)
    ny, nz = int(grid_shape[1]), int(grid_shape[2])
    n_keys = 3 * int(grid_shape[0]) * ny * nz
    key_dtype = torch.int32 if n_keys < 2**31 else torch.int64
    case = lut["nat_to_bourke"][cases]  # [M] Bourke case
    cell_id, edge = lut["edge_mask"][case].nonzero(as_tuple=True)  # refs: (cell, crossed edge), edge ascending
    # global edge key = lowest node id * 3 + axis
    base = (((cells[:, 0] * ny + cells[:, 1]) * nz + cells[:, 2]) * 3).to(key_dtype)
    start = lut["edge_start"]
    key_off = (((start[:, 0] * ny + start[:, 1]) * nz + start[:, 2]) * 3 + lut["edge_axis"]).to(key_dtype)
    key = base[cell_id] + key_off[edge]
    sorted_key, perm = torch.sort(key)
    first = torch.ones_like(sorted_key, dtype=torch.bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.cumsum(first, 0) - 1  # ref -> vertex id (vertices sorted by key)
    rep = perm[first]  # one ref per vertex
    # vertex positions, one linear interpolation per crossed grid edge
    rc, re = cell_id[rep], edge[rep]
    if values is not None:
        node = (sorted_key[first] // 3).long()
        stride = torch.tensor([ny * nz, nz, 1], device=device)
        flat = values.reshape(-1)
        f0 = flat[node].float()
        f1 = flat[node + stride[lut["edge_axis"][re]]].float()
    else:
        flat = corner_values.reshape(-1)
        f0 = flat[rc * 8 + lut["edge_lo"][re]].float()
        f1 = flat[rc * 8 + lut["edge_hi"][re]].float()
    t = (level - f0) / (f1 - f0)
    verts = (cells[rc] + start[re]).float() + t.unsqueeze(1) * lut["unit"][lut["edge_axis"][re]]
    # faces: triangle corners are ranks among each cell's crossed edges
    ref_start = _exclusive_cumsum(lut["n_edges"][case])
    n_tv = lut["n_tri_verts"][case]
    row = torch.repeat_interleave(torch.arange(cells.shape[0], device=device), n_tv)
    j = torch.arange(row.shape[0], device=device) - _exclusive_cumsum(n_tv)[row]
    rank = lut["tri_rank"][case[row] * 15 + j]
    faces = inverse[ref_start[row] + rank].view(-1, 3)
    return verts, faces


def _case_index(outside: torch.Tensor) -> torch.Tensor:
    """outside: [M, 8] bool (value > level), natural corner order -> [M] int64 natural cube index."""
    weights = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], device=outside.device)
    return (outside.long() * weights).sum(1)


_SAME_BITS = -0x0101010101010102  # 0xFEFE...FE: every bit of a byte but its lowest


def _crossed_cells(case: torch.Tensor) -> torch.Tensor:
    """Sorted flat indices of cells whose uint8 case is neither 0 nor 255.

    case: contiguous uint8. Works on 8-byte words first (a byte is 0 or 255 iff all its bits
    equal its neighbour bit), so the full-size pass is one cheap int64 pass.
    """
    flat = case.reshape(-1)
    n8 = flat.numel() // 8 * 8
    w = flat[:n8].view(torch.int64)
    hit = ((w ^ (w << 1)) & _SAME_BITS) != 0
    words = hit.nonzero().squeeze(1)
    cand = (words.unsqueeze(1) * 8 + torch.arange(8, device=flat.device)).reshape(-1)
    if n8 < flat.numel():
        cand = torch.cat([cand, torch.arange(n8, flat.numel(), device=flat.device)])
    c = flat[cand]
    return cand[(c != 0) & (c != 255)]


def marching_cubes_dense(values: torch.Tensor, level: float = 0.0, origin=None, spacing=None):
    """Isosurface of a dense grid.

    values: [Nx, Ny, Nz] float tensor (any device), node (i, j, k) at grid point (i, j, k).
    origin, spacing: optional 3-vectors; vertices = origin + grid coordinates * spacing.
    Returns vertices [V, 3] float32 (grid or world coordinates, same device) and faces
    [F, 3] int64, outward normals towards value > level.
    """
    assert values.dim() == 3 and min(values.shape) >= 2, "values must be [Nx, Ny, Nz], each >= 2"
    nx, ny, nz = values.shape
    outside = (values > level).contiguous().view(torch.uint8)
    a = outside[:-1] | (outside[1:] << 1)
    b = a[:, :-1] | (a[:, 1:] << 2)
    case = b[:, :, :-1] | (b[:, :, 1:] << 4)  # [Nx-1, Ny-1, Nz-1] natural cube index
    idx = _crossed_cells(case)
    if idx.numel() == 0:
        return _empty(values.device)
    cy, cz = ny - 1, nz - 1
    cells = torch.stack([idx // (cy * cz), (idx // cz) % cy, idx % cz], 1)
    verts, faces = _mesh_cells(cells, case.reshape(-1)[idx].long(), values.shape, level, values=values)
    return _to_world(verts, origin, spacing), faces


def marching_cubes_sparse(
    cell_index: torch.Tensor, corner_values: torch.Tensor, grid_shape, level: float = 0.0, origin=None, spacing=None
):
    """Isosurface from a list of cells of a grid (e.g. the narrow band).

    cell_index: [M, 3] int64 lowest node (i, j, k) of each cell, unique, any order.
    corner_values: [M, 8] float values at the cell's corners in natural order: corner k at
    node (i + (k & 1), j + (k >> 1 & 1), k + (k >> 2 & 1)).
    grid_shape: node counts (Nx, Ny, Nz) of the full grid (fixes the vertex keys).
    Cells without a crossing are dropped. If the list holds every crossed cell of a grid the
    result is identical to marching_cubes_dense of that grid. Returns as marching_cubes_dense.
    """
    device = cell_index.device
    case = _case_index(corner_values > level)
    keep = (case != 0) & (case != 255)
    cells, corner_values, case = cell_index[keep], corner_values[keep], case[keep]
    if cells.shape[0] == 0:
        return _empty(device)
    ny, nz = int(grid_shape[1]), int(grid_shape[2])
    order = torch.argsort(((cells[:, 0] * (ny - 1)) + cells[:, 1]) * (nz - 1) + cells[:, 2])
    verts, faces = _mesh_cells(cells[order], case[order], grid_shape, level, corner_values=corner_values[order])
    return _to_world(verts, origin, spacing), faces
