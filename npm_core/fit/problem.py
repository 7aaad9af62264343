"""The fitting problem shared by both schedules: observations, energy terms, canonical samples.

Unknowns: one shape code s, and per frame a pose code p_t, a translation tau_t and (optionally) a
rotation R_t of the whole body. A canonical point x is posed as R_t (x + f_p(s, p_t, x)) + tau_t:
R_t turns the body about its own origin (the pelvis), so a subject who turns, or a camera
anywhere around the subject, is explained without leaving the pose codes' range. Energy:
  L_r    reconstruction: f_s(s, x) vs the partial SDF of frame t at the posed x, asymmetric L1
         of the reference, masked by the observed mask M_o (Huber near 0 on noisy frames, if set)
  L_c    temporal consistency: w_temporal * smooth_l1(dx_t, dx_t+1) on the same canonical points
  L_icp  observed points -> nearest posed canonical surface point
  priors w_shape_prior mean(s^2), w_pose_prior mean(p_t^2), w_tilt_prior mean(tilt_t^2)
Partial SDF: the reference samples a 256^3 grid per frame; we evaluate the same function
exactly at the query points (distance to the nearest back-projected point from a kd-tree,
sign and mask from the depth test), which needs no grid memory and no trilinear error.
Noisy frames (estimated noise above cfg.noise_floor_m, data/sensor.py) are smoothed edge-aware
and truncated at a multiple of their noise; clean frames are used exactly as they are.
Initialisation without trained encoders: the training shape/pose codes (and, with rotation, the
yaw round the circle) that best explain the first observed frame.
Everything here is in model units; depth files are in metres (space.py).

Must not: choose a schedule (schedules.py) or write files.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.spatial import cKDTree

from .. import space
from ..data import sensor
from ..data.depth import DepthSequence
from .config import FitConfig, FitError

# --------------------------------------------------------------------------- rotations


def _skew(v: torch.Tensor) -> torch.Tensor:
    """[B, 3] -> cross-product matrices [B, 3, 3]."""
    z = torch.zeros_like(v[:, 0])
    return torch.stack(
        [
            torch.stack([z, -v[:, 2], v[:, 1]], -1),
            torch.stack([v[:, 2], z, -v[:, 0]], -1),
            torch.stack([-v[:, 1], v[:, 0], z], -1),
        ],
        -2,
    )


def rotation_matrices(r: torch.Tensor, max_tilt: float) -> torch.Tensor:
    """Rotation parameters r [B, 3] (yaw about +y, then two tilt components about x and z; radians)
    -> world-from-body rotations [B, 3, 3]: R = R_y(yaw) R_tilt, R_tilt the rotation by the vector
    (t_x, 0, t_z), each component bounded by max_tilt (radians) through tanh, so a body leans at
    most that far whatever the optimiser does. Differentiable; r = 0 gives the identity."""
    c, s, z, o = torch.cos(r[:, 0]), torch.sin(r[:, 0]), torch.zeros_like(r[:, 0]), torch.ones_like(r[:, 0])
    yaw = torch.stack([torch.stack([c, z, s], -1), torch.stack([z, o, z], -1), torch.stack([-s, z, c], -1)], -2)
    if max_tilt <= 0:
        return yaw
    t = max_tilt * torch.tanh(r[:, 1:] / max_tilt)
    v = torch.stack([t[:, 0], z, t[:, 1]], -1)
    th2 = (v * v).sum(-1)[:, None, None]
    th = th2.clamp_min(1e-12).sqrt()
    small = th2 < 1e-8  # Rodrigues' coefficients by their series near 0
    a = torch.where(small, 1 - th2 / 6, torch.sin(th) / th)
    b = torch.where(small, 0.5 - th2 / 24, (1 - torch.cos(th)) / th2.clamp_min(1e-12))
    k = _skew(v)
    tilt = torch.eye(3, dtype=r.dtype, device=r.device) + a * k + b * (k @ k)
    return yaw @ tilt


def pose_points(x: torch.Tensor, R: torch.Tensor | None, tau: torch.Tensor) -> torch.Tensor:
    """Displaced canonical points x [..., N, 3] posed in the world: R [..., 3, 3] x + tau [..., 3]
    (x + tau when R is None: the translation-only formulation, computed exactly as before)."""
    if R is None:
        return x + tau[..., None, :]
    return x @ R.transpose(-1, -2) + tau[..., None, :]


# ------------------------------------------------------------------ observations


class PartialSDF:
    """The partial SDF of one depth frame, evaluated exactly at query points.

    unsigned = distance to the nearest back-projected point; a point projecting onto a valid
    pixel with camera depth z > d is inside (negative); z > d + truncation is unobserved
    (mask 0); points projecting on background or outside the image are observed and outside.
    cfg (optional) brings the noise handling: the frame's noise sigma_m is estimated from its
    depth, and above the noise floor (cfg.noise_floor_m, noise_floor_px) the pixels dropped at the
    silhouette are put back (noise_fill), the depth is smoothed (noise_smooth), the truncation is at
    least noise_truncation sigma, depth discontinuities and the pixels just off the silhouette
    are unobserved (noise_edges), and `delta` (model units) is the Huber scale (noise_huber)."""

    def __init__(
        self,
        seq: DepthSequence,
        t: int,
        truncation: float,
        cfg: FitConfig | None = None,
        scale: float = space.METRES_TO_MODEL,
    ):
        self.cam, self.scale = seq.camera, scale  # scale: model units per metre (the model's domain)
        depth = seq.depths[t]
        self.sigma_m = sensor.estimate_sigma(depth) if cfg is not None else 0.0
        if cfg is not None and self.sigma_m > 0:
            footprint = float(np.median(depth[depth > 0])) / self.cam.fx  # metres per pixel at the subject
            self.noisy = self.sigma_m > max(cfg.noise_floor_m, cfg.noise_floor_px * footprint)
        else:
            self.noisy = False
        self.unknown = None  # [H, W] bool: pixels whose depth says nothing (noise_edges)
        self.delta = 0.0
        trunc_m = truncation / scale
        if self.noisy:
            if cfg.noise_fill:
                depth = sensor.fill_dropped(depth)
            if cfg.noise_smooth:
                depth = sensor.smooth(depth, self.sigma_m)
            if cfg.noise_edges:
                valid = depth > 0
                edges = sensor.depth_edges(depth, max(0.05, 5 * self.sigma_m))
                near = np.zeros_like(valid)  # invalid pixels beside a valid one: a dropped edge, not background
                near[1:] |= valid[:-1]
                near[:-1] |= valid[1:]
                near[:, 1:] |= valid[:, :-1]
                near[:, :-1] |= valid[:, 1:]
                self.unknown = edges | (near & ~valid)
                depth = np.where(edges, 0.0, depth).astype(np.float32)
            trunc_m = max(trunc_m, cfg.noise_truncation * self.sigma_m)
            if cfg.noise_huber:
                self.delta = self.sigma_m * scale
        self.depth = depth
        self.points_m = self.cam.backproject(depth)
        self.points = torch.as_tensor(self.points_m * scale, dtype=torch.float32)
        self.tree = cKDTree(self.points.numpy()) if len(self.points) else None
        self.trunc_m = trunc_m

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
        u, v, z = self.cam.project(qn.astype(np.float64) / self.scale)
        ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
        in_img = (ui >= 0) & (ui < self.cam.width) & (vi >= 0) & (vi < self.cam.height) & (z > 0)
        d = np.zeros(len(qn))
        d[in_img] = self.depth[vi[in_img], ui[in_img]]
        valid = in_img & (d > 0)
        behind = valid & (z > d)
        observed = ~(valid & (z > d + self.trunc_m))
        if self.unknown is not None:
            unknown = np.zeros(len(qn), bool)
            unknown[in_img] = self.unknown[vi[in_img], ui[in_img]]
            observed &= ~unknown
        sign = torch.as_tensor(np.where(behind, -1.0, 1.0), dtype=q.dtype, device=q.device)
        return (
            (sign * dist).clamp(-clamp, clamp),
            torch.as_tensor(observed, device=q.device),
            torch.as_tensor(~valid, device=q.device),
        )


def reconstruction_loss(
    sdf_in: torch.Tensor, sdf_c: torch.Tensor, mask: torch.Tensor, bound: torch.Tensor | None = None, delta: float = 0.0
) -> torch.Tensor:
    """Reference L_r: |sdf_in - sdf_c| * (1 + 0.5 sign(sdf_c) sign(sdf_c - sdf_in)), mean over mask.

    bound (optional): points where sdf_in > 0 is only an upper bound on the true distance (off the
    silhouette); a canonical SDF within [0, sdf_in] there costs nothing. The reference's two-sided
    loss pulls the unseen side inward, leaving bodies short and thin. Points that break the bound keep the reference term, whose gradient moves them to the data.
    delta > 0: the absolute difference r becomes Huber's r^2 / (2 delta) within delta (the data's
    noise), r - delta / 2 beyond: noise-sized residuals are averaged rather than voted on by sign."""
    w = 1.0 + 0.5 * torch.sign(sdf_c) * torch.sign(sdf_c - sdf_in)
    r = (sdf_in - sdf_c).abs()
    if delta > 0:
        r = torch.where(r < delta, 0.5 * r * r / delta, r - 0.5 * delta)
    per = r * w
    if bound is not None:
        per = torch.where(bound & (sdf_c >= 0) & (sdf_c <= sdf_in), 0.0, per)
    m = mask.to(per.dtype)
    return (per * m).sum(-1) / m.sum(-1).clamp_min(1.0)


# ---------------------------------------------------------------------- the problem


class Problem:
    """Decoders, observations and canonical samples shared by both schedules."""

    def __init__(self, model, seq: DepthSequence, cfg: FitConfig):
        self.model, self.cfg = model, cfg
        self.dev = torch.device(cfg.device)
        self.scale = model.domain.model_per_metre  # model units per metre
        self.obs = [PartialSDF(seq, t, cfg.truncation, cfg, self.scale) for t in range(len(seq))]
        empty = [t for t, o in enumerate(self.obs) if o.empty]
        if len(empty) == len(self.obs):
            raise FitError(f"{seq.path}: no frame has a valid depth pixel")
        if empty:
            warnings.warn(
                f"frames {empty} have no valid pixel; their poses are carried by the temporal term", stacklevel=2
            )
        for t, o in enumerate(self.obs):
            if not o.empty and space.outside_cube(o.points.mean(0, keepdim=True), margin=0.1).any():
                raise FitError(
                    f"frame {t}: the observed subject (centre {(o.points.mean(0) / self.scale).numpy().round(2)} m) "
                    f"is outside the model cube [-{0.5 / self.scale:.2f}, {0.5 / self.scale:.2f}]^3 m around the world origin"
                    + ("" if cfg.use_segmentation else " (segmentation, which centres the subject, is off)")
                )
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.max_tilt = math.radians(cfg.max_tilt_deg)

    # decoders on batches of frames: x [B, N, 3] canonical
    def displacement(self, s, p, x):
        return self.model.pose_decoder(s.expand(len(p), -1), p, x)

    def shape_sdf(self, s, x):
        return self.model.shape_decoder(s.expand(len(x), -1), x)

    def rotations(self, r: torch.Tensor | None) -> torch.Tensor | None:
        """Rotation parameters r [B, 3] -> R [B, 3, 3]; None when the fit has no rotation."""
        if r is None or not self.cfg.use_rotation:
            return None
        return rotation_matrices(r, self.max_tilt)

    def canonical_samples(self, s: torch.Tensor, resolution: int, count: int):
        """Surface samples of the current canonical shape + N(0, noise^2), and a vertex subset for ICP."""
        from ..mesh.extract import extract

        with torch.inference_mode():
            res = extract(self.model.shape_decoder.sdf_fn(s.detach()), resolution, device=self.dev)
        v, f = res.vertices.cpu().numpy(), res.faces.cpu().numpy()
        if len(f) == 0:
            raise FitError("the initial shape code decodes to an empty surface")
        from ..data.sdf import sample_surface

        rng = np.random.default_rng(self.cfg.seed)
        pts = sample_surface(v.astype(np.float64), f, count, rng)[2]
        pts = pts + rng.normal(0, self.cfg.canonical_noise, pts.shape).astype(np.float32)
        surf = v[rng.choice(len(v), min(len(v), 20_000), replace=False)]
        self.samples = torch.as_tensor(pts, device=self.dev)
        self.surface = torch.as_tensor(surf, device=self.dev)

    def draw(self, n: int) -> torch.Tensor:
        idx = torch.randint(0, len(self.samples), (n,), generator=self.gen)
        return self.samples[idx.to(self.dev)]

    def frame_terms(self, s, p, tau, frames, x, icp: bool, sdf_c=None, bound: bool = False, r=None):
        """Per-frame L_r (and L_icp) for frames [B] with codes p [B,Dp], tau [B,3], rotation
        parameters r [B,3] (None: no rotation), points x [N,3];
        sdf_c: the clamped canonical SDF at x when the caller already has it (shape held fixed);
        bound: off-silhouette values as upper bounds (reconstruction_loss).

        Returns (lr [B], licp [B], dx [B,N,3])."""
        B = len(frames)
        xb = x.expand(B, -1, -1)
        dx = self.displacement(s, p, xb)
        R = self.rotations(r)
        if sdf_c is None:
            sdf_c = self.shape_sdf(s, x[None]).clamp(-self.cfg.clamp, self.cfg.clamp)[0]
        lr, licp = [], []
        for b, t in enumerate(frames):
            q = pose_points(x + dx[b], None if R is None else R[b], tau[b])
            sdf_in, mask, off = self.obs[t](q, self.cfg.clamp)
            lr.append(reconstruction_loss(sdf_in, sdf_c, mask, off if bound else None, self.obs[t].delta))
            licp.append(self.icp(s, p[b : b + 1], tau[b], t, None if R is None else R[b]) if icp else q.new_zeros(()))
        return torch.stack(lr), torch.stack(licp), dx

    def candidate_energies(self, s, p, tau, t, x, sdf_c, r=None):
        """L_r of frame t under each candidate code p [K,Dp], translation tau [K,3] and rotation
        parameters r [K,3] (None: no rotation), in one partial-SDF query for all candidates."""
        K, n = len(p), len(x)
        q = pose_points(x + self.displacement(s, p, x.expand(K, -1, -1)), self.rotations(r), tau)
        sdf_in, mask, _ = self.obs[t](q.reshape(-1, 3), self.cfg.clamp)
        return reconstruction_loss(sdf_in.reshape(K, n), sdf_c, mask.reshape(K, n), delta=self.obs[t].delta)

    def icp(self, s, p, tau, t, R=None):
        """Mean squared distance of observed points to the nearest posed canonical surface point
        (R [3,3] the frame's rotation or None)."""
        o = self.obs[t]
        if o.empty:
            return tau.new_zeros(())
        n = min(self.cfg.icp_points, len(self.surface))
        sub = self.surface[torch.randint(0, len(self.surface), (n,), generator=self.gen).to(self.dev)]
        warped = pose_points(sub + self.displacement(s, p, sub[None])[0], R, tau)
        k = min(self.cfg.icp_points, len(o.points))
        obs = o.points[torch.randint(0, len(o.points), (k,), generator=self.gen)].to(self.dev)
        _, nn = cKDTree(warped.detach().cpu().numpy()).query(obs.cpu().numpy(), workers=-1)
        return ((obs - warped[torch.as_tensor(nn, device=self.dev)]) ** 2).sum(-1).mean()

    def prior(self, s, P, w_shape: float | None = None):
        """w_shape mean(s^2) + w_pose_prior mean(P^2); w_shape defaults to cfg.w_shape_prior."""
        w_shape = self.cfg.w_shape_prior if w_shape is None else w_shape
        return w_shape * (s**2).mean() + self.cfg.w_pose_prior * (P**2).mean()

    def tilt_prior(self, r: torch.Tensor) -> torch.Tensor:
        """w_tilt_prior mean(tilt^2) of rotation parameters r [B, 3] (radians): a body stands upright
        unless the data say otherwise; a lean is the pose code's to explain."""
        t = self.max_tilt * torch.tanh(r[:, 1:] / self.max_tilt) if self.max_tilt > 0 else r[:, 1:] * 0
        return self.cfg.w_tilt_prior * (t**2).mean()

    @torch.no_grad()
    def per_frame_losses(self, s, P, tau, r=None) -> dict:
        """{"reconstruction": [T]}: each frame's L_r for shape s [Ds], codes P [T,Dp], translations
        tau [T,3] and rotation parameters r [T,3] (None: no rotation)."""
        x = self.draw(self.cfg.points_per_frame)
        out = {"reconstruction": []}
        for t in range(len(P)):
            lr, _, _ = self.frame_terms(
                s[None], P[t : t + 1], tau[t : t + 1], [t], x, False, r=None if r is None else r[t : t + 1]
            )
            out["reconstruction"].append(lr.item())
        return {k: np.asarray(v) for k, v in out.items()}


def ranking_points(gen: torch.Generator) -> torch.Tensor:
    """The 1,500 coarse canonical points, uniform in the cube, on which initial_codes ranks codes."""
    return torch.empty(1500, 3).uniform_(-0.45, 0.45, generator=gen)


def initial_codes(prob: Problem, shape: torch.Tensor | None = None):
    """Shape and pose codes (and with rotation, the yaw) that best explain the first observed frame
    among training codes (the pose for `shape` when the shape is known).

    Shapes: the mean and every training code (cfg.init_shape_candidates at most), ranked in
    batches at the mean pose and again at the chosen pose. The fit's canonical samples lie near
    the starting surface, so a start that is too short or thin is barely corrected later: bodies
    at the edges of the population need their nearest training code, not the best of a few.
    Poses: the mean and cfg.init_candidates random training codes.
    Yaw: cfg.yaw_candidates yaws round the circle are ranked with the mean codes, the codes are
    chosen at the best one, and the yaws are ranked again with those codes, then finer around
    the best (a quarter and half a step either side).
    Returns (s [Ds], p [Dp], tau [3], r [3] rotation parameters: yaw, tilts)."""
    m, cfg = prob.model, prob.cfg
    t0 = next(t for t, o in enumerate(prob.obs) if not o.empty)
    o = prob.obs[t0]
    forward = torch.as_tensor(o.cam.pose[:3, 2], dtype=torch.float32)  # the camera's optical axis (world)
    tau0 = (o.points.mean(0) + 0.04 * forward).to(prob.dev)  # the visible front is ~4 cm (model) before the pelvis
    gen = torch.Generator().manual_seed(cfg.seed)
    x = ranking_points(gen).to(prob.dev)
    r0 = torch.zeros(3, device=prob.dev)
    with torch.no_grad():

        def energies(s, p, r=r0, batch=32):
            """L_r of the frame for codes s [K, Ds] and p [K, Dp] (K may be 1 for either)."""
            K = max(len(s), len(p))
            s, p, R = s.expand(K, -1), p.expand(K, -1), prob.rotations(r[None])
            out = []
            for i in range(0, K, batch):
                sb, pb = s[i : i + batch], p[i : i + batch]
                xb = x.expand(len(sb), -1, -1)
                q = pose_points(xb + prob.displacement(sb, pb, xb), R, tau0)
                sdf_in, mask, _ = o(q.reshape(-1, 3), cfg.clamp)
                sdf_c = prob.shape_sdf(sb, xb).clamp(-cfg.clamp, cfg.clamp)
                out.append(
                    reconstruction_loss(sdf_in.reshape(len(sb), -1), sdf_c, mask.reshape(len(sb), -1), delta=o.delta)
                )
            return torch.cat(out)

        def best_yaw(s, p, yaws):
            rs = [torch.tensor([float(y), 0.0, 0.0], device=prob.dev) for y in yaws]
            return min(rs, key=lambda r: energies(s, p, r).item())

        step = 2 * math.pi / cfg.yaw_candidates
        circle = [k * step for k in range(cfg.yaw_candidates)]

        codes = m.shape_codes
        if len(codes) > cfg.init_shape_candidates:
            codes = codes[torch.randperm(len(codes), generator=gen)[: cfg.init_shape_candidates]]
        shape_c = torch.cat([m.shape_codes.mean(0, keepdim=True), codes])
        pose_c = torch.cat(
            [
                m.pose_codes.mean(0, keepdim=True),
                m.pose_codes[torch.randperm(len(m.pose_codes), generator=gen)[: cfg.init_candidates]],
            ]
        )
        p_mean = pose_c[:1]
        turn = cfg.use_rotation and cfg.yaw_candidates > 1
        if turn:
            r0 = best_yaw(shape_c[:1] if shape is None else shape[None], p_mean, circle)
        s_best = shape[None] if shape is not None else shape_c[[int(energies(shape_c, p_mean, r0).argmin())]]
        p_best = pose_c[[int(energies(s_best, pose_c, r0).argmin())]]
        if shape is None:
            s_best = shape_c[[int(energies(shape_c, p_best, r0).argmin())]]
        if turn:  # the circle again with the chosen codes, then a quarter and half of a step either side
            r0 = best_yaw(s_best, p_best, circle)
            r0 = best_yaw(s_best, p_best, [float(r0[0]) + f * step for f in (-0.5, -0.25, 0.0, 0.25, 0.5)])
        s_best, p_best = s_best[0], p_best[0]
    return s_best.clone(), p_best.clone(), tau0, r0.clone()
