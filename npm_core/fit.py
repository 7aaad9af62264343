"""Test-time optimisation of NPM codes to a monocular depth sequence (NPMs section 3.4).

Unknowns: one shape code s, a pose code p_t and a translation tau_t per frame. Energy:
  L_r    reconstruction: f_s(s, x) vs the partial SDF of frame t at x + f_p(s, p_t, x) + tau_t,
         asymmetric L1 of the reference, masked by the observed mask M_o
  L_c    temporal consistency: 100 * smooth_l1(dx_t, dx_t+1) on the same canonical points
  L_icp  observed points -> nearest warped canonical surface point (first half of iterations)
  priors 0.1 mean(s^2), 1e-4 mean(p_t^2)
Partial SDF: the reference samples a 256^3 grid per frame; we evaluate the same function
exactly at the query points (distance to the nearest back-projected point from a kd-tree,
sign and mask from the depth test), which needs no grid memory and no trilinear error.
Two schedules of the same code: `paper` (the reference's joint optimisation over all frame
pairs, reference weights) and `fast` (frame-by-frame tracking from the previous frame, its
constant-velocity extrapolation or any earlier frame's code, its own L_icp / L_c weights, then
a short joint refinement that treats off-silhouette observations as upper bounds and frees the
shape code).
Initialisation without trained encoders: the training shape/pose codes that best explain the
first frame (lowest L_r among a few candidates and their mean).
Everything here is in model units; depth files and output meshes are in metres (space.py).
"""

from __future__ import annotations

import logging
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import cKDTree

from . import space
from .config import write_text_atomic
from .data.depth import DepthSequence

log = logging.getLogger(__name__)


class FitError(ValueError):
    """Input a fit cannot use (names the frame or file)."""


@dataclass
class FitConfig:
    schedule: str = "fast"  # "fast" | "paper"
    # energy (reference weights)
    w_temporal: float = 100.0
    w_icp: float = 1e-3
    w_shape_prior: float = 0.1
    w_pose_prior: float = 1e-4
    truncation: float = 0.01  # model units behind the observed surface still observed
    clamp: float = 0.1
    use_temporal: bool = True
    use_icp: bool = True
    use_translation: bool = True
    # canonical samples
    canonical_samples: int = 100_000
    canonical_noise: float = 0.015
    init_resolution: int = 128
    final_resolution: int = 256
    # optimisation
    points_per_frame: int = 4000
    icp_points: int = 1500
    lr_shape: float = 5e-4
    lr_pose: float = 1e-3
    lr_translation: float = 1e-3
    init_candidates: int = 32
    # paper schedule
    iterations: int = 500
    batch_pairs: int = 3
    keep_iteration: int = 400
    # fast schedule
    first_frame_iters: int = 150
    frame_iters: int = 30
    refine_steps: int = 150  # joint steps over all frames at once after tracking (0: none)
    refine_points: int = 1000  # canonical points per frame in a refinement step
    refine_lr_shape: float = 5e-4
    refine_shape_prior: float = 0.1
    silhouette_bound: bool = False  # in the refinement, off-silhouette partial SDF as an upper bound only
    lr_fast_pose: float = 3e-3
    lr_fast_translation: float = 2e-3
    extrapolate: bool = True  # also try a constant-velocity start per frame
    track_bank: bool = False  # also try every earlier frame's code as frame t's start
    bank_points: int = 500  # canonical points that rank those codes
    seed: int = 0
    device: str = "cpu"


def paper_config(**kw) -> FitConfig:
    """The reference's settings: 500 iterations over all frame pairs, 20k points per frame."""
    return FitConfig(schedule="paper", canonical_samples=500_000, init_resolution=256, final_resolution=512,
                     points_per_frame=20_000, **kw)


