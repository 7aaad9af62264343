"""A fit's results on disk: the meshes and codes of a FitResult written as a fit-result directory
(layout.write_fit), read back with layout.read_fit, and the per-frame log of a running fit.

Must not: name files (layout.py does) or fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .. import layout
from ..config import to_dict
from ..layout import LoadedFit, read_fit
from ..progress import JsonlLog
from .config import FitConfig
from .run import FitResult
from .schedules import FrameUpdate

read_result = read_fit  # a fit-result directory -> LoadedFit
__all__ = ["LoadedFit", "earlier_log_kept", "frame_log", "read_result", "rigid", "write_result"]


def rigid(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """Displaced canonical points [N,3] placed in the world: rotation [3,3] about the model origin,
    then translation [3] (model units, as fit.npz stores them)."""
    return points @ np.asarray(rotation, points.dtype).T + np.asarray(translation, points.dtype)


def write_result(
    out_dir,
    result: FitResult,
    model,
    cfg: FitConfig,
    checkpoint_name: str,
    sequence_path,
    resolution: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    compact: bool = False,
) -> Path:
    """Extract the canonical mesh at `resolution` (default cfg.final_resolution), pose it for every
    frame (R_t (x + dx) + translation_t), and write the fit-result directory atomically; fit.yaml
    records the sequence's path relative to out_dir and what segmentation did (capture). When
    segmentation removed pixels or centred the subject, its masks are saved into the sequence
    (capture.Prepared.save) for the app to show. progress(done, total) per posed frame."""
    from ..mesh.extract import extract, pose_mesh

    s = result.shape_code.to(cfg.device)
    resolution = resolution or cfg.final_resolution
    t0 = time.time()
    with torch.inference_mode():
        canon = extract(model.shape_decoder.sdf_fn(s), resolution, device=cfg.device)
    v, f = canon.vertices, canon.faces.cpu().numpy()
    T = len(result.pose_codes)
    scale = model.domain.model_per_metre  # model units per metre; the fit's world is the sequence's
    rotation = result.rotations().numpy()
    posed_all = []
    for t in range(T):
        with torch.inference_mode():
            posed = pose_mesh(v, model.pose_decoder.displacement_fn(s, result.pose_codes[t].to(cfg.device)))
        posed_all.append(rigid(posed.cpu().numpy(), rotation[t], result.translation[t].numpy()) / scale)
        if progress:
            progress(t + 1, T)
    meta = {
        "checkpoint": checkpoint_name,
        "frames": T,
        "interrupted": result.interrupted,
        "timings": {**{k: round(x, 2) for k, x in result.timings.items()}, "meshes_s": round(time.time() - t0, 2)},
        "mesh_resolution": resolution,
        "model_per_metre": scale,
        "config": to_dict(cfg),
    }
    if result.capture is not None:
        meta["capture"] = result.capture.summary()
        # what segmentation kept, for the app: written when it changed something (or replaces an earlier one)
        if (
            result.capture.removed
            or np.any(result.capture.offset_m)
            or layout.sequence_segmentation_dir(sequence_path).is_dir()
        ):
            result.capture.save(sequence_path)
    arrays = {
        "shape_code": result.shape_code.numpy(),
        "pose_codes": result.pose_codes.numpy(),
        "translation": result.translation.numpy(),
        "rotation": rotation.astype(np.float32),
        **{f"loss_{k}": x for k, x in result.losses.items()},
    }
    return layout.write_fit(
        out_dir,
        sequence_dir=sequence_path,
        meta=meta,
        arrays=arrays,
        canonical_vertices=v.cpu().numpy() / scale,
        faces=f,
        posed_vertices=np.stack(posed_all),
        compact=compact,
    )


@contextmanager
def earlier_log_kept(out_dir) -> Iterator[None]:
    """While a new fit runs into out_dir, an earlier result's progress log waits aside
    (layout.set_aside_fit_progress) and comes back if the body fails."""
    layout.set_aside_fit_progress(out_dir)
    try:
        yield
    except BaseException:
        layout.end_set_aside_fit_progress(out_dir, completed=False)
        raise
    layout.end_set_aside_fit_progress(out_dir, completed=True)


def frame_log(out_dir) -> Callable[[FrameUpdate], None]:
    """An on_frame callback for fit() that appends each tracked frame as one JSON line (fields:
    layout.FIT_PROGRESS_FIELDS) to out_dir's progress log, flushed. The log starts afresh with
    the first frame, so a run that fails before tracking leaves out_dir untouched."""
    path = layout.fit_progress_path(out_dir)
    log: list[JsonlLog] = []

    def write(u: FrameUpdate) -> None:
        if not log:
            log.append(JsonlLog(path, fresh=True))
        rotation = np.eye(3) if u.rotation is None else u.rotation.numpy()
        log[0](
            {
                "frame": u.frame,
                "frames": u.frames,
                "shape_code": u.shape_code.tolist(),
                "pose_code": u.pose_code.tolist(),
                "translation": u.translation.tolist(),
                "rotation": np.round(rotation, 6).tolist(),
                "energy": u.energy,
                "time": time.time(),
            }
        )

    return write
