"""Torch marching cubes (npm_core.mesh.marching_cubes) against skimage and exact SDF oracles."""

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import cKDTree
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


def assert_same_vertex_set(a, b, tol=1e-5):
    assert a.shape == b.shape
    d_ab, _ = cKDTree(b).query(a)
    d_ba, _ = cKDTree(a).query(b)
    assert max(d_ab.max(), d_ba.max()) < tol


def as_trimesh(v, f):
    return trimesh.Trimesh(v.cpu().numpy(), f.cpu().numpy(), process=False)


def test_table_is_skimage_classic():
    from skimage.measure import _marching_cubes_lewiner_luts as luts
    from skimage.measure._marching_cubes_lewiner import _to_array

    classic = _to_array(luts.CASESCLASSIC).astype(np.int64)
    assert np.array_equal(classic[:, :15], tables.padded_tri_table())


@pytest.mark.parametrize("name, sdf", [("body", analytic.body), ("torus", analytic.torus), ("noise", None)])
def test_matches_skimage_lorensen(name, sdf):
    values = noise_field() if sdf is None else grid_values(sdf)
    v, f = marching_cubes_dense(values)
    sv, sf, _, _ = sk_marching_cubes(values.numpy(), 0.0, method="lorensen")
    assert v.dtype == torch.float32 and f.dtype == torch.int64
    assert_same_vertex_set(v.numpy(), sv)
    assert f.shape[0] == sf.shape[0]


def test_exact_zeros_match_skimage():
    rng = np.random.default_rng(1)
    values = np.pad(rng.integers(-2, 3, (16, 16, 16)).astype(np.float32), 1, constant_values=1.0)
    v, f = marching_cubes_dense(torch.from_numpy(values))
    sv, sf, _, _ = sk_marching_cubes(values, 0.0, method="lorensen")
    assert_same_vertex_set(v.numpy(), sv)
    assert f.shape[0] == sf.shape[0]


@pytest.mark.parametrize(
    "sdf, components, euler", [(analytic.body, 1, 2), (analytic.torus, 1, 0), (two_spheres, 2, 4)]
)
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
