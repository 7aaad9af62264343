"""Exact analytic SDFs (model units, canonical frame) used as oracles by mesh tests and benchmarks.

Each function maps points x: [N, 3] (model units, canonical frame) -> SDF [N], negative
inside, 1-Lipschitz (so L = 1 is an exact narrow-band bound). Not for training data.
"""

from __future__ import annotations

import torch


def sphere(x: torch.Tensor, center=(0.0, 0.0, 0.0), radius: float = 0.3) -> torch.Tensor:
    """x: [N, 3] -> [N] signed distance to a sphere."""
    return (x - torch.as_tensor(center, dtype=x.dtype, device=x.device)).norm(dim=-1) - radius


def torus(x: torch.Tensor, major: float = 0.25, minor: float = 0.08) -> torch.Tensor:
    """x: [N, 3] -> [N] signed distance to a torus around the y axis (genus 1)."""
    ring = torch.sqrt(x[:, 0] ** 2 + x[:, 2] ** 2) - major
    return torch.sqrt(ring**2 + x[:, 1] ** 2) - minor


def capsules(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """x: [N, 3]; segments a, b: [C, 3], radii r: [C] -> [N] SDF of the union of C capsules."""
    ab = b - a  # [C, 3]
    ap = x[:, None, :] - a[None]  # [N, C, 3]
    t = ((ap * ab).sum(-1) / (ab * ab).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
    d = (ap - t[..., None] * ab).norm(dim=-1) - r
    return d.min(dim=1).values


# body in the canonical frame (y up, facing +z, pelvis at 0), model units (metres x 0.4)
_BODY = [  # (a, b, radius)
    ((0.0, 0.0, 0.0), (0.0, 0.19, 0.0), 0.07),  # torso
    ((0.0, 0.265, 0.0), (0.0, 0.285, 0.005), 0.045),  # head
    ((0.085, 0.185, 0.0), (0.23, 0.01, 0.02), 0.025),  # left arm
    ((-0.085, 0.185, 0.0), (-0.23, 0.01, 0.02), 0.025),  # right arm
    ((0.045, -0.01, 0.0), (0.065, -0.35, 0.0), 0.035),  # left leg
    ((-0.045, -0.01, 0.0), (-0.065, -0.35, 0.0), 0.035),  # right leg
]


def body(x: torch.Tensor) -> torch.Tensor:
    """x: [N, 3] canonical, model units -> [N] SDF of a capsule body (torso, head, arms, legs)."""
    a = torch.tensor([c[0] for c in _BODY], dtype=x.dtype, device=x.device)
    b = torch.tensor([c[1] for c in _BODY], dtype=x.dtype, device=x.device)
    r = torch.tensor([c[2] for c in _BODY], dtype=x.dtype, device=x.device)
    return capsules(x, a, b, r)
