"""Mesh extraction benchmark: ours (torch marching cubes, narrow band) vs reference (skimage, dense).

Prints markdown tables in one run:
  1. dense marching cubes, ours vs skimage (method='lorensen'), 64^3 / 128^3 / 256^3, and
     whether the triangles are the same (positions within 2 float32 steps, same winding);
  2. narrow band: decoder evaluations as % of dense (N+1)^3 and time at N = 128, 256, L = 1, 2;
  3. end-to-end extraction time, ours (narrow band + torch MC) vs reference (dense + skimage).
Decoders: the analytic capsule body, a field 3x steeper than an SDF with a small sphere centred
in a first-lattice block (the case the narrow band's centre probes are for), a stand-in network
(body SDF + 0.01 tanh(MLP 6x256 on a positional encoding), random weights: a trained
checkpoint's size and cost, roughly an SDF), and a checkpoint's shape decoder with
--checkpoint DIR.

    python benchmarks/bench_extract.py [--checkpoint DIR --index 0] [--full] [--device cuda] [--out FILE]

--device runs ours and every decoder evaluation there (the reference's dense evaluation too, as
the NPMs code does on its GPU); skimage always runs on the CPU, on the grid copied back.

Without --full the reference's dense evaluation of a network decoder at 256 is estimated from
its measured time at 128 scaled by the node count (marked "eval est."); skimage runs for real.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree
from skimage.measure import marching_cubes as sk_marching_cubes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from npm_core.mesh import analytic  # noqa: E402
from npm_core.mesh.extract import DEFAULT_LIPSCHITZ, extract, extract_dense  # noqa: E402
from npm_core.mesh.marching_cubes import marching_cubes_dense  # noqa: E402


class StandIn(torch.nn.Module):
    """Body SDF + 0.01 tanh(MLP(PE(x))): 6 hidden layers of 256, 4 octaves of PE. x: [N, 3] model units."""

    def __init__(self, seed=0, width=256, depth=6, octaves=4):
        super().__init__()
        torch.manual_seed(seed)
        self.freqs = (2.0 ** torch.arange(octaves)) * math.pi
        dims = [3 + 6 * octaves] + [width] * depth + [1]
        self.mlp = torch.nn.Sequential()
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            self.mlp.append(torch.nn.Linear(a, b))
            if i < len(dims) - 2:
                self.mlp.append(torch.nn.Softplus(beta=100))
        with torch.no_grad():  # unit output spread, so the perturbation is visible
            x = torch.rand(4096, 3) - 0.5
            self.mlp[-1].weight /= self.mlp(self._pe(x)).std()

    def _pe(self, x):
        xf = x[:, :, None] * self.freqs.to(x.device)
        return torch.cat([x, xf.sin().flatten(1), xf.cos().flatten(1)], 1)

    def forward(self, x):
        return analytic.body(x) + 0.01 * torch.tanh(self.mlp(self._pe(x))).squeeze(-1)


def steep_with_small_part(x):
    """x: [N, 3] -> [N]: 3 * min(sphere r 0.2, sphere r 0.03 at (0.3125,) * 3), a first-lattice block centre at N = 128."""
    return 3.0 * torch.minimum(analytic.sphere(x, (0.0, 0.0, 0.0), 0.2), analytic.sphere(x, (0.3125,) * 3, 0.03))


def same_triangles(v, f, sv, sf) -> bool:
    """Ours (torch) vs skimage's (numpy): same vertex positions within 2 float32 steps of
    max(1, |x|), same faces with the same winding, in any order."""
    if v.shape != sv.shape or f.shape != sf.shape:
        return False
    v, f = v.cpu().numpy(), f.cpu().numpy()
    nearest = cKDTree(sv).query(v)[1]
    if (np.abs(v - sv[nearest]) > 2 * np.spacing(np.maximum(1.0, np.abs(sv[nearest])).astype(np.float32))).any():
        return False

    def canonical(faces):  # each face rotated to start at its smallest index, rows sorted
        r = np.argmin(faces, axis=1)[:, None]
        faces = np.take_along_axis(faces, (r + np.arange(3)) % 3, axis=1)
        return faces[np.lexsort(faces.T[::-1])]

    return np.array_equal(canonical(nearest[f]), canonical(np.asarray(sf, np.int64)))


DEVICE = torch.device("cpu")


def sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def timed(fn):
    """(result, seconds) of fn(), with queued GPU work finished on both sides."""
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def median_ms(fn, repeats):
    fn()
    return 1e3 * statistics.median(timed(fn)[1] for _ in range(repeats))


def grid(fn, n):
    g = torch.arange(n + 1, device=DEVICE).float() / n - 0.5
    x = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    with torch.inference_mode():
        return torch.cat([fn(c) for c in x.split(1 << 16)]).view(n + 1, n + 1, n + 1)


def max_grad_norm(fn, n=200_000, seed=0):
    """Largest |grad f| over uniform points and points near the zero set (a Lipschitz estimate)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, 3, generator=g) - 0.5).to(DEVICE)
    with torch.no_grad():
        near = x[fn(x).abs() < 0.02]
    out = 0.0
    for pts in (x, near):
        for c in pts.split(1 << 15):
            c = c.clone().requires_grad_()
            (grad,) = torch.autograd.grad(fn(c).sum(), c)
            out = max(out, grad.norm(dim=1).max().item())
    return out