def fast_config(**kw) -> FitConfig:
    """Ours: frame-by-frame tracking with a stronger L_icp (3 instead of 1e-3) and a weaker L_c
    (3 instead of 100). Without encoders to start each frame near its pose, the observed points
    must pull fast limbs along; the reference L_c dragged them back (jumping jack, first 24
    frames: IoU 0.56 -> 0.72, EPE 10.7 -> 3.4 cm with L_icp 3 and L_c 10; kick, first 37
    frames: IoU 0.78 -> 0.81 with L_c 3 instead of 10).

    The shape is refined over all frames at the end, with the silhouette bound and a 10x weaker
    shape prior (0.01): the reference's 0.1 shrank codes to 1/30 of the training codes' mean
    square (one kick frame: IoU 0.86 -> 0.93 with both). Tracking keeps the prior-0.1 shape:
    tracking with that sharper first-frame shape lost the jumping jack's legs (24 frames: IoU
    0.59 instead of 0.73).

    Each frame may also start from any earlier frame's code (track_bank; benchmark, 256^3):
    jumping jack, 72 frames, IoU 0.781 -> 0.823, EPE 3.26 -> 2.39 cm; kick, 64 frames, 0.813 ->
    0.802, EPE 1.83 -> 2.13 cm.

    The pose prior is 50x the reference's (5e-3 instead of 1e-4). With the reference weight the
    tracked codes drifted out of the training distribution (kick, frame 27: 4.6 training standard
    deviations against 1.5 for a code fitted to the 3D truth), where the decoder guesses; with
    the true shape given, the truth's codes explained the depth better than the tracked ones on
    17 of 36 frames. First 36 frames, 128^3, pose prior 1e-4 / 1e-3 / 5e-3 / 1e-2 / 3e-2: kick IoU
    0.786 / 0.818 / 0.822 / 0.817 / 0.775; jumping jack 0.815 / 0.828 / 0.856 / 0.847 / 0.814.

    The first frame decides the shape every later frame is tracked with, so it gets 4x the
    initial candidates (128) and twice the iterations (300); the refinement pays for that with
    800 instead of 1000 points per frame. Benchmark (kick, jumping jack, wave; 64/72/100 frames,
    256^3): IoU 0.822 / 0.855 / 0.877 -> 0.843 / 0.834 / 0.896, EPE 1.70 / 1.71 / 1.14 -> 1.57 /
    1.70 / 1.07 cm, wave 590 -> 501 s. On the kick each change alone gets part of it (GPU sweep:
    128 candidates 1.56 cm, 300 iterations 1.61 cm, both 1.48 cm, from 1.73)."""
    return FitConfig(**{"schedule": "fast", "w_icp": 3.0, "w_temporal": 3.0, "w_pose_prior": 5e-3,
                        "silhouette_bound": True, "refine_shape_prior": 0.01, "refine_lr_shape": 2e-3,
                        "track_bank": True, "init_candidates": 128, "first_frame_iters": 300,
                        "refine_points": 800, **kw})


# ------------------------------------------------------------------ observations


class PartialSDF:
    """The partial SDF of one depth frame, evaluated exactly at query points.

    unsigned = distance to the nearest back-projected point; a point projecting onto a valid
    pixel with camera depth z > d is inside (negative); z > d + truncation is unobserved
    (mask 0); points projecting on background or outside the image are observed and outside."""

    def __init__(self, seq: DepthSequence, t: int, truncation: float):
        self.cam = seq.camera
        self.depth = seq.depths[t]
        self.points_m = seq.points(t)
        self.points = torch.as_tensor(space.metres_to_model(self.points_m), dtype=torch.float32)
        self.tree = cKDTree(self.points.numpy()) if len(self.points) else None
        self.trunc_m = space.model_to_metres(truncation)

    @property
    def empty(self) -> bool:
        return self.tree is None

    def __call__(self, q: torch.Tensor, clamp: float):
        """q [N,3] world model units -> (sdf [N] differentiable in q, observed mask [N] bool,
        silhouette [N] bool: projects off the subject, where the sdf is only an upper bound -
        the nearest surface point there is often on the unseen side, not among the observed points)."""
        qn = q.detach().cpu().numpy()
        if self.tree is None:
            none = torch.zeros(len(q), dtype=torch.bool, device=q.device)
            return torch.full_like(q[:, 0], clamp), none, none
        _, nn = self.tree.query(qn, workers=-1)
        dist = (q - self.points[nn].to(q.device)).norm(dim=-1)
        u, v, z = self.cam.project(space.model_to_metres(qn.astype(np.float64)))
        ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
        in_img = (ui >= 0) & (ui < self.cam.width) & (vi >= 0) & (vi < self.cam.height) & (z > 0)
        d = np.zeros(len(qn))
        d[in_img] = self.depth[vi[in_img], ui[in_img]]
        valid = in_img & (d > 0)
        behind = valid & (z > d)
        observed = ~(valid & (z > d + self.trunc_m))
        sign = torch.as_tensor(np.where(behind, -1.0, 1.0), dtype=q.dtype, device=q.device)
        return (sign * dist).clamp(-clamp, clamp), torch.as_tensor(observed, device=q.device), torch.as_tensor(~valid, device=q.device)


