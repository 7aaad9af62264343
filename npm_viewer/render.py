"""Starting Polyscope, saving PNGs, and off-screen pictures of many bodies at once (contact sheets,
galleries for docs) framed and laid out as the app does (scene.framing, scene.grid_offsets).

Uses Polyscope on whatever backend is available: the EGL one renders headless.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .scene import framing, grid_offsets


def start_polyscope(backend: str | None = None) -> str:
    """Start Polyscope quietly (no prefs file, errors as exceptions); no display -> headless EGL."""
    import polyscope as ps

    ps.set_use_prefs_file(False)
    ps.set_allow_headless_backends(True)
    ps.set_errors_throw_exceptions(True)
    ps.set_display_message_popups(False)
    if backend is None and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        backend = "openGL3_egl"
    ps.init(backend) if backend else ps.init()
    return backend or "default"


def init_polyscope(backend: str | None = None) -> None:
    """Start Polyscope once per process, for off-screen pictures."""
    if getattr(init_polyscope, "_done", False):
        return
    start_polyscope(backend)
    init_polyscope._done = True


def render_grid(meshes, cols: int, path: str, spacing=(0.55, 1.0), size=(1600, 1000), colors=None) -> None:
    """Render meshes [(vertices [V,3], faces [F,3]), ...] in a grid, front view, to a PNG."""
    import polyscope as ps

    init_polyscope()
    ps.remove_all_structures()
    rows = int(np.ceil(len(meshes) / cols))
    offs = grid_offsets(rows, cols, spacing)
    for i, (v, f) in enumerate(meshes):
        m = ps.register_surface_mesh(f"m{i}", np.asarray(v) + offs[i], np.asarray(f), smooth_shade=True)
        m.set_color(tuple(colors[i]) if colors is not None else (0.85, 0.72, 0.6))
    ps.set_ground_plane_mode("none")
    ps.set_window_size(*size)
    ps.set_up_dir("y_up")
    ps.set_front_dir("z_front")
    ps.set_view_projection_mode("perspective")
    lo = np.min([np.asarray(v).min(0) + o for (v, _), o in zip(meshes, offs)], 0)
    hi = np.max([np.asarray(v).max(0) + o for (v, _), o in zip(meshes, offs)], 0)
    eye, target = framing(lo, hi, size, margin=1.08, lift=0.0)
    ps.look_at(eye, target)
    ps.screenshot(path, transparent_bg=False)
    ps.remove_all_structures()


def save_png(path, rgba: np.ndarray) -> None:
    """Write the RGB of an RGBA [H, W, 4] image; the folder is made if missing."""
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgba)[..., :3]).save(path)
