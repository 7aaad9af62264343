"""The two schedules that minimise the fitting energy, and the registry that names them.

`paper`: the reference's joint optimisation over all neighbouring frame pairs with its weights.
`fast`: frame-by-frame tracking, each frame starting from the previous frame's code, its
constant-velocity extrapolation or any earlier frame's code (and, with rotation, the previous
yaw turned either way), then a short joint refinement that treats off-silhouette observations
as upper bounds and frees the shape code.
Both optimise a `Codes` in place and return a `ScheduleResult`; Ctrl-C ends them early with
the last completed codes.

Must not: read or write files, or build the problem (problem.py does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .config import FitConfig, fast_config, paper_config
from .problem import Problem


@dataclass
class Codes:
    """The unknowns: shape [1, Ds], pose codes [T, Dp], translations [T, 3] (model units) and
    rotation parameters [T, 3] (yaw, tilts; problem.rotation_matrices), zeros and not fitted
    when the fit has no rotation."""

    shape: torch.Tensor
    pose: torch.Tensor
    translation: torch.Tensor
    rotation: torch.Tensor

    def detached(self) -> Codes:
        return Codes(*(c.detach().clone() for c in (self.shape, self.pose, self.translation, self.rotation)))

    def r(self, prob: Problem, frames=slice(None)) -> torch.Tensor | None:
        """The frames' rotation parameters, or None when the problem has no rotation."""
        return self.rotation[frames] if prob.cfg.use_rotation else None


@dataclass
class FrameUpdate:
    """One frame as tracking leaves it (CPU tensors, model units)."""

    frame: int  # 0-based
    frames: int  # frames in the sequence
    shape_code: torch.Tensor  # [Ds] the shape the frame was tracked with
    pose_code: torch.Tensor  # [Dp]
    translation: torch.Tensor  # [3]
    energy: float  # the frame's last tracking energy
    rotation: torch.Tensor | None = None  # [3, 3] world from canonical (None: identity)


@dataclass
class Reporter:
    """Where a schedule reports: progress events (dicts: stage, step or iteration, total, energy),
    tracked frames (FrameUpdate), and the optimiser steps done out of `total`."""

    progress: Callable[[dict], None] | None = None
    on_frame: Callable[[FrameUpdate], None] | None = None
    total: int = 0
    step: int = 0

    def event(self, **event) -> None:
        if self.progress is not None:
            self.progress(event)

    def frame(self, update: FrameUpdate) -> None:
        if self.on_frame is not None:
            self.on_frame(update)


@dataclass
class ScheduleResult:
    codes: Codes  # detached: what the fit keeps
    interrupted: bool = False  # Ctrl-C ended the schedule early


def adam(params_lrs):
    """Adam over the (tensor, learning rate) pairs that are being fitted."""
    return torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in params_lrs if p.requires_grad])


# ---------------------------------------------------------------------------- paper


def run_paper(prob: Problem, codes: Codes, rep: Reporter) -> ScheduleResult:
    """Reference schedule: `iterations` passes over all neighbouring frame pairs, batches of pairs;
    keeps the codes of iteration `keep_iteration` (the reference's choice), else the last ones."""
    cfg = prob.cfg
    s, P, tau = codes.shape, codes.pose, codes.translation
    T = P.shape[0]
    rep.total = cfg.iterations
    kept = None
    opt = adam([(s, cfg.lr_shape), (P, cfg.lr_pose), (tau, cfg.lr_translation), (codes.rotation, cfg.lr_rotation)])
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, cfg.iterations // 4), 0.5)
    pairs = [(t, t + 1) for t in range(T - 1)] or [(0, 0)]
    try:
        for it in range(cfg.iterations):
            icp = cfg.use_icp and it < cfg.iterations // 2
            order = torch.randperm(len(pairs), generator=prob.gen).tolist()
            total = 0.0
            for k in range(0, len(order), cfg.batch_pairs):
                batch = [pairs[i] for i in order[k : k + cfg.batch_pairs]]
                frames = sorted({t for pr in batch for t in pr})
                x = prob.draw(cfg.points_per_frame)
                fr = torch.tensor(frames)
                lr, licp, dx = prob.frame_terms(s, P[fr], tau[fr], frames, x, icp, r=codes.r(prob, fr))
                loss = lr.mean() + cfg.w_icp * licp.mean() + prob.prior(s, P[fr])
                if codes.r(prob) is not None:
                    loss = loss + prob.tilt_prior(codes.rotation[fr])
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
                kept = codes.detached()
            rep.step = it + 1
            rep.event(stage="paper", iteration=it + 1, total=cfg.iterations, energy=total)
    except KeyboardInterrupt:
        return ScheduleResult(kept if kept is not None else codes.detached(), interrupted=True)
    return ScheduleResult(kept if kept is not None else codes.detached())