def reconstruction_loss(sdf_in: torch.Tensor, sdf_c: torch.Tensor, mask: torch.Tensor,
                        bound: torch.Tensor | None = None) -> torch.Tensor:
    """Reference L_r: |sdf_in - sdf_c| * (1 + 0.5 sign(sdf_c) sign(sdf_c - sdf_in)), mean over mask.

    bound (optional): points where sdf_in > 0 is only an upper bound on the true distance (off the
    silhouette); a canonical SDF within [0, sdf_in] there costs nothing. The reference's two-sided
    loss pulls the unseen side inward: a body fitted to one frame came out 6 cm short and 3 cm thin.
    Points that break the bound keep the reference term, whose gradient moves them to the data."""
    w = 1.0 + 0.5 * torch.sign(sdf_c) * torch.sign(sdf_c - sdf_in)
    per = (sdf_in - sdf_c).abs() * w
    if bound is not None:
        per = torch.where(bound & (sdf_c >= 0) & (sdf_c <= sdf_in), 0.0, per)
    m = mask.to(per.dtype)
    return (per * m).sum(-1) / m.sum(-1).clamp_min(1.0)


# ---------------------------------------------------------------------- the fit


@dataclass
class FitResult:
    shape_code: torch.Tensor  # [Ds]
    pose_codes: torch.Tensor  # [T, Dp]
    translation: torch.Tensor  # [T, 3] model units
    losses: dict = field(default_factory=dict)  # name -> [T] per-frame values
    timings: dict = field(default_factory=dict)
    interrupted: bool = False


