"""Depth-sensor noise: a Kinect-like noise model and its simulator (for benchmarks and tests), and
what a fit does about noise in a frame (estimate it from the frame, edge-aware smoothing).

Kinect-like axial noise (Nguyen, Izadi and Lovell 2012): sigma(z) = 1.2 mm + 1.9 mm (z - 0.4 m)^2,
depth quantised to 1 mm, and pixels at the silhouette dropped. A fit does not assume this model:
`estimate_sigma` measures a frame's noise from the depth itself, so clean renders (sigma ~ 0) are
left exactly as they are and any sensor's noise level is used as it is.
Must not: read or write files, fit, or import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NoiseModel:
    """Axial noise sigma(z) = a + b (z - z0)^2 metres, depth steps of `step` metres, and the
    silhouette's pixels dropped with probability `edge_drop` (a second ring with half of it)."""

    a: float = 0.0012
    b: float = 0.0019
    z0: float = 0.4
    step: float = 0.001
    edge_drop: float = 0.8

    def sigma(self, z: np.ndarray) -> np.ndarray:
        """sigma [metres] at depths z [metres] (any shape)."""
        return self.a + self.b * (np.asarray(z) - self.z0) ** 2


KINECT = NoiseModel()


def _boundary(valid: np.ndarray) -> np.ndarray:
    """Valid pixels [H,W] with an invalid 4-neighbour (or on the image border)."""
    pad = np.pad(valid, 1, constant_values=False)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return valid & ~inner


def simulate(depth: np.ndarray, rng: np.random.Generator, model: NoiseModel = KINECT) -> np.ndarray:
    """A clean depth frame [H,W] metres (0 = none) as the sensor would give it: silhouette pixels
    dropped, axial Gaussian noise of sigma(z), quantised to model.step. Returns a new float32 array."""
    d = np.asarray(depth, np.float64).copy()
    valid = d > 0
    edge = _boundary(valid)
    ring = _boundary(valid & ~edge)
    drop = (edge & (rng.random(d.shape) < model.edge_drop)) | (ring & (rng.random(d.shape) < model.edge_drop / 2))
    d[drop] = 0.0
    keep = d > 0
    d[keep] += rng.normal(0.0, 1.0, int(keep.sum())) * model.sigma(d[keep])
    if model.step > 0:
        d[keep] = np.round(d[keep] / model.step) * model.step
    d[d < 0] = 0.0
    return d.astype(np.float32)


def _interior_residual(depth: np.ndarray, jump: float):
    """Depth minus the mean of its 4 neighbours at pixels whose neighbours all have a depth within
    `jump` metres: [M] residuals and the depths there [M]."""
    c = depth[1:-1, 1:-1]
    nb = np.stack([depth[:-2, 1:-1], depth[2:, 1:-1], depth[1:-1, :-2], depth[1:-1, 2:]])
    ok = (c > 0) & (nb > 0).all(0) & (np.abs(nb - c) < jump).all(0)
    return (c - nb.mean(0))[ok], c[ok]


def estimate_sigma(depth: np.ndarray, jump: float = 0.05) -> float:
    """The frame's axial noise [metres] at its median depth, measured from the depth itself: the
    robust spread (MAD) of depth minus the mean of its 4 neighbours on smooth surfaces. For i.i.d.
    noise that residual has variance 1.25 sigma^2; on a clean render it is the surfaces' curvature
    over a pixel, well under a millimetre. 0 when fewer than 50 such pixels."""
    r, _ = _interior_residual(np.asarray(depth, np.float64), jump)
    if len(r) < 50:
        return 0.0
    return float(1.4826 * np.median(np.abs(r - np.median(r))) / np.sqrt(1.25))


def depth_edges(depth: np.ndarray, jump: float) -> np.ndarray:
    """Pixels [H,W] bool on either side of a depth discontinuity: a 4-neighbour with a depth that
    differs by more than `jump` metres (mixed pixels and flying points sit there)."""
    d = np.asarray(depth)
    out = np.zeros(d.shape, bool)
    for a, b, sa, sb in [
        (d[:, :-1], d[:, 1:], (slice(None), slice(None, -1)), (slice(None), slice(1, None))),
        (d[:-1], d[1:], (slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ]:
        e = (a > 0) & (b > 0) & (np.abs(a - b) > jump)
        out[sa] |= e
        out[sb] |= e
    return out


def fill_dropped(depth: np.ndarray, rounds: int = 1, need: int = 2) -> np.ndarray:
    """A frame [H,W] metres with the pixels a sensor drops at the silhouette put back: each round,
    every pixel without depth that has at least `need` of its 8 neighbours with depth gets their
    mean depth (one round restores a one-pixel ring). Returns float32."""
    from scipy.ndimage import convolve

    d = np.asarray(depth, np.float64).copy()
    ring = np.ones((3, 3))
    ring[1, 1] = 0
    for _ in range(rounds):
        valid = d > 0
        acc = convolve(np.where(valid, d, 0.0), ring, mode="constant")  # sum of the neighbours' depths
        count = convolve(valid.astype(np.float64), ring, mode="constant")
        grow = ~valid & (count >= need)
        d[grow] = acc[grow] / count[grow]
    return d.astype(np.float32)


def smooth(
    depth: np.ndarray, sigma_m: float, radius: int = 3, spatial_px: float = 2.0, range_k: float = 3.0
) -> np.ndarray:
    """Edge-aware smoothing of a depth frame [H,W] metres with noise sigma_m: each valid pixel's
    depth becomes that of the plane fitted (weighted least squares, Gaussian weights of spatial_px)
    to the valid pixels within `radius` whose depth is within range_k * sigma_m of its own, so depth
    edges and other surfaces are not blurred in and slopes are not biased (a plain mean is, wherever
    the window is one-sided). Invalid pixels stay 0. Returns float32."""
    d = np.asarray(depth, np.float64)
    h, w = d.shape
    valid = d > 0
    pad = np.pad(d, radius)
    m = np.zeros((h, w, 3, 3))
    b = np.zeros((h, w, 3))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            nb = pad[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            wt = np.exp(-(dx * dx + dy * dy) / (2 * spatial_px**2)) * ((nb > 0) & (np.abs(nb - d) <= range_k * sigma_m))
            f = np.array([1.0, dx, dy])
            m += wt[..., None, None] * np.outer(f, f)
            b += (wt * (nb - d))[..., None] * f
    m[~valid] = np.eye(3)
    m += 1e-6 * np.eye(3)  # a pixel alone or on a line: the plane's tilt is free, its offset is 0
    offset = np.linalg.solve(m, b[..., None])[..., 0, 0]
    return np.where(valid, d + offset, 0.0).astype(np.float32)