# ----------------------------------------------------------------------------- fast


@torch.no_grad()
def warm_start(prob: Problem, codes: Codes, t: int, x: torch.Tensor, sdf_c: torch.Tensor):
    """Frame t's starting pose code [1, Dp], translation [1, 3] and rotation parameters [1, 3]:
    frame t-1's, or (cfg.extrapolate) their constant-velocity extrapolation from t-2 and t-1 when
    that explains frame t better - a plain warm start falls behind fast limbs and never catches
    up. With rotation, frame t-1's codes turned by +-cfg.yaw_step_deg are candidates too (a
    subject who starts turning). x [N, 3] canonical points, sdf_c [N] their clamped canonical SDF.

    cfg.track_bank: any earlier frame's code too. Tracking can settle a limb in a wrong basin
    that no local step leaves, and later frames inherit it; an earlier frame in a similar pose
    starts in the right one."""
    cfg, P, tau, rot = prob.cfg, codes.pose, codes.translation, codes.rotation
    if t == 0:
        return P[:1].clone(), tau[:1].clone(), rot[:1].clone()
    s = codes.shape.detach()
    cands = [(P[t - 1 : t], tau[t - 1 : t], rot[t - 1 : t])]
    if cfg.extrapolate and t > 1:
        cands.append(tuple(2 * a[t - 1 : t] - a[t - 2 : t - 1] for a in (P, tau, rot)))
    if cfg.use_rotation and cfg.yaw_step_deg > 0:
        for sign in (1.0, -1.0):
            turned = rot[t - 1 : t].clone()
            turned[0, 0] += sign * np.deg2rad(cfg.yaw_step_deg)
            cands.append((P[t - 1 : t], tau[t - 1 : t], turned))
    if cfg.track_bank and t > 2:  # every earlier frame's code, at frame t-1's translation and rotation
        n = cfg.bank_points
        p_all = torch.cat([c[0] for c in cands] + [P[: t - 1]])
        tau_all = torch.cat([c[1] for c in cands] + [tau[t - 1 : t].expand(t - 1, 3)])
        r_all = torch.cat([c[2] for c in cands] + [rot[t - 1 : t].expand(t - 1, 3)])
        energy = prob.candidate_energies(s, p_all, tau_all, t, x[:n], sdf_c[:n], r_all if cfg.use_rotation else None)
        k = int(energy.argmin())
        return p_all[k : k + 1].clone(), tau_all[k : k + 1].clone(), r_all[k : k + 1].clone()
    energy = [
        prob.frame_terms(s, p, tt, [t], x, False, sdf_c, r=rr if cfg.use_rotation else None)[0].item()
        for p, tt, rr in cands
    ]
    p, tt, rr = cands[int(np.argmin(energy))]
    return p.clone(), tt.clone(), rr.clone()