class _Problem:
    """Decoders, observations and canonical samples shared by both schedules."""

    def __init__(self, model, seq: DepthSequence, cfg: FitConfig):
        self.model, self.cfg = model, cfg
        self.dev = torch.device(cfg.device)
        self.obs = [PartialSDF(seq, t, cfg.truncation) for t in range(len(seq))]
        empty = [t for t, o in enumerate(self.obs) if o.empty]
        if len(empty) == len(self.obs):
            raise FitError(f"{seq.path}: no frame has a valid depth pixel")
        if empty:
            warnings.warn(f"frames {empty} have no valid pixel; their poses are carried by the temporal term", stacklevel=2)
        for t, o in enumerate(self.obs):
            if not o.empty and space.outside_cube(o.points.mean(0, keepdim=True), margin=0.1).any():
                raise FitError(f"frame {t}: the observed subject (centre {space.model_to_metres(o.points.mean(0)).numpy().round(2)} m) "
                               f"is outside the model cube [-1.25, 1.25]^3 m around the world origin")
        self.gen = torch.Generator().manual_seed(cfg.seed)

    # decoders on batches of frames: x [B, N, 3] canonical
    def displacement(self, s, p, x):
        return self.model.pose_decoder(s.expand(len(p), -1), p, x)

    def shape_sdf(self, s, x):
        return self.model.shape_decoder(s.expand(len(x), -1), x)

    def canonical_samples(self, s: torch.Tensor, resolution: int, count: int):
        """Surface samples of the current canonical shape + N(0, noise^2), and a vertex subset for ICP."""
        from .mesh.extract import extract

        with torch.inference_mode():
            res = extract(self.model.shape_decoder.sdf_fn(s.detach()), resolution, device=self.dev)
        v, f = res.vertices.cpu().numpy(), res.faces.cpu().numpy()
        if len(f) == 0:
            raise FitError("the initial shape code decodes to an empty surface")
        from .data.sdf import sample_surface

        rng = np.random.default_rng(self.cfg.seed)
        pts = sample_surface(v.astype(np.float64), f, count, rng)[2]
        pts = pts + rng.normal(0, self.cfg.canonical_noise, pts.shape).astype(np.float32)
        surf = v[rng.choice(len(v), min(len(v), 20_000), replace=False)]
        self.samples = torch.as_tensor(pts, device=self.dev)
        self.surface = torch.as_tensor(surf, device=self.dev)

    def draw(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.samples), (n,), generator=self.gen)
        return self.samples[idx.to(self.dev)]

    def frame_terms(self, s, p, tau, frames, x, icp: bool, sdf_c=None, bound: bool = False):
        """Per-frame L_r (and L_icp) for frames [B] with codes p [B,Dp], tau [B,3], points x [N,3];
        sdf_c: the clamped canonical SDF at x when the caller already has it (shape held fixed);
        bound: off-silhouette values as upper bounds (reconstruction_loss).

        Returns (lr [B], licp [B], dx [B,N,3])."""
        B = len(frames)
        xb = x.expand(B, -1, -1)
        dx = self.displacement(s, p, xb)
        if sdf_c is None:
            sdf_c = self.shape_sdf(s, x[None]).clamp(-self.cfg.clamp, self.cfg.clamp)[0]
        lr, licp = [], []
        for b, t in enumerate(frames):
            q = x + dx[b] + tau[b]
            sdf_in, mask, off = self.obs[t](q, self.cfg.clamp)
            lr.append(reconstruction_loss(sdf_in, sdf_c, mask, off if bound else None))
            licp.append(self.icp(s, p[b : b + 1], tau[b], t) if icp else q.new_zeros(()))
        return torch.stack(lr), torch.stack(licp), dx

    def candidate_energies(self, s, p, tau, t, x, sdf_c):
        """L_r of frame t under each candidate code p [K,Dp] and translation tau [K,3], in one
        partial-SDF query for all candidates."""
        K, n = len(p), len(x)
        q = x + self.displacement(s, p, x.expand(K, -1, -1)) + tau[:, None]
        sdf_in, mask, _ = self.obs[t](q.reshape(-1, 3), self.cfg.clamp)
        return reconstruction_loss(sdf_in.reshape(K, n), sdf_c, mask.reshape(K, n))

    def icp(self, s, p, tau, t):
        """Mean squared distance of observed points to the nearest warped canonical surface point."""
        o = self.obs[t]
        if o.empty:
            return tau.new_zeros(())
        n = min(self.cfg.icp_points, len(self.surface))
        sub = self.surface[torch.randint(0, len(self.surface), (n,), generator=self.gen).to(self.dev)]
        warped = sub + self.displacement(s, p, sub[None])[0] + tau
        k = min(self.cfg.icp_points, len(o.points))
        obs = o.points[torch.randint(0, len(o.points), (k,), generator=self.gen)].to(self.dev)
        _, nn = cKDTree(warped.detach().cpu().numpy()).query(obs.cpu().numpy(), workers=-1)
        return ((obs - warped[torch.as_tensor(nn, device=self.dev)]) ** 2).sum(-1).mean()


def _initial_codes(prob: _Problem, cfg: FitConfig, shape: torch.Tensor | None = None):
    """Shape and pose codes that best explain the first observed frame among training codes
    (the pose for `shape` when the shape is known)."""
    m = prob.model
    t0 = next(t for t, o in enumerate(prob.obs) if not o.empty)
    o = prob.obs[t0]
    tau0 = (o.points.mean(0) - torch.tensor([0.0, 0.0, 0.04])).to(prob.dev)  # visible front is ~4 cm (model) before the pelvis
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.empty(1500, 3).uniform_(-0.45, 0.45, generator=gen).to(prob.dev)  # coarse points in the cube
    with torch.no_grad():
        def energy(s, p):
            q = x + prob.displacement(s, p[None], x[None])[0] + tau0
            sdf_in, mask, _ = o(q, cfg.clamp)
            sdf_c = prob.shape_sdf(s, x[None])[0].clamp(-cfg.clamp, cfg.clamp)
            return reconstruction_loss(sdf_in, sdf_c, mask).item()

        shape_c = torch.cat([m.shape_codes.mean(0, keepdim=True),
                             m.shape_codes[torch.randperm(len(m.shape_codes), generator=gen)[: cfg.init_candidates]]])
        pose_c = torch.cat([m.pose_codes.mean(0, keepdim=True),
                            m.pose_codes[torch.randperm(len(m.pose_codes), generator=gen)[: cfg.init_candidates]]])
        p_mean = pose_c[0]
        s_best = shape if shape is not None else min(shape_c, key=lambda s: energy(s[None], p_mean))
        p_best = min(pose_c, key=lambda p: energy(s_best[None], p))
    return s_best.clone(), p_best.clone(), tau0


