"""What the current view shows, as codes: State + the checkpoint's codes (loading.ModelInfo) ->
the shape and pose codes of the body, and the mesh requests for the worker.

Pure numpy over npm_core.compose (blends, semantic edits, the transfer grid); testable without
polyscope or torch. Must not: draw, or talk to the worker (the app submits what requests() says).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npm_core import bodies, compose

GALLERY_RESOLUTION = 64  # cells per axis of each gallery body


@dataclass
class Request:
    """One worker job: meshes of (shape code, pose code or None) pairs at a grid resolution."""

    channel: str  # "main" (the body) | "gallery"
    items: list  # [(shape code [Ds], pose code [Dp] or None), ...]
    resolution: int
    pose_mode: str = "exact"  # "exact" | "preview" (anchor posing)


def base_shape_code(st, m) -> np.ndarray:
    """A (or the prior sample) blended towards B by alpha: the code before the semantic sliders."""
    a = np.asarray(st.sampled, np.float32) if st.sampled is not None else m.shape_codes[st.shape_a]
    return compose.mix(a, m.shape_codes[st.shape_b], st.alpha) if st.alpha > 0 else np.asarray(a, np.float32)


def base_phenotypes(st, m) -> np.ndarray | None:
    """[A] attributes (Anny: phenotypes, semantics.names order) of the base code: the identities'
    own labels (blended), else the semantic map's estimate; None without either."""
    if m.phenotypes is not None and st.sampled is None:
        return compose.mix(m.phenotypes[st.shape_a], m.phenotypes[st.shape_b], st.alpha).astype(np.float64)
    return None if m.semantics is None else m.semantics.shape_to_phenotype(base_shape_code(st, m))


def shape_code(st, m) -> np.ndarray:
    """[Ds] the body's shape code: the base code after the phenotype and PCA sliders."""
    if m.semantics is None:
        return base_shape_code(st, m)
    return compose.edit_shape(
        base_shape_code(st, m), m.semantics, base_phenotypes(st, m), st.phenotype_delta, st.shape_pca
    )


def motion_rows(st, m) -> list:
    """Pose-code rows of the selected motion in frame order ([] when there is none)."""
    return m.motions.get(st.motion, []) if m is not None else []


def pose_row(st, m, table: np.ndarray) -> np.ndarray:
    """The row of a per-pose-code table (codes, angles) the pose view shows: the motion's row at
    the timeline's frame while a motion is on, else A blended towards B by beta."""
    rows = motion_rows(st, m)
    if st.motion_on and rows:
        return np.asarray(table[rows[st.frame % len(rows)]])
    return compose.mix(table[st.pose_a], table[st.pose_b], st.beta)


def base_angles(st, m) -> np.ndarray:
    """[J] joint angles (deg) of the base pose (labels of the frames, blended); zeros if unlabelled."""
    if m.angles is None:
        return np.zeros(len(bodies.JOINT_NAMES))
    return pose_row(st, m, m.angles).astype(np.float64)


def pose_code(st, m) -> np.ndarray | None:
    """[Dp] the body's pose code after the joint-angle and PCA sliders; None without a pose stage."""
    if m is None or m.pose_codes is None:
        return None
    return compose.edit_pose(
        pose_row(st, m, m.pose_codes), m.semantics, base_angles(st, m), st.angle_delta, st.pose_pca
    )


def timeline(st, m, replay) -> tuple[int, float]:
    """(frames, fps) of what the current view plays: the loaded fit in the sequence view, the
    selected motion in the pose view while it is on; (0, 0) for still views."""
    if st.view == "sequence" and replay is not None and replay.done:
        return replay.frames, replay.fps
    if st.view == "pose" and st.motion_on and motion_rows(st, m):
        return len(motion_rows(st, m)), st.motion_fps
    return 0, 0.0


def requests(st, m, preview: bool = False) -> list[Request]:
    """The worker jobs for the current view. preview: a shape slider is being dragged (coarse grid)
    or a pose slider / playback (anchor posing of the cached full-resolution canonical mesh)."""
    if m is None or st.view == "sequence":
        return []
    mode = "preview" if preview else "exact"
    if st.view == "shape":
        res = st.preview_resolution if preview else st.full_resolution
        return [Request("main", [(shape_code(st, m), None)], res)]
    if st.view == "pose":  # pose sliders never re-extract: the canonical mesh stays cached
        return [Request("main", [(shape_code(st, m), pose_code(st, m))], st.full_resolution, mode)]
    if st.view == "transfer" and not st.gallery:
        return [
            Request(
                "main",
                compose.transfer_grid(m.shape_codes, m.pose_codes, [st.transfer_shape], [st.transfer_pose]),
                st.full_resolution,
                mode,
            )
        ]
    if st.view == "transfer":
        return [
            Request(
                "gallery",
                compose.transfer_grid(m.shape_codes, m.pose_codes, st.gallery_shapes, st.gallery_poses),
                GALLERY_RESOLUTION,
            )
        ]
    return []
