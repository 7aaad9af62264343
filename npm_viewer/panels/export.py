"""Export panel: the mesh on screen as .ply/.obj (metres, trimesh), a screenshot, and a frame
sequence (PNGs, plus GIF via Pillow and MP4 via imageio-ffmpeg when installed) of a sequence
replay or a shape/pose interpolation.

Frames are captured after a rendered frame (App.tick), never inside the ImGui callback.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polyscope.imgui as psim

TITLE = "Export"
SOURCES = ("sequence replay", "shape interpolation A->B", "pose interpolation A->B")
_ui = {"dir": "exports", "source": 0, "frames": 30, "gif": True, "mp4": True, "ui": False}


def has_ffmpeg() -> bool:
    try:
        import imageio_ffmpeg  # noqa: F401

        return True
    except ImportError:
        return False


def current_mesh(app):
    """(vertices [V,3] metres, faces) of what the 3D view shows, or None."""
    st = app.state
    name = "fit" if st.view == "sequence" else "body"
    return app.current.get(name)


def save_mesh(app, path) -> Path | None:
    import trimesh

    mesh = current_mesh(app)
    if mesh is None:
        app.state.error("no mesh on screen to export")
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    trimesh.Trimesh(np.asarray(mesh[0]), np.asarray(mesh[1]), process=False).export(path)
    app.state.info(f"wrote {path}")
    return path


def screenshot(app, path, include_ui: bool = True) -> None:
    app.pending_shots.append((str(path), include_ui))
    app.state.info(f"screenshot -> {path}")


class Recorder:
    """Steps through `frames` states of `source`, one capture per state once the view is ready."""

    def __init__(self, app, source: str, frames: int, out_dir, gif: bool = True, mp4: bool = False,
                 include_ui: bool = False):
        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}")
        if source == SOURCES[0] and (app.seq is None or not app.seq.done):
            raise ValueError("open and load a fit result first (Sequence panel)")
        if source != SOURCES[0] and app.model is None:
            raise ValueError("open a checkpoint first")
        if source == SOURCES[2] and app.model.pose_codes is None:
            raise ValueError("this checkpoint has no pose stage")
        self.source, self.out = source, Path(out_dir)
        self.frames = app.seq.frames if source == SOURCES[0] else max(2, int(frames))
        self.gif, self.mp4, self.ui = gif, mp4 and has_ffmpeg(), include_ui
        self.k, self.paths, self.done = 0, [], False
        self.out.mkdir(parents=True, exist_ok=True)
        self.old = (app.state.view, app.state.frame, app.state.alpha, app.state.beta, app.state.playing)
        app.state.playing = False
        self.view = {SOURCES[0]: "sequence", SOURCES[1]: "shape", SOURCES[2]: "pose"}[source]
        if app.state.view != self.view:
            app.select_panel(self.view)
            app.select_panel("export")
        self.apply(app)

    def apply(self, app) -> None:
        from . import sequence

        t = self.k / max(1, self.frames - 1)
        if self.source == SOURCES[0]:
            sequence.set_frame(app, self.k)
        elif self.source == SOURCES[1]:
            app.state.alpha = t
            app.request_view()
        else:
            app.state.beta = t
            app.request_view()

    def after_frame(self, app) -> None:
        """Called by App.tick after rendering: capture when the requested mesh is on screen."""
        from ..app import save_png

        if self.done or app.worker.busy():
            return
        path = self.out / f"frame_{self.k:05d}.png"
        save_png(path, app.screenshot(self.ui))
        self.paths.append(path)
        self.k += 1
        if self.k < self.frames:
            self.apply(app)
            return
        self.finish(app)

    def finish(self, app) -> None:
        from PIL import Image

        self.done = True
        fps = app.seq.fps if self.source == SOURCES[0] else 15.0
        imgs = [Image.open(p).convert("RGB") for p in self.paths]
        if self.gif and imgs:
            imgs[0].save(self.out / "animation.gif", save_all=True, append_images=imgs[1:],
                         duration=int(1000 / fps), loop=0)
        if self.mp4 and imgs:
            import imageio_ffmpeg

            w, h = imgs[0].size
            w2, h2 = w - w % 2, h - h % 2
            writer = imageio_ffmpeg.write_frames(str(self.out / "animation.mp4"), (w2, h2), fps=fps,
                                                 macro_block_size=1, quality=7)
            writer.send(None)
            for im in imgs:
                writer.send(np.ascontiguousarray(np.asarray(im)[:h2, :w2]))
            writer.close()
        app.recorder = None
        st = app.state
        _, st.frame, st.alpha, st.beta, st.playing = self.old  # back to what was on screen
        if self.source != SOURCES[0]:
            app.request_view()
        st.info(f"wrote {len(self.paths)} frames to {self.out}")


def record(app, source: str, frames: int, out_dir, gif: bool = True, mp4: bool = False, include_ui: bool = False):
    try:
        app.recorder = Recorder(app, source, frames, out_dir, gif, mp4, include_ui)
    except ValueError as e:
        app.state.error(f"cannot record: {e}")
    return app.recorder


def draw(app) -> None:
    _, _ui["dir"] = psim.InputText("output folder", _ui["dir"])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = Path(_ui["dir"])
    psim.TextDisabled("mesh on screen (metres)")
    if psim.Button("Save .ply"):
        save_mesh(app, out / f"mesh-{stamp}.ply")
    psim.SameLine()
    if psim.Button("Save .obj"):
        save_mesh(app, out / f"mesh-{stamp}.obj")
    psim.Separator()
    _, _ui["ui"] = psim.Checkbox("include the UI", _ui["ui"])
    if psim.Button("Screenshot"):
        screenshot(app, out / f"screenshot-{stamp}.png", _ui["ui"])
    psim.Separator()
    psim.TextDisabled("frame sequence")
    _, _ui["source"] = psim.Combo("source", _ui["source"], list(SOURCES))
    if _ui["source"] != 0:
        _, _ui["frames"] = psim.SliderInt("frames", _ui["frames"], 2, 120)
    _, _ui["gif"] = psim.Checkbox("GIF", _ui["gif"])
    psim.SameLine()
    if has_ffmpeg():
        _, _ui["mp4"] = psim.Checkbox("MP4", _ui["mp4"])
    else:
        psim.TextDisabled("MP4: pip install imageio-ffmpeg")
    rec = app.recorder
    if rec is None:
        if psim.Button("Record"):
            record(app, SOURCES[_ui["source"]], _ui["frames"], out / f"frames-{stamp}", _ui["gif"], _ui["mp4"], _ui["ui"])
    else:
        psim.ProgressBar(rec.k / rec.frames, (-1, 0), f"frame {rec.k}/{rec.frames}")