def fit(model, seq: DepthSequence, cfg: FitConfig, progress: Callable[[dict], None] | None = None,
        shape_code: torch.Tensor | None = None) -> FitResult:
    """Fit shape, per-frame pose codes and translations to a depth sequence.

    shape_code: a known canonical shape (e.g. fitted to a scan of the person), held fixed; only
    poses and translations are fitted. One depth view leaves the body's thickness to the prior
    (kick benchmark: IoU 0.802 -> 0.825 with the true shape; 0.86 -> 0.95 in its rest pose)."""
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    prob = _Problem(model, seq, cfg)
    for p in list(model.shape_decoder.parameters()) + list(model.pose_decoder.parameters()):
        p.requires_grad_(False)
    if shape_code is not None:
        want = tuple(model.shape_codes.shape[1:])
        if tuple(shape_code.shape) != want:
            raise FitError(f"shape_code has shape {tuple(shape_code.shape)}; this checkpoint's shape codes are {want}")
        shape_code = shape_code.detach().to(model.shape_codes)
    s0, p0, tau0 = _initial_codes(prob, cfg, shape_code)
    T = len(seq)
    s = s0[None].clone().requires_grad_(shape_code is None)
    P = p0.expand(T, -1).clone().requires_grad_(True)
    tau = tau0.expand(T, 3).clone()
    if not cfg.use_translation:
        tau = tau.mean(0, keepdim=True).expand(T, 3).clone()
    tau.requires_grad_(cfg.use_translation)
    prob.canonical_samples(s.detach()[0], cfg.init_resolution, cfg.canonical_samples)
    timings = {"init_s": time.time() - t_start}
    report = progress or (lambda e: None)
    state = {"best": None}
    try:
        if cfg.schedule == "paper":
            _run_paper(prob, cfg, s, P, tau, report, state)
        elif cfg.schedule == "fast":
            _run_fast(prob, cfg, s, P, tau, report, state)
        else:
            raise FitError(f"fit schedule must be 'fast' or 'paper', got {cfg.schedule!r}")
        interrupted = False
    except KeyboardInterrupt:
        log.warning("fit interrupted: keeping the last completed result")
        interrupted = True
    if state["best"] is not None:
        s_f, P_f, tau_f = state["best"]
    else:
        s_f, P_f, tau_f = s.detach()[0], P.detach(), tau.detach()
    timings["optimise_s"] = time.time() - t_start - timings["init_s"]
    losses = _per_frame_losses(prob, s_f, P_f, tau_f)
    return FitResult(s_f.cpu().clone(), P_f.cpu().clone(), tau_f.cpu().clone(), losses, timings, interrupted)


def _adam(params_lrs):
    """Adam over the (tensor, learning rate) pairs that are being fitted."""
    return torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in params_lrs if p.requires_grad])


def _prior(cfg, s, P, w_shape=None):
    w_shape = cfg.w_shape_prior if w_shape is None else w_shape
    return w_shape * (s**2).mean() + cfg.w_pose_prior * (P**2).mean()


