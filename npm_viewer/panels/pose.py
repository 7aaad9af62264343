"""Pose panel: pose codes grouped by motion, A/B + beta on the current shape, play a training motion.

A pose change never re-extracts: the worker poses the cached canonical mesh (anchor preview
while dragging, exact after release).
"""

from __future__ import annotations

import polyscope.imgui as psim

from npm_core import bodies

from ..state import advance
from .common import combo, delta_sliders, pca_sliders, slider
from .shape import draw_stats

TITLE = "Pose"
# the joints offered as sliders (all joints are in the map; these are the ones people ask for)
SLIDER_JOINTS = ["spine_bend", "torso_twist", "head_turn", "shoulder_raise_l", "shoulder_raise_r",
                 "elbow_bend_l", "elbow_bend_r", "hip_flex_l", "hip_flex_r", "knee_bend_l", "knee_bend_r"]


def set_poses(app, a: int | None = None, b: int | None = None, beta: float | None = None) -> None:
    st = app.state
    st.motion_playing = False
    if a is not None:
        st.pose_a = int(a)
    if b is not None:
        st.pose_b = int(b)
    if beta is not None:
        st.beta = float(beta)
    app.request_view()


def play_motion(app, name: str, playing: bool = True) -> None:
    st = app.state
    st.motion, st.motion_playing, st.motion_pos = name, playing, 0.0
    app.request_view(preview=playing)


def update(app, dt: float) -> None:
    st, m = app.state, app.model
    if not st.motion_playing or m is None or st.view != "pose" or st.motion not in m.motions:
        return
    rows = m.motions[st.motion]
    old = int(st.motion_pos)
    st.motion_pos, frame = advance(st.motion_pos, dt, st.motion_fps, 1.0, len(rows))
    if frame != old and not app.worker.busy("main"):
        app.request_view(preview=True)


def set_joint(app, name: str, degrees: float) -> None:
    """Ask for joint `name` at `degrees`: the pose code moves along the joint-angle map by the
    difference from the current pose's angle."""
    j = bodies.JOINT_NAMES.index(name)
    app.state.angle_delta[j] = float(degrees) - float(app.base_angles()[j])
    app.request_view()


def draw_semantic(app) -> None:
    st, sem = app.state, app.model.semantics
    if not psim.CollapsingHeader("Joint-angle and PCA sliders", psim.ImGuiTreeNodeFlags_DefaultOpen):
        return
    if sem is None or sem.angles_to_pose is None:
        psim.TextWrapped(app.model.note or "this checkpoint's semantics have no joint-angle map")
        return
    items = [(bodies.JOINT_NAMES.index(n), n.replace("_", " "), bodies.JOINTS[n].lo, bodies.JOINTS[n].hi)
             for n in SLIDER_JOINTS]
    delta_sliders(app, items, app.base_angles(), st.angle_delta, sem.angle_range, "%.0f deg")
    pca_sliders(app, "pose PC", sem.pose_pca, st.pose_pca)
    if psim.SmallButton("reset joint/PCA sliders"):
        app.state.zero("angle_delta", "pose_pca")
        app.request_view()


def draw(app) -> None:
    st, m = app.state, app.model
    if m is None:
        psim.TextWrapped("No checkpoint open.")
        return
    if m.pose_codes is None:
        psim.TextWrapped("This checkpoint has no pose stage yet (pose.pt). Train it in the Train panel.")
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
            set_poses(app, **{which.lower(): m.motions[motions[mi2]][0]})
            cur_motion = motions[mi2]
        rows = m.motions[cur_motion]
        pos = rows.index(getattr(st, attr)) if getattr(st, attr) in rows else 0
        changed, pos = psim.SliderInt(f"frame {which}", pos, 0, len(rows) - 1)
        if changed:
            setattr(st, attr, rows[pos])
            st.motion_playing = False
            app.request_view(preview=True)
        if psim.IsItemDeactivatedAfterEdit():
            app.request_view()
    slider(app, "beta (A -> B)", st.beta, lambda v: setattr(st, "beta", v))
    draw_semantic(app)
    psim.Separator()
    changed, mi = combo("motion", motions.index(st.motion) if st.motion in motions else 0, motions)
    if changed:
        st.motion = motions[mi]
    if psim.Button("Pause" if st.motion_playing else "Play motion"):
        if st.motion_playing:
            st.motion_playing = False
            app.request_view()
        else:
            play_motion(app, st.motion or motions[0])
    psim.SameLine()
    _, st.motion_fps = psim.SliderFloat("fps", st.motion_fps, 2.0, 30.0, "%.0f")
    if st.motion_playing:
        rows = m.motions.get(st.motion, [0])
        psim.Text(f"{st.motion}: frame {int(st.motion_pos) % len(rows) + 1}/{len(rows)}")
    draw_stats(app)
