"""Transfer panel: the shape of one identity with the pose of another; gallery of N x M
(shapes x poses), like the paper's transfer figure (codes paired by npm_core.compose.transfer_grid,
laid out by scene.grid_offsets)."""

from __future__ import annotations

import numpy as np
import polyscope.imgui as psim

from ..selection import GALLERY_RESOLUTION
from .common import combo, identity_filter, search_combo

TITLE = "Transfer"


def set_transfer(viewer, shape: int | None = None, pose: int | None = None) -> None:
    st = viewer.state
    if shape is not None:
        st.transfer_shape = int(shape)
    if pose is not None:
        st.transfer_pose = int(pose)
    viewer.request_mesh()


def set_gallery(viewer, on: bool, shapes: list | None = None, poses: list | None = None) -> None:
    st = viewer.state
    st.gallery = bool(on)
    if shapes is not None:
        st.gallery_shapes = [int(i) for i in shapes]
    if poses is not None:
        st.gallery_poses = [int(j) for j in poses]
    viewer.request_mesh()


def gallery_choice(m, n_shapes: int, n_poses: int) -> tuple[list, list]:
    """Spread n_shapes over the training identities; one mid-motion frame per motion for poses."""
    shapes = [int(i) for i in np.linspace(0, len(m.shape_codes) - 1, n_shapes).round()]
    if m.pose_codes is None:
        return shapes, [0]
    mids = [r[len(r) // 2] for r in m.motions.values()]
    if len(mids) < n_poses:
        mids = [int(j) for j in np.linspace(0, len(m.pose_codes) - 1, n_poses).round()]
    return shapes, mids[:n_poses]


def draw(viewer) -> None:
    st, m = viewer.state, viewer.model
    if m is None:
        psim.TextWrapped("No checkpoint open.")
        return
    changed, gal = psim.Checkbox("gallery (shapes x poses)", st.gallery)
    if changed:
        set_gallery(viewer, gal)
    if not st.gallery:
        identity_filter(viewer)
        changed, i = search_combo(viewer, "shape of", st.transfer_shape, m.shape_labels)
        if changed:
            set_transfer(viewer, shape=i)
        if m.pose_codes is None:
            psim.TextDisabled("no pose stage in this checkpoint: canonical pose")
        else:
            changed, j = combo("pose of", st.transfer_pose, m.pose_labels)
            if changed:
                set_transfer(viewer, pose=j)
        return
    n_s, n_p = len(st.gallery_shapes), len(st.gallery_poses)
    c1, n_s = psim.SliderInt("shapes (rows)", n_s, 1, min(6, len(m.shape_codes)))
    released = psim.IsItemDeactivatedAfterEdit()
    c2, n_p = psim.SliderInt("poses (columns)", n_p, 1, 1 if m.pose_codes is None else min(8, len(m.pose_codes)))
    released |= psim.IsItemDeactivatedAfterEdit()
    if c1 or c2:  # lists follow the sliders; meshes are asked for on release
        st.gallery_shapes, st.gallery_poses = gallery_choice(m, n_s, n_p)
    if released:
        set_gallery(viewer, True)
    psim.TextDisabled("rows: " + ", ".join(m.shape_labels[i].split("  ")[0] for i in st.gallery_shapes))
    if m.pose_codes is not None:
        psim.TextDisabled("columns: " + ", ".join(m.pose_labels[j] for j in st.gallery_poses))
    if psim.Button("Rebuild gallery"):
        set_gallery(viewer, True)
    if viewer.worker_status("gallery")[0]:
        psim.TextColored((1.0, 0.8, 0.3, 1.0), f"computing {n_s * n_p} meshes at {GALLERY_RESOLUTION}^3...")