def track_steps(
    prob: Problem,
    s_t,
    p_t,
    tau_t,
    r_t,
    t: int,
    iters: int,
    x_fixed,
    sdf_c,
    prev,
    rep: Reporter,
    shape: torch.Tensor | None = None,
) -> torch.Tensor:
    """`iters` Adam steps on frame t's pose code p_t [1, Dp], translation tau_t [1, 3] and rotation
    r_t [1, 3] (and `shape` [1, Ds] when given: the first frame), with the shape s_t. x_fixed [N, 3]:
    the frame's canonical points (None: fresh points every step); sdf_c: their canonical SDF;
    prev: frame t-1's displacements there (L_c), or None. Returns the last step's energy."""
    cfg = prob.cfg
    params = [(p_t, cfg.lr_fast_pose), (tau_t, cfg.lr_fast_translation), (r_t, cfg.lr_fast_rotation)]
    if shape is not None:
        params.append((shape, cfg.lr_shape * 4))
    opt = adam(params)
    r_in = r_t if cfg.use_rotation else None
    loss = None
    for _ in range(iters):
        x = prob.draw(cfg.points_per_frame) if x_fixed is None else x_fixed
        lr, licp, dx = prob.frame_terms(s_t, p_t, tau_t, [t], x, cfg.use_icp and not prob.obs[t].empty, sdf_c, r=r_in)
        loss = lr.mean() + cfg.w_icp * licp.mean() + prob.prior(s_t, p_t)
        if r_in is not None:
            loss = loss + prob.tilt_prior(r_in)
        if cfg.use_temporal and prev is not None:
            loss = loss + cfg.w_temporal * F.smooth_l1_loss(dx[0], prev)
        opt.zero_grad()
        loss.backward()
        opt.step()
        rep.step += 1
    return loss


def turn_trials(prob: Problem, s, p_t, tau_t, r_t, rep: Reporter):
    """The first frame's yaw, decided between the initial yaw and the body turned round (yaw + 180
    degrees: from one depth view, a body's front and back differ only in detail, and the coarse
    search can take one for the other): cfg.yaw_trial_iters steps from each with the shape held,
    then the one with the lower L_r + w_icp L_icp on the same points. Returns (p, tau, r) [1, ...]."""
    cfg = prob.cfg
    x = prob.draw(cfg.points_per_frame)
    best = None
    for turn in (0.0, np.pi):
        p, tt, r = (
            p_t.detach().clone().requires_grad_(True),
            tau_t.detach().clone().requires_grad_(tau_t.requires_grad),
            r_t.detach().clone(),
        )
        with torch.no_grad():
            r[0, 0] += turn
        r.requires_grad_(True)
        track_steps(prob, s.detach(), p, tt, r, 0, cfg.yaw_trial_iters, None, None, None, rep)
        with torch.no_grad():
            lr, licp, _ = prob.frame_terms(s.detach(), p, tt, [0], x, cfg.use_icp and not prob.obs[0].empty, r=r)
            energy = (lr + cfg.w_icp * licp).item()
        if best is None or energy < best[0]:
            best = (energy, p.detach(), tt.detach(), r.detach())
    return best[1], best[2], best[3]