def reference_extract(fn, n, estimate_from=None):
    """The reference pipeline: dense evaluation + skimage marching cubes. Returns (seconds, note).

    estimate_from=(n0, eval_seconds_n0): scale the measured dense evaluation time of grid n0
    by the node count instead of evaluating (n+1)^3 points (skimage still runs for real).
    """
    if estimate_from is None:
        values, t_eval = timed(lambda: grid(fn, n).cpu().numpy())
        note = ""
    else:
        n0, t0 = estimate_from
        t_eval = t0 * ((n + 1) / (n0 + 1)) ** 3
        values = grid(analytic.body, n).cpu().numpy()  # same surface size, cheap to make
        note = " (eval est.)"
    t = time.perf_counter()
    sk_marching_cubes(values, 0.0, method="lorensen")
    return t_eval + time.perf_counter() - t, t_eval, note


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--index", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--full", action="store_true", help="evaluate network decoders densely at 256 too (minutes)")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    ap.add_argument("--device", default="cpu", help="where ours and the decoders run (cpu, cuda)")
    args = ap.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(2)
    command = "python " + " ".join(["benchmarks/bench_extract.py"] + sys.argv[1:])
    where = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "CPU"
    lines = [
        f"`{command}`",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {where}; medians of {args.repeats} runs; "
        f"load average {os.getloadavg()[0]:.1f} at the start",
        "",
    ]

    def emit(s=""):
        print(s, flush=True)
        lines.append(s)

    emit("## Dense marching cubes (capsule body SDF grid), ours vs skimage lorensen")
    emit()
    emit("| grid | ours ms | skimage ms | speed-up | same triangles |")
    emit("|---|---|---|---|---|")
    for n in (64, 128, 256):
        values = grid(analytic.body, n - 1)  # n^3 nodes
        host = values.cpu().numpy()
        v, f = marching_cubes_dense(values)
        sv, sf, _, _ = sk_marching_cubes(host, 0.0, method="lorensen")
        same = same_triangles(v, f, sv, sf)
        ours = median_ms(lambda values=values: marching_cubes_dense(values), args.repeats)
        ref = median_ms(lambda host=host: sk_marching_cubes(host, 0.0, method="lorensen"), max(3, args.repeats // 2))
        emit(f"| {n}^3 | {ours:.1f} | {ref:.1f} | {ref / ours:.2f}x | {same} |")

    decoders = [
        ("capsule body (analytic)", analytic.body),
        ("3 x (sphere + small sphere) (analytic)", steep_with_small_part),
        ("stand-in 6x256 MLP + PE (random, not trained)", StandIn().eval().to(DEVICE)),
    ]
    if args.checkpoint:
        from npm_core.models import load_shape_fn

        decoders.append(
            (
                f"checkpoint {Path(args.checkpoint).name} shape {args.index}",
                load_shape_fn(args.checkpoint, args.index, DEVICE),
            )
        )

    emit()
    emit(
        "## Narrow band: decoder evaluations as % of dense (N+1)^3, time (identical: same faces as dense, "
        "vertices within 1e-6)"
    )
    emit()
    emit("| decoder | max grad norm | N | L | method | evaluations | % of dense | ours s | identical to dense |")
    emit("|---|---|---|---|---|---|---|---|---|")
    for name, fn in decoders:
        lip = max_grad_norm(fn)
        for n in (128, 256):
            dense = extract_dense(fn, n, device=DEVICE) if n == 128 else None
            for L in (1.0, DEFAULT_LIPSCHITZ):
                r, seconds = min(
                    (timed(lambda fn=fn, n=n, L=L: extract(fn, n, lipschitz=L, device=DEVICE)) for _ in range(2)),
                    key=lambda rs: rs[1],
                )
                same = "-"
                if dense is not None:
                    same = torch.equal(r.faces, dense.faces) and torch.allclose(
                        r.vertices, dense.vertices, rtol=0, atol=1e-6
                    )
                emit(
                    f"| {name} | {lip:.2f} | {n} | {L:g} | {r.method} | {r.n_evaluations} | "
                    f"{100 * r.n_evaluations / (n + 1) ** 3:.2f}% | {seconds:.2f} | {same} |"
                )

    emit()
    emit(f"## End to end: ours (narrow band L={DEFAULT_LIPSCHITZ:g} + torch MC) vs reference (dense eval + skimage)")
    emit()
    emit("| decoder | N | ours s | reference s | speed-up |")
    emit("|---|---|---|---|---|")
    for name, fn in decoders:
        measured = None
        for n in (128, 256):
            ours = min(timed(lambda fn=fn, n=n: extract(fn, n, device=DEVICE))[1] for _ in range(2))
            slow = fn not in (analytic.body, steep_with_small_part) and n > 128 and not args.full  # a network
            ref, t_eval, note = reference_extract(fn, n, measured if slow else None)
            measured = measured or (n, t_eval)
            emit(f"| {name} | {n} | {ours:.2f} | {ref:.2f}{note} | {ref / ours:.1f}x |")

    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
