"""Pose panel: pose codes grouped by motion, A/B + beta on the current shape, play a training motion,
joint-angle sliders for Anny bodies (a domain without joint angles has none).

A pose change never re-extracts: the worker poses the cached canonical mesh (anchor preview while
dragging or playing, exact after release or pause). A motion plays on the one timeline
(state.frame), as a sequence replays; pausing keeps the frame on screen.
"""

from __future__ import annotations

import polyscope.imgui as psim

from npm_core import bodies

from .. import selection
from .common import combo, delta_sliders, pca_sliders, playback_controls, slider
from .shape import draw_stats

TITLE = "Pose"
# the joints offered as sliders (all joints are in the map; these are the ones people ask for)
SLIDER_JOINTS = [
    "spine_bend",
    "torso_twist",
    "head_turn",
    "shoulder_raise_l",
    "shoulder_raise_r",
    "elbow_bend_l",
    "elbow_bend_r",
    "hip_flex_l",
    "hip_flex_r",
    "knee_bend_l",
    "knee_bend_r",
]


def set_poses(viewer, a: int | None = None, b: int | None = None, beta: float | None = None) -> None:
    """Show pose A blended towards B (leaves the motion)."""
    st = viewer.state
    st.motion_on = st.playing = False
    if a is not None:
        st.pose_a = int(a)
    if b is not None:
        st.pose_b = int(b)
    if beta is not None:
        st.beta = float(beta)
    viewer.request_mesh()


def set_beta(st, beta: float) -> None:
    """The beta slider: A blended towards B (leaves the motion; the slider asks for the mesh)."""
    st.beta, st.motion_on, st.playing = float(beta), False, False


def play_motion(viewer, name: str, playing: bool = True) -> None:
    """Show motion `name` from its first frame, playing or paused."""
    st = viewer.state
    st.motion, st.motion_on, st.playing = name, True, playing
    viewer.set_frame(0)


def pause(viewer) -> None:
    """Stop the motion on the frame shown, posed exactly."""
    viewer.state.playing = False
    viewer.request_mesh()


def show_motion_frame(viewer, k: int) -> None:
    """Go to frame k of the selected motion (paused)."""
    st = viewer.state
    st.motion_on, st.playing = True, False
    viewer.set_frame(k)


def random_pose(viewer) -> int:
    """Pose A := a random training pose code (seeded by the draws so far: reproducible); beta 0."""
    import numpy as np

    st = viewer.state
    st.prior_draws += 1
    row = int(np.random.default_rng(1000 + st.prior_draws).integers(len(viewer.model.pose_codes)))
    set_poses(viewer, a=row, beta=0.0)
    return row


def clip_position(rows: list, labels: list, k: int) -> tuple[int, int, int, int]:
    """(clip index, clips, frame in the clip, the clip's frames) of row k of a motion; a clip is a
    run of rows of one identity (loading._motions puts them clip after clip)."""
    who = [labels[r].shape_index if len(labels) > r else None for r in rows]
    starts = [i for i in range(len(rows)) if i == 0 or who[i] != who[i - 1]]
    c = max(i for i, s0 in enumerate(starts) if s0 <= k)
    end = starts[c + 1] if c + 1 < len(starts) else len(rows)
    return c, len(starts), k - starts[c], end - starts[c]


def joint_items(m) -> list:
    """(index, label, lo, hi) of the joint sliders: SLIDER_JOINTS when the checkpoint's semantics
    have a joint-angle map (Anny bodies' joints); [] for a domain without joint angles."""
    sem = m.semantics
    if sem is None or sem.angles_to_pose is None or m.domain.source != "anny":
        return []
    return [
        (bodies.JOINT_NAMES.index(n), n.replace("_", " "), bodies.JOINTS[n].lo, bodies.JOINTS[n].hi)
        for n in SLIDER_JOINTS
    ]


def no_joints_note(m) -> str:
    """Why the pose panel has no joint sliders ('' when it has them)."""
    if joint_items(m):
        return ""
    if m.domain.source != "anny":
        return f"{m.domain.name}: no joint-angle sliders for this domain; pose with A, B, beta and the pose PCA"
    return m.note or "this checkpoint's semantics have no joint-angle map"


