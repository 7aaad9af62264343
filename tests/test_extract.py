"""Narrow-band extraction (npm_core.mesh.extract) equals dense extraction, with fewer evaluations."""

import logging

import pytest
import torch

from npm_core.mesh import analytic
from npm_core.mesh.extract import ExtractResult, extract, extract_dense, pose_mesh


def shifted_sphere(x):
    return analytic.sphere(x, (0.03, -0.02, 0.01), 0.27)


class BumpyBody(torch.nn.Module):
    """A small random MLP decoder that is roughly an SDF: body SDF + 0.03 tanh(MLP(x))."""

    def __init__(self, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(i, o) for i, o in [(3, 64), (64, 64), (64, 1)]])
        with torch.no_grad():
            for layer in self.layers:
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g) * 2.0 / layer.in_features**0.5)
                layer.bias.copy_(torch.randn(layer.bias.shape, generator=g) * 0.5)

    def forward(self, x):
        h = x
        for layer in self.layers[:-1]:
            h = torch.sin(layer(h))
        return analytic.body(x) + 0.03 * torch.tanh(self.layers[-1](h)).squeeze(-1)


def same_mesh(a: ExtractResult, b: ExtractResult) -> bool:
    """Same faces, vertices equal up to float rounding: a network's output can change in the last
    bits with its batch size (BLAS blocking), so the interpolated vertices can too."""
    return torch.equal(a.faces, b.faces) and torch.allclose(a.vertices, b.vertices, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sdf", [analytic.body, analytic.torus, shifted_sphere])
def test_narrow_equals_dense_analytic(sdf):
    dense = extract_dense(sdf, 64)
    narrow = extract(sdf, 64, lipschitz=1.0)
    assert narrow.method == "narrow" and same_mesh(narrow, dense)
    assert narrow.faces.shape[0] > 0 and narrow.vertices.dtype == torch.float32
    assert narrow.vertices.abs().max() <= 0.5


def test_narrow_equals_dense_mlp_decoder():
    decoder = BumpyBody()
    x = (torch.rand(20000, 3, generator=torch.Generator().manual_seed(1)) - 0.5).requires_grad_()
    (grad,) = torch.autograd.grad(decoder(x).sum(), x)
    measured = grad.norm(dim=1).max().item()
    assert measured < 1.6  # so the default L = 2 holds with margin
    dense = extract_dense(decoder, 64, chunk=5000)
    narrow = extract(decoder, 64, chunk=3000)  # different chunking on purpose
    assert narrow.method == "narrow" and same_mesh(narrow, dense)


def test_narrow_equals_dense_at_128_and_few_evaluations():
    dense = extract_dense(analytic.torus, 128)
    narrow = extract(analytic.torus, 128, lipschitz=1.0, coarse=16)
    assert same_mesh(narrow, dense)
    assert dense.n_evaluations == 129**3
    assert narrow.n_evaluations < 0.08 * dense.n_evaluations


def steep_with_small_part(x):
    """3 x an SDF: a sphere r 0.2 and a sphere r 0.03 centred on a block of the first lattice at
    N = 128 (8 blocks per axis, centres at -0.4375 + k 0.125), farthest from its corners."""
    return 3.0 * torch.minimum(analytic.sphere(x, (0.0, 0.0, 0.0), 0.2), analytic.sphere(x, (0.3125,) * 3, 0.03))


@pytest.mark.parametrize("lipschitz", [1.0, 2.0])
def test_small_part_of_a_field_steeper_than_l_is_kept(lipschitz):
    # the corners of the small sphere's block are all farther from the level than L * half-diagonal
    # (3 * (0.108 - 0.03) = 0.235 > 2 * 0.108): the corners alone would drop the block, losing
    # the whole small sphere without an open edge; its centre sample is inside the sphere
    half_diag = 0.125 * 3**0.5 / 2
    corners = torch.tensor(
        [[0.25 + 0.125 * (k & 1), 0.25 + 0.125 * (k >> 1 & 1), 0.25 + 0.125 * (k >> 2 & 1)] for k in range(8)]
    )
    assert steep_with_small_part(corners).min() > 2.0 * half_diag
    dense = extract_dense(steep_with_small_part, 128)
    narrow = extract(steep_with_small_part, 128, lipschitz=lipschitz)
    assert narrow.method == "narrow" and same_mesh(narrow, dense)
    small = (narrow.vertices - 0.3125).norm(dim=1) < 0.04
    assert small.sum() > 100  # the small sphere is there


def test_small_part_steep_only_near_itself_is_kept():
    # 1-Lipschitz everywhere but around the small sphere: only that block's own samples show it
    def field(x):
        return torch.minimum(analytic.sphere(x, (0.0, 0.0, 0.0), 0.2), 3.0 * analytic.sphere(x, (0.3125,) * 3, 0.03))

    assert same_mesh(extract(field, 128, lipschitz=1.0), extract_dense(field, 128))


def thin_steep_rod(x_end):
    """A sphere r 0.2 and a rod 20x steeper than an SDF, radius 0.025 out to x_end, placed between the
    samples of the N = 32 narrow band (its nearest samples see only the sphere's 1-Lipschitz field),
    so a small L cuts the rod: the mesh comes out open."""
    h = 1 / 32
    a, b = torch.tensor([[0.1, 0.5 * h, 2.5 * h]]), torch.tensor([[x_end, 0.5 * h, 2.5 * h]])
    return lambda x: torch.minimum(
        analytic.sphere(x, (0, 0, 0), 0.2), 20.0 * analytic.capsules(x, a, b, torch.tensor([0.025]))
    )


@pytest.mark.parametrize(
    "lipschitz, method, message", [(1.0, "narrow-2L", "open edges"), (0.5, "dense", "falling back to dense")]
)
def test_guard_retries_with_twice_l_then_dense(caplog, lipschitz, method, message):
    field = thin_steep_rod(0.45)
    dense = extract_dense(field, 32)
    with caplog.at_level(logging.WARNING, logger="npm_core.mesh.extract"):
        result = extract(field, 32, lipschitz=lipschitz)
    assert result.method == method and same_mesh(result, dense)
    assert message in caplog.text
    assert method != "dense" or result.n_evaluations > dense.n_evaluations


def test_resolution_must_be_power_of_two_multiple():
    with pytest.raises(ValueError):
        extract(analytic.body, 48, coarse=7)


def test_pose_mesh_moves_vertices_in_chunks():
    v = torch.rand(1000, 3)
    posed = pose_mesh(v, lambda x: 0.1 * x + torch.tensor([0.0, 0.2, 0.0]), chunk=128)
    assert torch.allclose(posed, 1.1 * v + torch.tensor([0.0, 0.2, 0.0]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_equals_cpu():
    cpu = extract(analytic.body, 64, lipschitz=1.0)
    gpu = extract(analytic.body, 64, lipschitz=1.0, device="cuda")
    assert torch.allclose(gpu.vertices.cpu(), cpu.vertices, atol=1e-5) and torch.equal(gpu.faces.cpu(), cpu.faces)