def _run_paper(prob, cfg, s, P, tau, report, state):
    """Reference schedule: `iterations` passes over all neighbouring frame pairs, batches of pairs."""
    T = P.shape[0]
    opt = _adam([(s, cfg.lr_shape), (P, cfg.lr_pose), (tau, cfg.lr_translation)])
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, cfg.iterations // 4), 0.5)
    pairs = [(t, t + 1) for t in range(T - 1)] or [(0, 0)]
    for it in range(cfg.iterations):
        icp = cfg.use_icp and it < cfg.iterations // 2
        order = torch.randperm(len(pairs), generator=prob.gen).tolist()
        total = 0.0
        for k in range(0, len(order), cfg.batch_pairs):
            batch = [pairs[i] for i in order[k : k + cfg.batch_pairs]]
            frames = sorted({t for pr in batch for t in pr})
            x = prob.draw(cfg.points_per_frame)
            fr = torch.tensor(frames)
            lr, licp, dx = prob.frame_terms(s, P[fr], tau[fr], frames, x, icp)
            loss = lr.mean() + cfg.w_icp * licp.mean() + _prior(cfg, s, P[fr])
            if cfg.use_temporal and T > 1:
                pos = {t: i for i, t in enumerate(frames)}
                lc = torch.stack([F.smooth_l1_loss(dx[pos[a]], dx[pos[b]]) for a, b in batch if a != b])
                loss = loss + cfg.w_temporal * lc.mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        sched.step()
        if it + 1 == cfg.keep_iteration:
            state["best"] = (s.detach()[0].clone(), P.detach().clone(), tau.detach().clone())
        report({"stage": "paper", "iteration": it + 1, "total": cfg.iterations, "energy": total})


@torch.no_grad()
def _warm_start(prob, cfg, s, P, tau, t, x, sdf_c):
    """Frame t's starting pose code and translation: frame t-1's, or (cfg.extrapolate) their
    constant-velocity extrapolation from t-2 and t-1 when that explains frame t better - a
    plain warm start falls behind fast limbs (a jumping jack's arms) and never catches up.

    cfg.track_bank: any earlier frame's code too. Tracking can settle a limb in a wrong basin
    (the jumping jack's arms curled forward on their second way up) that no local step leaves,
    not even one on the full 3D truth, and later frames inherit it; an earlier frame in a
    similar pose starts in the right one (frame 52: IoU 0.69 -> 0.79)."""
    if t == 0:
        return P[:1].clone(), tau[:1].clone()
    cands = [(P[t - 1 : t], tau[t - 1 : t])]
    if cfg.extrapolate and t > 1:
        cands.append((2 * P[t - 1 : t] - P[t - 2 : t - 1], 2 * tau[t - 1 : t] - tau[t - 2 : t - 1]))
    if cfg.track_bank and t > 2:  # every earlier frame's code, at frame t-1's translation
        n = cfg.bank_points
        p_all = torch.cat([p for p, _ in cands] + [P[: t - 1]])
        tau_all = torch.cat([tt for _, tt in cands] + [tau[t - 1 : t].expand(t - 1, 3)])
        energy = prob.candidate_energies(s, p_all, tau_all, t, x[:n], sdf_c[:n])
        k = int(energy.argmin())
        return p_all[k : k + 1].clone(), tau_all[k : k + 1].clone()
    energy = [prob.frame_terms(s, p, tt, [t], x, False, sdf_c)[0].item() for p, tt in cands]
    p, tt = cands[int(np.argmin(energy))]
    return p.clone(), tt.clone()


def _run_fast(prob, cfg, s, P, tau, report, state):
    """Frame-by-frame warm start (shape fitted on the first frame), then joint refinement passes."""
    T = P.shape[0]
    steps_total = cfg.first_frame_iters + (T - 1) * cfg.frame_iters + cfg.refine_steps
    step = 0

    p_prev = None
    for t in range(T):
        x_fixed = prob.draw(cfg.points_per_frame)
        # after frame 0 the shape and the frame's points are fixed: its canonical SDF and the
        # previous frame's displacements are constants (a third of the tracking time if recomputed)
        s_t, sdf_c, prev = s, None, None
        if t > 0:
            s_t = s.detach()
            with torch.no_grad():
                sdf_c = prob.shape_sdf(s_t, x_fixed[None]).clamp(-cfg.clamp, cfg.clamp)[0]
                prev = prob.displacement(s_t, p_prev, x_fixed[None])[0]
        p_t, tau_t = _warm_start(prob, cfg, s_t, P, tau, t, x_fixed, sdf_c)
        p_t.requires_grad_(True)
        tau_t.requires_grad_(tau.requires_grad)
        iters = cfg.first_frame_iters if t == 0 else cfg.frame_iters
        params = [(p_t, cfg.lr_fast_pose), (tau_t, cfg.lr_fast_translation)]
        if t == 0:
            params.append((s, cfg.lr_shape * 4))
        opt = _adam(params)
        for i in range(iters):
            x = prob.draw(cfg.points_per_frame) if t == 0 else x_fixed
            lr, licp, dx = prob.frame_terms(s_t, p_t, tau_t, [t], x, cfg.use_icp and not prob.obs[t].empty, sdf_c)
            loss = lr.mean() + cfg.w_icp * licp.mean() + _prior(cfg, s_t, p_t)
            if cfg.use_temporal and prev is not None:
                loss = loss + cfg.w_temporal * F.smooth_l1_loss(dx[0], prev)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        with torch.no_grad():
            P[t] = p_t.detach()[0]
            tau[t] = tau_t.detach()[0]
        p_prev = p_t.detach()
        report({"stage": "track", "frame": t + 1, "frames": T, "step": step, "total": steps_total, "energy": loss.item()})
    if T > 1:
        step = _refine(prob, cfg, s, P, tau, cfg.refine_steps, report, step, steps_total)


