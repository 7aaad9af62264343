"""Export panel: the mesh on screen as .ply/.obj (metres, trimesh), a screenshot, the camera to
and from a JSON file (camera_io), MP4 videos rendered headless-style (headless.py: the timeline
shown - sequence replay or motion - or a turntable of the body), and a frame sequence (PNGs,
plus GIF via Pillow and MP4 via imageio-ffmpeg when installed) of a sequence replay or a
shape/pose interpolation.

Frames are captured after a rendered frame (the app calls Recorder.after_frame), never inside the
ImGui callback. The panel's settings live in the State (export_*).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polyscope.imgui as psim

from ..render import save_png
from ..state import EXPORT_SOURCES as SOURCES

TITLE = "Export"


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401

        return True
    except ImportError:
        return False


def save_mesh(viewer, path) -> Path | None:
    """The mesh on screen (metres) as .ply / .obj (by the suffix, trimesh)."""
    import trimesh

    mesh = viewer.mesh_on_screen()
    if mesh is None:
        viewer.state.error("no mesh on screen to export")
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(np.asarray(mesh[0]), np.asarray(mesh[1]), process=False).export(path)
    viewer.state.info(f"wrote {path}")
    return path


def timeline_video(viewer, path, size=(1280, 720), progress=None) -> Path:
    """The current timeline (sequence replay, or the pose view's motion) frame by frame into `path`
    (.mp4 / .gif) at its own fps; every frame is rendered (the worker's exact pose is waited for)."""
    from .. import headless

    st = viewer.state
    count, fps = viewer.timeline()
    if not count:
        raise ValueError("nothing plays in this view: open a fit (Sequence) or play a motion (Pose) first")
    old, st.playing = st.frame, False

    def update(i: int) -> None:
        viewer.set_frame(i)
        viewer.settle(frames=0)  # a motion frame is posed by the worker: wait for it

    try:
        return headless.render_video(path, update, count, fps, size, progress)
    finally:
        viewer.set_frame(old)


def turntable_video(viewer, path, n_frames: int = 120, size=(1280, 720), fps: float = 30.0, progress=None) -> Path:
    """One turn of the camera around the mesh on screen (the body or the fit) in n_frames frames."""
    from .. import headless

    mesh = viewer.mesh_on_screen()
    if mesh is None:
        raise ValueError("no mesh on screen to turn around")
    v = np.asarray(mesh[0])
    lo, hi = v.min(0), v.max(0)
    radius = 1.2 * float(np.linalg.norm(hi - lo))
    return headless.render_turntable(path, (lo + hi) / 2, radius, 10.0, n_frames, fps, size, progress)


def export_video(viewer, kind: str, path, n_frames: int = 120):
    """Export panel buttons: errors become one message instead of an exception."""
    try:
        out = timeline_video(viewer, path) if kind == "timeline" else turntable_video(viewer, path, n_frames)
    except (ValueError, RuntimeError, OSError) as e:
        viewer.state.error(f"cannot write {kind} video: {e}")
        return None
    viewer.state.info(f"wrote {out}")
    return out


def camera(viewer, action: str, path) -> None:
    """Save the view camera to / load it from a JSON file."""
    from .. import camera_io

    try:
        if action == "save":
            viewer.state.info(f"camera -> {camera_io.save_camera(path)}")
        else:
            camera_io.load_camera(path)
            viewer.state.info(f"camera <- {path}")
    except (ValueError, OSError) as e:
        viewer.state.error(f"camera: {e}")


def screenshot(viewer, path, include_ui: bool = True) -> None:
    viewer.screenshot(path, include_ui)
    viewer.state.info(f"screenshot -> {path}")


class Recorder:
    """Steps through `frames` states of `source`, one capture per state once the view is ready."""

    def __init__(
        self, viewer, source: str, frames: int, out_dir, gif: bool = True, mp4: bool = False, include_ui: bool = False
    ):
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        rp, m, st = viewer.replay, viewer.model, viewer.state
        if source == SOURCES[0] and (rp is None or not rp.done):
            raise ValueError("open and load a fit result first (Sequence panel)")
        if source != SOURCES[0] and m is None:
            raise ValueError("open a checkpoint first")
        if source == SOURCES[2] and m.pose_codes is None:
            raise ValueError("this checkpoint has no pose stage")
        self.source, self.out = source, Path(out_dir)
        self.frames = rp.frames if source == SOURCES[0] else max(2, int(frames))
        self.fps = rp.fps if source == SOURCES[0] else 15.0
        self.gif, self.mp4, self.ui = gif, mp4 and has_ffmpeg(), include_ui
        self.k, self.paths, self.done = 0, [], False
        self.out.mkdir(parents=True, exist_ok=True)
        self.old = (st.frame, st.alpha, st.beta, st.playing, st.motion_on)
        st.playing = False
        view = {SOURCES[0]: "sequence", SOURCES[1]: "shape", SOURCES[2]: "pose"}[source]
        if st.view != view:
            panel = st.panel
            viewer.select_panel(view)
            viewer.select_panel(panel)
        if source == SOURCES[2]:
            st.motion_on = False
        self.apply(viewer)

    def apply(self, viewer) -> None:
        st, t = viewer.state, self.k / max(1, self.frames - 1)
        if self.source == SOURCES[0]:
            viewer.set_frame(self.k)
        elif self.source == SOURCES[1]:
            st.alpha = t
            viewer.request_mesh()
        else:
            st.beta = t
            viewer.request_mesh()

    def after_frame(self, viewer) -> None:
        """Called after each rendered frame: capture when the requested mesh is on screen."""
        if self.done or viewer.worker_status("main")[0]:
            return
        path = self.out / f"frame_{self.k:05d}.png"
        save_png(path, viewer.capture(self.ui))
        self.paths.append(path)
        self.k += 1
        if self.k < self.frames:
            self.apply(viewer)
            return
        self.finish(viewer)

    def finish(self, viewer) -> None:
        from PIL import Image

        self.done = True
        imgs = [Image.open(p).convert("RGB") for p in self.paths]
        if self.gif and imgs:
            imgs[0].save(
                self.out / "animation.gif", save_all=True, append_images=imgs[1:], duration=int(1000 / self.fps), loop=0
            )
        if self.mp4 and imgs:
            import imageio_ffmpeg

            w, h = imgs[0].size
            w2, h2 = w - w % 2, h - h % 2
            writer = imageio_ffmpeg.write_frames(
                str(self.out / "animation.mp4"), (w2, h2), fps=self.fps, macro_block_size=1, quality=7
            )
            writer.send(None)
            for im in imgs:
                writer.send(np.ascontiguousarray(np.asarray(im)[:h2, :w2]))
            writer.close()
        viewer.recorder = None
        st = viewer.state
        frame, st.alpha, st.beta, st.playing, st.motion_on = self.old  # back to what was on screen
        if self.source == SOURCES[0]:
            viewer.set_frame(frame)
        else:
            st.frame = frame
            viewer.request_mesh()
        st.info(f"wrote {len(self.paths)} frames to {self.out}")


def record(viewer, source: str, frames: int, out_dir, gif: bool = True, mp4: bool = False, include_ui: bool = False):
    try:
        viewer.recorder = Recorder(viewer, source, frames, out_dir, gif, mp4, include_ui)
    except ValueError as e:
        viewer.state.error(f"cannot record: {e}")
    return viewer.recorder


def draw(viewer) -> None:
    st = viewer.state
    _, st.export_dir = psim.InputText("output folder", st.export_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(st.export_dir)
    psim.TextDisabled("mesh on screen (metres)")
    if psim.Button("Save .ply"):
        save_mesh(viewer, out / f"mesh-{stamp}.ply")
    psim.SameLine()
    if psim.Button("Save .obj"):
        save_mesh(viewer, out / f"mesh-{stamp}.obj")
    psim.Separator()
    _, st.export_ui = psim.Checkbox("include the UI", st.export_ui)
    if psim.Button("Screenshot"):
        screenshot(viewer, out / f"screenshot-{stamp}.png", st.export_ui)
    psim.Separator()
    psim.TextDisabled("camera (JSON)")
    _, st.export_camera = psim.InputText("camera file", st.export_camera)
    if psim.Button("Save camera"):
        camera(viewer, "save", st.export_camera)
    psim.SameLine()
    if psim.Button("Load camera"):
        camera(viewer, "load", st.export_camera)
    psim.Separator()
    psim.TextDisabled("video (1280x720, the 3D view only)")
    suffix = ".mp4" if has_ffmpeg() else ".gif"
    count, fps = viewer.timeline()
    if count:
        if psim.Button(f"Timeline {suffix} ({count} frames, {fps:.0f} fps)"):
            path = out / f"timeline-{stamp}{suffix}"
            viewer.defer(lambda: export_video(viewer, "timeline", path))
    else:
        psim.TextDisabled("timeline video: open a fit or play a motion")
    if psim.Button(f"Turntable {suffix}"):
        path, n = out / f"turntable-{stamp}{suffix}", st.export_turntable
        viewer.defer(lambda: export_video(viewer, "turntable", path, n))
    psim.SameLine()
    psim.PushItemWidth(120)
    _, st.export_turntable = psim.SliderInt("views", st.export_turntable, 12, 360)
    psim.PopItemWidth()
    psim.Separator()
    psim.TextDisabled("frame sequence")
    i = SOURCES.index(st.export_source) if st.export_source in SOURCES else 0
    changed, i = psim.Combo("source", i, list(SOURCES))
    st.export_source = SOURCES[i]
    if st.export_source != SOURCES[0]:
        _, st.export_frames = psim.SliderInt("frames", st.export_frames, 2, 120)
    _, st.export_gif = psim.Checkbox("GIF", st.export_gif)
    psim.SameLine()
    if has_ffmpeg():
        _, st.export_mp4 = psim.Checkbox("MP4", st.export_mp4)
    else:
        psim.TextDisabled("MP4: pip install imageio-ffmpeg")
    rec = viewer.recorder
    if rec is None:
        if psim.Button("Record"):
            record(
                viewer,
                st.export_source,
                st.export_frames,
                out / f"frames-{stamp}",
                st.export_gif,
                st.export_mp4,
                st.export_ui,
            )
    else:
        psim.ProgressBar(rec.k / rec.frames, (-1, 0), f"frame {rec.k}/{rec.frames}")
