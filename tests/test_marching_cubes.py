"""Torch marching cubes (npm_core.mesh.marching_cubes) against skimage and exact SDF oracles."""

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree
from skimage.draw import ellipsoid
from skimage.measure import marching_cubes as sk_marching_cubes

from npm_core.mesh import analytic, tables
from npm_core.mesh.marching_cubes import NATURAL_OFFSETS, marching_cubes_dense, marching_cubes_sparse

N = 64  # cells per axis over [-0.5, 0.5]^3
H = 1.0 / N


def grid_values(sdf, n=N):
    """SDF on the (n+1)^3 nodes of [-0.5, 0.5]^3 -> [n+1]^3 float32."""
    g = torch.arange(n + 1).float() / n - 0.5
    x = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    return sdf(x).view(n + 1, n + 1, n + 1)


def two_spheres(x):
    return torch.minimum(analytic.sphere(x, (-0.2, 0, 0), 0.15), analytic.sphere(x, (0.22, 0.05, 0), 0.12))


def noise_field():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((24, 24, 24)).astype(np.float32)
    return torch.from_numpy(np.pad(v, 1, constant_values=1.0))


def as_trimesh(v, f):
    return trimesh.Trimesh(v.cpu().numpy(), f.cpu().numpy(), process=False)


def assert_same_triangles_as_skimage(values):
    """The claim of marching_cubes.py: skimage's lorensen triangles with the same winding, vertex
    positions within 2 float32 steps of max(1, |coordinate|). Returns the largest error in steps."""
    v, f = marching_cubes_dense(torch.as_tensor(values))
    v, f = v.numpy(), f.numpy()
    sv, sf, _, _ = sk_marching_cubes(np.asarray(values), 0.0, method="lorensen")
    assert v.dtype == np.float32 and v.shape == sv.shape and f.shape == sf.shape
    nearest = cKDTree(sv).query(v)[1]
    steps = np.abs(v - sv[nearest]) / np.spacing(np.maximum(1.0, np.abs(sv[nearest])).astype(np.float32))
    assert steps.max() <= 2.0

    def cyclic(positions, faces):  # each face as its 3 positions, in its smallest rotation
        tri = [tuple(map(tuple, positions[t])) for t in faces]
        return sorted(min(t[i:] + t[:i] for i in range(3)) for t in tri)

    assert cyclic(sv[nearest], f) == cyclic(sv, sf)  # ours snapped onto skimage's positions
    return steps.max()


def test_table_is_skimage_classic():
    from skimage.measure import _marching_cubes_lewiner_luts as luts
    from skimage.measure._marching_cubes_lewiner import _to_array

    classic = _to_array(luts.CASESCLASSIC).astype(np.int64)
    assert np.array_equal(classic[:, :15], tables.padded_tri_table())


def exact_zeros():
    rng = np.random.default_rng(1)
    return np.pad(rng.integers(-2, 3, (16, 16, 16)).astype(np.float32), 1, constant_values=1.0)


@pytest.mark.parametrize("name", ["body", "torus", "noise", "ellipsoid", "exact zeros"])
def test_same_triangles_as_skimage_lorensen(name):
    values = {
        "body": lambda: grid_values(analytic.body),
        "torus": lambda: grid_values(analytic.torus),
        "noise": noise_field,
        "exact zeros": exact_zeros,
        "ellipsoid": lambda: ellipsoid(6, 10, 16, levelset=True).astype(np.float32),
    }[name]()
    assert_same_triangles_as_skimage(values)


def test_vertices_within_two_float32_steps_at_large_coordinates():
    # grid coordinates up to ~250 along axis 0, where one float32 step is 1.5e-5 (1e-6 cannot hold)
    rng = np.random.default_rng(2)
    values = torch.from_numpy(np.pad(rng.standard_normal((250, 6, 6)).astype(np.float32), 1, constant_values=1.0))
    v, _ = marching_cubes_dense(values)
    assert v[:, 0].max() > 240
    assert assert_same_triangles_as_skimage(values) <= 2.0


def single_cell(case):
    """2x2x2 values, corner k (natural order) +1 (outside) if bit k of case is set, else -1."""
    values = np.empty((2, 2, 2), np.float32)
    for k, (i, j, l) in enumerate(NATURAL_OFFSETS):
        values[i, j, l] = 1.0 if case >> k & 1 else -1.0
    return values


