"""fit(): prepare the capture (segment, centre), set up the problem and the initial codes, run the
configured schedule, return the codes in the sequence's own world.

Must not: write files (results.py does) or hold a schedule's steps (schedules.py does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import space
from ..data import capture
from ..data.depth import DepthSequence
from .config import FitConfig, FitError
from .problem import Problem, initial_codes
from .schedules import SCHEDULES, Codes, FrameUpdate, Reporter

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    shape_code: torch.Tensor  # [Ds]
    pose_codes: torch.Tensor  # [T, Dp]
    translation: torch.Tensor  # [T, 3] model units, the sequence's world
    rotation: torch.Tensor | None = None  # [T, 3, 3] world from canonical; posed = R (x + dx) + translation
    losses: dict = field(default_factory=dict)  # name -> [T] per-frame values
    timings: dict = field(default_factory=dict)
    interrupted: bool = False
    capture: capture.Prepared | None = None  # what segmentation kept and the centring (None: not segmented)

    def rotations(self) -> torch.Tensor:
        """[T, 3, 3]: the rotations, identities when the fit had none."""
        if self.rotation is not None:
            return self.rotation
        return torch.eye(3).expand(len(self.pose_codes), 3, 3).clone()


def observed(
    seq: DepthSequence, cfg: FitConfig, scale: float = space.METRES_TO_MODEL
) -> tuple[DepthSequence, capture.Prepared | None]:
    """The sequence a fit sees: with cfg.use_segmentation, only the subject's depth, in a world
    moved so the subject is at the origin (capture.prepare; nothing is written). A clean, centred
    sequence comes back with the same depth and camera. SegmentationError names the frame.
    scale (model units per metre) sizes what segmentation expects of a subject (capture.SegmentConfig.for_scale)."""
    if not cfg.use_segmentation or not (seq.depths > 0).any():  # (no depth at all: Problem says so)
        return seq, None
    prep = capture.prepare(seq, capture.SegmentConfig.for_scale(scale), save=False)
    return prep.sequence, prep


def fit(
    model,
    seq: DepthSequence,
    cfg: FitConfig,
    progress: Callable[[dict], None] | None = None,
    shape_code: torch.Tensor | None = None,
    on_frame: Callable[[FrameUpdate], None] | None = None,
) -> FitResult:
    """Fit shape, per-frame pose codes and translations to a depth sequence.

    progress: called with events {"stage", "step" or "iteration", "total", "energy", ...}.
    on_frame: called with each frame as the fast schedule finishes tracking it (the paper
    schedule optimises all frames together and reports none).
    shape_code: a known canonical shape [Ds] (e.g. fitted to a scan of the person), held fixed;
    only poses and translations are fitted (one depth view leaves the body's thickness to the prior).
    With cfg.use_segmentation the subject is segmented and centred first (observed()); the
    result's translations are in the sequence's own world all the same."""
    if cfg.schedule not in SCHEDULES:
        raise FitError(f"fit schedule must be one of {sorted(SCHEDULES)}, got {cfg.schedule!r}")
    torch.manual_seed(cfg.seed)
    t_start = time.time()
    scale = model.domain.model_per_metre
    seq, prep = observed(seq, cfg, scale)
    segment_s = time.time() - t_start
    prob = Problem(model, seq, cfg)
    for p in list(model.shape_decoder.parameters()) + list(model.pose_decoder.parameters()):
        p.requires_grad_(False)
    if shape_code is not None:
        want = tuple(model.shape_codes.shape[1:])
        if tuple(shape_code.shape) != want:
            raise FitError(f"shape_code has shape {tuple(shape_code.shape)}; this checkpoint's shape codes are {want}")
        shape_code = shape_code.detach().to(model.shape_codes)
    s0, p0, tau0, r0 = initial_codes(prob, shape_code)
    T = len(seq)
    s = s0[None].clone().requires_grad_(shape_code is None)
    P = p0.expand(T, -1).clone().requires_grad_(True)
    tau = tau0.expand(T, 3).clone()
    if not cfg.use_translation:
        tau = tau.mean(0, keepdim=True).expand(T, 3).clone()
    tau.requires_grad_(cfg.use_translation)
    rot = r0.expand(T, 3).clone().requires_grad_(cfg.use_rotation)
    prob.canonical_samples(s.detach()[0], cfg.init_resolution, cfg.canonical_samples)
    timings = {"init_s": time.time() - t_start, "segment_s": segment_s}
    offset = torch.zeros(3) if prep is None else torch.as_tensor(np.asarray(prep.offset_m) * scale, dtype=torch.float32)
    report = on_frame
    if on_frame is not None and prep is not None:  # tracked frames reported in the sequence's own world

        def report(u: FrameUpdate) -> None:
            u.translation = u.translation - offset
            on_frame(u)

    result = SCHEDULES[cfg.schedule].run(prob, Codes(s, P, tau, rot), Reporter(progress, report))
    if result.interrupted:
        log.warning("fit interrupted: keeping the last completed result")
    kept = result.codes
    s_f, P_f, tau_f = kept.shape[0], kept.pose, kept.translation
    timings["optimise_s"] = time.time() - t_start - timings["init_s"]
    losses = prob.per_frame_losses(s_f, P_f, tau_f, kept.r(prob))
    R = prob.rotations(kept.rotation)
    return FitResult(
        s_f.cpu().clone(),
        P_f.cpu().clone(),
        tau_f.cpu() - offset,
        None if R is None else R.cpu().clone(),
        losses,
        timings,
        result.interrupted,
        prep,
    )
