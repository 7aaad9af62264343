"""fit(): set up the problem and the initial codes, run the configured schedule, return the codes.

Must not: write files (results.py does) or hold a schedule's steps (schedules.py does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..data.depth import DepthSequence
from .config import FitConfig, FitError
from .problem import Problem, initial_codes
from .schedules import SCHEDULES, Codes, FrameUpdate, Reporter

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    shape_code: torch.Tensor  # [Ds]
    pose_codes: torch.Tensor  # [T, Dp]
    translation: torch.Tensor  # [T, 3] model units
    losses: dict = field(default_factory=dict)  # name -> [T] per-frame values
    timings: dict = field(default_factory=dict)
    interrupted: bool = False


def fit(model, seq: DepthSequence, cfg: FitConfig, progress: Callable[[dict], None] | None = None,
        shape_code: torch.Tensor | None = None, on_frame: Callable[[FrameUpdate], None] | None = None) -> FitResult:
    """Fit shape, per-frame pose codes and translations to a depth sequence.

    progress: called with events {"stage", "step" or "iteration", "total", "energy", ...}.
    on_frame: called with each frame as the fast schedule finishes tracking it (the paper
    schedule optimises all frames together and reports none).
    shape_code: a known canonical shape [Ds] (e.g. fitted to a scan of the person), held fixed;
    only poses and translations are fitted (one depth view leaves the body's thickness to the prior)."""
    if cfg.schedule not in SCHEDULES:
        raise FitError(f"fit schedule must be one of {sorted(SCHEDULES)}, got {cfg.schedule!r}")
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    prob = Problem(model, seq, cfg)
    for p in list(model.shape_decoder.parameters()) + list(model.pose_decoder.parameters()):
        p.requires_grad_(False)
    if shape_code is not None:
        want = tuple(model.shape_codes.shape[1:])
        if tuple(shape_code.shape) != want:
            raise FitError(f"shape_code has shape {tuple(shape_code.shape)}; this checkpoint's shape codes are {want}")
        shape_code = shape_code.detach().to(model.shape_codes)
    s0, p0, tau0 = initial_codes(prob, shape_code)
    T = len(seq)
    s = s0[None].clone().requires_grad_(shape_code is None)
    P = p0.expand(T, -1).clone().requires_grad_(True)
    tau = tau0.expand(T, 3).clone()
    if not cfg.use_translation:
        tau = tau.mean(0, keepdim=True).expand(T, 3).clone()
    tau.requires_grad_(cfg.use_translation)
    prob.canonical_samples(s.detach()[0], cfg.init_resolution, cfg.canonical_samples)
    timings = {"init_s": time.time() - t_start}
    result = SCHEDULES[cfg.schedule].run(prob, Codes(s, P, tau), Reporter(progress, on_frame))
    if result.interrupted:
        log.warning("fit interrupted: keeping the last completed result")
    kept = result.codes
    s_f, P_f, tau_f = kept.shape[0], kept.pose, kept.translation
    timings["optimise_s"] = time.time() - t_start - timings["init_s"]
    losses = prob.per_frame_losses(s_f, P_f, tau_f)
    return FitResult(s_f.cpu().clone(), P_f.cpu().clone(), tau_f.cpu().clone(), losses, timings, result.interrupted)