def test_all_254_single_cell_cases():
    """Every case: skimage's triangles; every vertex at a crossed edge's midpoint; interior edges
    shared by two triangles in opposite directions; the patch's boundary on the cell's faces, a
    function of each face's four corner signs, and run the opposite way by the neighbour across
    that face. So any grid's mesh is watertight and consistently wound away from its border."""
    face_segments = {}  # (axis, side, face signs) -> directed boundary segments in face coordinates
    for case in range(1, 255):
        values = single_cell(case)
        assert_same_triangles_as_skimage(values)
        v, f = marching_cubes_dense(torch.from_numpy(values))
        p = [tuple(x) for x in (2 * v.numpy()).round().astype(int).tolist()]  # in half-cell units
        for q in p:  # the midpoint of an edge whose ends differ in sign
            axis = q.index(1)
            ends = [tuple(c // 2 if ax != axis else e for ax, c in enumerate(q)) for e in (0, 1)]
            assert q.count(1) == 1 and (values[ends[0]] > 0) != (values[ends[1]] > 0)
        directed = [(p[a], p[b]) for t in f.tolist() for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))]
        assert len(set(directed)) == len(directed)  # no directed edge twice: consistent winding
        segments = {}
        for a, b in (e for e in directed if (e[1], e[0]) not in directed):  # boundary of the patch
            axis = [ax for ax in range(3) if a[ax] == b[ax] and a[ax] in (0, 2)]
            assert len(axis) == 1, f"case {case}: boundary edge {a}-{b} not on a cell face"
            u, w = [ax for ax in range(3) if ax != axis[0]]
            segments.setdefault((axis[0], a[axis[0]] // 2), set()).add(((a[u], a[w]), (b[u], b[w])))
        for axis in range(3):
            for side in (0, 1):
                signs = tuple(np.take(values, side, axis).reshape(-1) > 0)
                got = frozenset(segments.get((axis, side), set()))
                assert face_segments.setdefault((axis, side, signs), got) == got, f"case {case}"
    assert len(face_segments) == 3 * 2 * 16
    for (axis, side, signs), segs in face_segments.items():
        if side == 0:
            assert frozenset((b, a) for a, b in face_segments[(axis, 1, signs)]) == segs


@pytest.mark.parametrize("sdf, components, euler", [(analytic.body, 1, 2), (analytic.torus, 1, 0), (two_spheres, 2, 4)])
def test_closed_surfaces(sdf, components, euler):
    v, f = marching_cubes_dense(grid_values(sdf), origin=(-0.5,) * 3, spacing=(H,) * 3)
    assert (sdf(v).abs() <= 0.35 * H).all()  # world coordinates, within 0.35 cells of the surface
    m = as_trimesh(v, f)
    assert m.is_watertight and m.is_winding_consistent
    assert m.volume > 0  # outward normals for negative inside
    assert m.body_count == components
    assert m.euler_number == euler  # 2 per sphere-like component, 0 for the torus


def test_noise_is_watertight():
    v, f = marching_cubes_dense(noise_field())
    m = as_trimesh(v, f)
    assert m.is_watertight and m.is_winding_consistent and m.volume > 0


def test_vertices_unique_per_edge():
    v, f = marching_cubes_dense(grid_values(analytic.body))
    assert torch.unique(v, dim=0).shape[0] == v.shape[0]
    assert f.min() >= 0 and f.max() < v.shape[0]


def all_cells(values):
    """Every cell of a grid with its corner values in natural order: [M, 3], [M, 8]."""
    nx, ny, nz = values.shape
    c = torch.stack(torch.meshgrid(*[torch.arange(s - 1) for s in values.shape], indexing="ij"), -1).reshape(-1, 3)
    corners = c[:, None, :] + torch.as_tensor(NATURAL_OFFSETS)
    return c, values[corners[..., 0], corners[..., 1], corners[..., 2]]


@pytest.mark.parametrize("field", ["body", "noise"])
def test_sparse_equals_dense(field):
    values = noise_field() if field == "noise" else grid_values(analytic.body)
    cells, corner_values = all_cells(values)
    perm = torch.randperm(cells.shape[0], generator=torch.Generator().manual_seed(0))
    v, f = marching_cubes_sparse(cells[perm], corner_values[perm], values.shape)
    dv, df = marching_cubes_dense(values)
    assert torch.equal(v, dv) and torch.equal(f, df)


def test_world_coordinates_and_empty():
    values = grid_values(analytic.torus)
    v, _ = marching_cubes_dense(values)
    w, _ = marching_cubes_dense(values, origin=(1.0, 2.0, 3.0), spacing=(0.5, 0.5, 0.5))
    assert torch.allclose(w, v * 0.5 + torch.tensor([1.0, 2.0, 3.0]))
    v, f = marching_cubes_dense(torch.ones(4, 4, 4))
    assert v.shape == (0, 3) and f.shape == (0, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    for values in (grid_values(analytic.body), noise_field()):
        v, f = marching_cubes_dense(values)
        gv, gf = marching_cubes_dense(values.cuda())
        assert torch.allclose(gv.cpu(), v, atol=1e-5) and torch.equal(gf.cpu(), f)
        cells, corner_values = all_cells(values)
        sv, sf = marching_cubes_sparse(cells.cuda(), corner_values.cuda(), values.shape)
        assert torch.allclose(sv.cpu(), v, atol=1e-5) and torch.equal(sf.cpu(), f)