def _refine(prob, cfg, s, P, tau, steps, report, step, steps_total):
    """Joint refinement: every step sees every frame, so Adam never moves a code on stale momentum
    (refining pair by pair did, and drifted all frames: IoU 0.76 -> 0.65 on a 64-frame kick)."""
    if not steps:
        return step
    opt = _adam([(s, cfg.refine_lr_shape), (P, cfg.lr_pose), (tau, cfg.lr_translation)])
    for i in range(steps):
        loss = _refine_energy(prob, cfg, s, P, tau, prob.draw(cfg.refine_points))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        report({"stage": "refine", "step": step, "total": steps_total, "energy": loss.item()})
    return step


def _refine_energy(prob, cfg, s, P, tau, x):
    """What the refinement minimises over all frames at canonical points x: L_r (with the
    silhouette bound if configured, so not the reference L_r), the priors (the refinement's
    shape prior) and L_c between neighbouring frames."""
    lr, _, dx = prob.frame_terms(s, P, tau, list(range(len(P))), x, False, bound=cfg.silhouette_bound)
    loss = lr.mean() + _prior(cfg, s, P, cfg.refine_shape_prior)
    if cfg.use_temporal:
        loss = loss + cfg.w_temporal * F.smooth_l1_loss(dx[:-1], dx[1:])
    return loss


@torch.no_grad()
def _per_frame_losses(prob, s, P, tau) -> dict:
    x = prob.draw(prob.cfg.points_per_frame)
    out = {"reconstruction": []}
    for t in range(len(P)):
        lr, _, _ = prob.frame_terms(s[None], P[t : t + 1], tau[t : t + 1], [t], x, False)
        out["reconstruction"].append(lr.item())
    return {k: np.asarray(v) for k, v in out.items()}


# ------------------------------------------------------------------ result I/O


def write_result(out_dir, result: FitResult, model, cfg: FitConfig, checkpoint_name: str, sequence_path,
                 resolution: int | None = None, progress: Callable[[int, int], None] | None = None,
                 compact: bool = False) -> Path:
    """Write the fit-result directory atomically: built under a temp name, then renamed, so a
    crash never leaves a directory that looks complete."""
    import trimesh

    from .data.depth import write_meshes
    from .mesh.extract import extract, pose_mesh

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "meshes").mkdir(parents=True)
    s = result.shape_code.to(cfg.device)
    t0 = time.time()
    with torch.inference_mode():
        canon = extract(model.shape_decoder.sdf_fn(s), resolution or cfg.final_resolution, device=cfg.device)
    v, f = canon.vertices, canon.faces.cpu().numpy()
    trimesh.Trimesh(space.model_to_metres(v.cpu().numpy()), f, process=False).export(tmp / "canonical.ply")
    T = len(result.pose_codes)
    posed_all = []
    for t in range(T):
        with torch.inference_mode():
            posed = pose_mesh(v, model.pose_decoder.displacement_fn(s, result.pose_codes[t].to(cfg.device)))
        posed_all.append(space.model_to_metres(posed.cpu().numpy() + result.translation[t].numpy()))
        if progress:
            progress(t + 1, T)
    write_meshes(tmp / "meshes", np.stack(posed_all), f, compact)
    np.savez(tmp / "fit.npz", shape_code=result.shape_code.numpy(), pose_codes=result.pose_codes.numpy(),
             translation=result.translation.numpy(), **{f"loss_{k}": v for k, v in result.losses.items()})
    import yaml

    from .config import to_dict

    meta = {"checkpoint": checkpoint_name, "sequence": str(sequence_path), "frames": T,
            "interrupted": result.interrupted,
            "timings": {**{k: round(v, 2) for k, v in result.timings.items()}, "meshes_s": round(time.time() - t0, 2)},
            "mesh_resolution": resolution or cfg.final_resolution, "config": to_dict(cfg)}
    write_text_atomic(tmp / "fit.yaml", yaml.safe_dump(meta, sort_keys=False))
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)
    return out_dir