def run_fast(prob: Problem, codes: Codes, rep: Reporter) -> ScheduleResult:
    """Frame-by-frame warm start (shape fitted on the first frame; with rotation, its yaw decided
    by turn_trials), then the joint refinement."""
    cfg = prob.cfg
    s, P, tau, rot = codes.shape, codes.pose, codes.translation, codes.rotation
    T = P.shape[0]
    trials = cfg.use_rotation and cfg.yaw_trial_iters > 0 and not prob.obs[0].empty
    rep.total = cfg.first_frame_iters + (T - 1) * cfg.frame_iters + cfg.refine_steps + 2 * cfg.yaw_trial_iters * trials
    try:
        p_prev = None
        for t in range(T):
            x_fixed = prob.draw(cfg.points_per_frame)
            # after frame 0 the shape and the frame's points are fixed: its canonical SDF and the
            # previous frame's displacements are constants, computed once
            s_t, sdf_c, prev = s, None, None
            if t > 0:
                s_t = s.detach()
                with torch.no_grad():
                    sdf_c = prob.shape_sdf(s_t, x_fixed[None]).clamp(-cfg.clamp, cfg.clamp)[0]
                    prev = prob.displacement(s_t, p_prev, x_fixed[None])[0]
            p_t, tau_t, r_t = warm_start(prob, codes, t, x_fixed, sdf_c)
            tau_t.requires_grad_(tau.requires_grad)
            if t == 0 and trials:
                p_t, tau_t, r_t = turn_trials(prob, s, p_t, tau_t, r_t, rep)
                tau_t.requires_grad_(tau.requires_grad)
            p_t.requires_grad_(True)
            r_t.requires_grad_(rot.requires_grad)
            iters = cfg.first_frame_iters if t == 0 else cfg.frame_iters
            loss = track_steps(
                prob,
                s_t,
                p_t,
                tau_t,
                r_t,
                t,
                iters,
                None if t == 0 else x_fixed,
                sdf_c,
                prev,
                rep,
                s if t == 0 else None,
            )
            with torch.no_grad():
                P[t] = p_t.detach()[0]
                tau[t] = tau_t.detach()[0]
                rot[t] = r_t.detach()[0]
            p_prev = p_t.detach()
            energy = loss.item()
            R = prob.rotations(rot[t : t + 1].detach())
            rep.event(stage="track", frame=t + 1, frames=T, step=rep.step, total=rep.total, energy=energy)
            rep.frame(
                FrameUpdate(
                    t,
                    T,
                    s.detach()[0].cpu().clone(),
                    P[t].detach().cpu().clone(),
                    tau[t].detach().cpu().clone(),
                    energy,
                    None if R is None else R[0].cpu().clone(),
                )
            )
        if T > 1:
            refine(prob, codes, cfg.refine_steps, rep)
    except KeyboardInterrupt:
        return ScheduleResult(codes.detached(), interrupted=True)
    return ScheduleResult(codes.detached())


def refine(prob: Problem, codes: Codes, steps: int, rep: Reporter) -> int:
    """Joint refinement: every step sees every frame, so Adam never moves a code on stale momentum
    (refining pair by pair does, and drifts all frames). Returns rep.step after the steps."""
    if not steps:
        return rep.step
    cfg = prob.cfg
    opt = adam(
        [
            (codes.shape, cfg.refine_lr_shape),
            (codes.pose, cfg.lr_pose),
            (codes.translation, cfg.lr_translation),
            (codes.rotation, cfg.lr_rotation),
        ]
    )
    for _ in range(steps):
        loss = refine_energy(prob, codes, prob.draw(cfg.refine_points))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rep.step += 1
        rep.event(stage="refine", step=rep.step, total=rep.total, energy=loss.item())
    return rep.step


def refine_energy(prob: Problem, codes: Codes, x: torch.Tensor) -> torch.Tensor:
    """What the refinement minimises over all frames at canonical points x [N, 3]: L_r (with the
    silhouette bound if configured, so not the reference L_r), the priors (the refinement's
    shape prior) and L_c between neighbouring frames."""
    cfg, s, P, tau = prob.cfg, codes.shape, codes.pose, codes.translation
    lr, _, dx = prob.frame_terms(s, P, tau, list(range(len(P))), x, False, bound=cfg.silhouette_bound, r=codes.r(prob))
    loss = lr.mean() + prob.prior(s, P, cfg.refine_shape_prior)
    if codes.r(prob) is not None:
        loss = loss + prob.tilt_prior(codes.rotation)
    if cfg.use_temporal:
        loss = loss + cfg.w_temporal * F.smooth_l1_loss(dx[:-1], dx[1:])
    return loss


# ------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Schedule:
    config: Callable[..., FitConfig]  # keyword overrides -> the schedule's FitConfig
    run: Callable[[Problem, Codes, Reporter], ScheduleResult]


SCHEDULES = {
    "fast": Schedule(fast_config, run_fast),
    "paper": Schedule(paper_config, run_paper),
}