def set_joint(viewer, name: str, degrees: float) -> None:
    """Ask for joint `name` at `degrees`: the pose code moves along the joint-angle map by the
    difference from the current pose's angle."""
    if not joint_items(viewer.model):
        raise ValueError(no_joints_note(viewer.model))
    j = bodies.JOINT_NAMES.index(name)
    st = viewer.state
    st.angle_delta[j] = float(degrees) - float(selection.base_angles(st, viewer.model)[j])
    viewer.request_mesh()


def draw_semantic(viewer) -> None:
    st, m = viewer.state, viewer.model
    if not psim.CollapsingHeader("Joint-angle and PCA sliders", psim.ImGuiTreeNodeFlags_DefaultOpen):
        return
    sem, items = m.semantics, joint_items(m)
    if not items:
        psim.TextWrapped(no_joints_note(m))
    if sem is None or sem.pose_pca is None:
        return
    if items:
        delta_sliders(viewer, items, selection.base_angles(st, m), st.angle_delta, sem.angle_range, "%.0f deg")
    pca_sliders(viewer, "pose PC", sem.pose_pca, st.pose_pca)
    if psim.SmallButton("reset joint/PCA sliders"):
        st.zero("angle_delta", "pose_pca")
        viewer.request_mesh()


def draw(viewer) -> None:
    st, m = viewer.state, viewer.model
    if m is None:
        psim.TextWrapped("No checkpoint open.")
        return
    if m.pose_codes is None:
        psim.TextWrapped("This checkpoint has no pose stage yet. Train it in the Train panel.")
        return
    motions = list(m.motions)
    psim.TextDisabled(f"{len(m.pose_codes)} pose codes in {len(motions)} motions")
    for which in ("A", "B"):
        attr = "pose_a" if which == "A" else "pose_b"
        cur = getattr(st, attr)
        cur_motion = next((k for k, rows in m.motions.items() if cur in rows), motions[0])
        mi = motions.index(cur_motion)
        changed, mi2 = combo(f"motion {which}", mi, motions)
        if changed:
            set_poses(viewer, **{which.lower(): m.motions[motions[mi2]][0]})
            cur_motion = motions[mi2]
        rows = m.motions[cur_motion]
        pos = rows.index(getattr(st, attr)) if getattr(st, attr) in rows else 0
        changed, pos = psim.SliderInt(f"frame {which}", pos, 0, len(rows) - 1)
        if changed:
            setattr(st, attr, rows[pos])
            st.motion_on = st.playing = False
            viewer.request_mesh(preview=True)
        if psim.IsItemDeactivatedAfterEdit():
            viewer.request_mesh()
    slider(viewer, "beta (A -> B)", st.beta, lambda v: set_beta(st, v))
    if psim.Button("Random pose"):
        random_pose(viewer)
    psim.SameLine()
    psim.TextDisabled("A := a random training pose code")
    draw_semantic(viewer)
    psim.Separator()
    changed, mi = combo("motion", motions.index(st.motion) if st.motion in motions else 0, motions)
    if changed:
        play_motion(viewer, motions[mi], playing=False)
    if not st.motion_on and psim.Button("Play motion"):
        play_motion(viewer, st.motion or motions[0])
    elif st.motion_on:
        playback_controls(viewer)
    rows = selection.motion_rows(st, m)
    if st.motion_on and rows:
        changed, k = psim.SliderInt(f"{st.motion} frame", st.frame % len(rows), 0, len(rows) - 1)
        if changed:
            show_motion_frame(viewer, k)
        clip, n_clips, pos, n = clip_position(rows, m.info.pose_labels, st.frame % len(rows))
        labels = m.info.pose_labels
        who = labels[rows[st.frame % len(rows)]].identity if len(labels) > max(rows) else None
        psim.TextDisabled(f"clip {clip + 1}/{n_clips}{f' ({who})' if who else ''}: frame {pos + 1}/{n}")
    draw_stats(viewer)