@dataclass
class LoadedFit:
    path: Path
    shape_code: np.ndarray
    pose_codes: np.ndarray
    translation: np.ndarray
    losses: dict
    meta: dict

    def meshes(self):
        """(canonical vertices [V,3] metres, posed vertices [T,V,3] metres, faces [F,3])."""
        import trimesh

        from .data.depth import read_meshes

        c = trimesh.load(self.path / "canonical.ply", process=False)
        posed, _ = read_meshes(self.path / "meshes")
        return np.asarray(c.vertices), posed, np.asarray(c.faces)


def read_result(path) -> LoadedFit:
    import yaml

    path = Path(path)
    for name in ["fit.npz", "fit.yaml", "canonical.ply"]:
        if not (path / name).is_file():
            raise FitError(f"{path}: not a fit-result directory (missing {name})")
    with np.load(path / "fit.npz", allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    losses = {k[5:]: v for k, v in data.items() if k.startswith("loss_")}
    return LoadedFit(path, data["shape_code"], data["pose_codes"], data["translation"], losses,
                     yaml.safe_load((path / "fit.yaml").read_text()))


# ------------------------------------------------ codes from 3D samples (evaluation)


def fit_shape_code(shape_decoder, points: torch.Tensor, sdf: torch.Tensor, init: torch.Tensor, iters: int = 300,
                   batch: int = 8192, lr: float = 5e-3, prior: float = 1e-4, clamp: float = 0.1, seed: int = 0):
    """Shape code of an unseen body from its SDF samples (decoder frozen), DeepSDF-style:
    clamped L1 + code prior, Adam. points [N,3] canonical, sdf [N] -> code [Ds]."""
    gen = torch.Generator().manual_seed(seed)
    code = init.detach().clone()[None].requires_grad_(True)
    opt = torch.optim.Adam([code], lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, iters // 2), 0.3)
    for _ in range(iters):
        idx = torch.randint(0, len(points), (batch,), generator=gen)
        pred = shape_decoder(code, points[idx][None])[0]
        loss = (pred.clamp(-clamp, clamp) - sdf[idx].clamp(-clamp, clamp)).abs().mean() + prior * code.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return code.detach()[0]


def fit_pose_codes(pose_decoder, shape_codes: torch.Tensor, x: torch.Tensor, y: torch.Tensor, init: torch.Tensor,
                   iters: int = 200, lr: float = 1e-2, prior: float = 1e-4, translation: torch.Tensor | None = None):
    """Pose codes of unseen frames from flow pairs (decoder frozen): shape codes [B,Ds],
    canonical x [B,K,3] -> posed y [B,K,3]; returns codes [B,Dp].
    translation: initial offsets [B,3] of frames placed in a world (y = x + f_p + offset), fitted
    with the codes; then returns (codes, offsets)."""
    codes = init.detach().clone().requires_grad_(True)
    groups = [{"params": [codes], "lr": lr}]
    offsets = None
    if translation is not None:
        offsets = translation.detach().clone().requires_grad_(True)
        groups.append({"params": [offsets], "lr": lr / 10})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, iters // 2), 0.3)
    for _ in range(iters):
        moved = x + pose_decoder(shape_codes, codes, x)
        if offsets is not None:
            moved = moved + offsets[:, None]
        loss = ((moved - y).square().sum(-1) / 2).mean() + prior * codes.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return codes.detach() if offsets is None else (codes.detach(), offsets.detach())
