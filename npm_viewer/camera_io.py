"""Save and load the 3D view's camera as a JSON file.

The file is Polyscope's own view JSON (ps.get_view_as_json: viewMat, fov, nearClip, farClip,
projectionMode, upDir, frontDir, ...), indented, so it is the same text Polyscope copies to the
clipboard. Loading validates every field it relies on first (a bad file raises CameraFileError
naming the file, the field and what was expected, and leaves the view as it was), keeps the
current window size, and also applies what Polyscope's JSON reader skips (fov, upDir).
Writes are atomic (temp file + rename).

Must not: change anything but the view camera, or draw.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from npm_core.config import write_text_atomic

PROJECTIONS = ("Perspective", "Orthographic")
UP_DIRS = {
    "X Up": "x_up",
    "Y Up": "y_up",
    "Z Up": "z_up",
    "NegX Up": "neg_x_up",
    "NegY Up": "neg_y_up",
    "NegZ Up": "neg_z_up",
}
WINDOW_FIELDS = ("windowWidth", "windowHeight")


class CameraFileError(ValueError):
    """A camera file that is missing, not JSON, or has a field Polyscope could not use."""


def validate_view(data, where) -> dict:
    """The view dict `data` if every field the viewer relies on is usable, else CameraFileError naming `where`."""

    def bad(field, expected):
        got = data.get(field, "nothing") if isinstance(data, dict) else None
        return CameraFileError(f"{where}: field '{field}': expected {expected}, got {json.dumps(got)[:120]}")

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    if not isinstance(data, dict):
        raise CameraFileError(f"{where}: expected a JSON object (Polyscope's view JSON), got {type(data).__name__}")
    m = data.get("viewMat")
    if not (isinstance(m, list) and len(m) == 16 and all(number(x) for x in m)):
        raise bad("viewMat", "16 finite numbers (a 4x4 world-to-camera matrix, row major)")
    m = np.array(m, np.float64).reshape(4, 4)
    if not (np.allclose(m[3], [0, 0, 0, 1], atol=1e-6) and np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-3)):
        raise bad("viewMat", "a rigid transform (orthonormal rotation, last row 0 0 0 1)")
    if not (number(data.get("fov")) and 0 < data["fov"] < 180):
        raise bad("fov", "a vertical field of view in degrees, 0 < fov < 180")
    if not (number(data.get("nearClip")) and data["nearClip"] > 0):
        raise bad("nearClip", "a number > 0")
    if not (number(data.get("farClip")) and data["farClip"] > data["nearClip"]):
        raise bad("farClip", f"a number > nearClip ({data['nearClip']})")
    if data.get("projectionMode") not in PROJECTIONS:
        raise bad("projectionMode", " or ".join(PROJECTIONS))
    if data.get("upDir") not in UP_DIRS:
        raise bad("upDir", "one of " + ", ".join(UP_DIRS))
    return data


def save_camera(path) -> Path:
    """Write the current view camera to `path` (JSON); returns the path."""
    import polyscope as ps

    path = Path(path)
    data = validate_view(json.loads(ps.get_view_as_json()), f"{path}: the current view (draw a frame first)")
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return path


def load_camera(path) -> dict:
    """Set the view camera from `path` (written by save_camera or copied from Polyscope); returns its fields."""
    import polyscope as ps

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CameraFileError(f"{path}: camera file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CameraFileError(f"{path}: cannot read the camera file ({e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CameraFileError(f"{path}: not JSON ({e})") from None
    data = validate_view(data, path)
    view = {k: v for k, v in data.items() if k not in WINDOW_FIELDS}  # the window keeps its size
    current_up = json.loads(ps.get_view_as_json()).get("upDir")
    try:
        if data["upDir"] != current_up:
            ps.set_up_dir(UP_DIRS[data["upDir"]])
        ps.set_view_from_json(json.dumps(view))
        ps.set_vertical_fov_degrees(float(data["fov"]))
    except (RuntimeError, ValueError) as e:
        raise CameraFileError(f"{path}: Polyscope refused the view ({e})") from None
    return data
