"""Headless video rendering: frame i of a scene -> Polyscope screenshot -> MP4 / GIF (npm_viewer.video).

Needs Polyscope initialised with a rendering backend (openGL3_egl without a display, or a
window); the caller registers the structures and passes update_scene(i), which moves them (and
the camera, if it wants) to frame i. ps.screenshot_to_buffer renders the scene itself, so no
UI frame runs between captures. The window size and the camera are restored afterwards.

Must not: build the scene (the caller's update_scene does), or run the app's UI loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import video


def render_video(
    path,
    update_scene: Callable[[int], None],
    n_frames: int,
    fps: float = 30.0,
    size: tuple[int, int] = (1280, 720),
    progress: Callable[[int, int], None] | None = None,
    include_ui: bool = False,
) -> Path:
    """Render frames 0 .. n_frames - 1 at `size` (width, height) pixels and write them to `path` (.mp4 or .gif).

    update_scene(i) puts frame i on the scene; progress(done, n_frames) follows each frame.
    Returns `path`; on any error no file is left and the previous one at `path` is kept.
    """
    import polyscope as ps

    if not ps.is_initialized():
        raise RuntimeError("render_video: initialise Polyscope first (ps.init('openGL3_egl') without a display)")
    if ps.get_render_engine_backend_name() == "openGL_mock":
        raise RuntimeError("render_video: the openGL_mock backend draws nothing; use openGL3_egl or a window")
    w, h = (int(x) for x in size)
    if w < 2 or h < 2:
        raise ValueError(f"render_video: size must be at least 2x2 pixels, got {w}x{h}")
    old_size, old_view = ps.get_window_size(), ps.get_view_as_json()
    ps.set_window_size(w, h)

    def frame(i: int) -> np.ndarray:
        update_scene(i)
        return ps.screenshot_to_buffer(transparent_bg=False, include_UI=include_ui)

    try:
        return video.write_video(path, frame, n_frames, fps, progress)
    finally:
        ps.set_window_size(*old_size)
        ps.set_view_from_json(old_view)


def turntable_camera(
    center, radius: float, elevation_deg: float, n: int, start_deg: float = 0.0
) -> Callable[[int], None]:
    """update_scene for render_video: frame i looks at `center` from video.turntable's view i (y up)."""
    import polyscope as ps

    eyes = video.turntable(center, radius, elevation_deg, n, start_deg)
    target = np.asarray(center, np.float64)

    def update(i: int) -> None:
        ps.look_at(eyes[i], target)

    return update


def render_turntable(
    path,
    center,
    radius: float,
    elevation_deg: float = 15.0,
    n_frames: int = 120,
    fps: float = 30.0,
    size: tuple[int, int] = (1280, 720),
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """One turn around `center` (world, y up; starts in front of the body, +z) in n_frames frames."""
    return render_video(path, turntable_camera(center, radius, elevation_deg, n_frames), n_frames, fps, size, progress)
