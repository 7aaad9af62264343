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


def test_guard_falls_back_and_still_equals_dense(caplog):
    dense = extract_dense(analytic.body, 32)
    with caplog.at_level(logging.WARNING, logger="npm_core.mesh.extract"):
        result = extract(analytic.body, 32, lipschitz=0.02)
    assert result.method == "dense" and same_mesh(result, dense)
    assert result.n_evaluations > dense.n_evaluations
    assert "falling back to dense" in caplog.text


def test_guard_retries_with_twice_l(caplog):
    # L = 0.45 drops a block holding surface at N = 32; 2L = 0.9 is still enough for this SDF
    dense = extract_dense(analytic.body, 32)
    with caplog.at_level(logging.WARNING, logger="npm_core.mesh.extract"):
        result = extract(analytic.body, 32, lipschitz=0.45)
    assert same_mesh(result, dense)
    assert result.method == "narrow-2L" and "open edges" in caplog.text


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
