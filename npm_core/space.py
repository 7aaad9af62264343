"""The canonical frame: the one place that knows units and axes.

Canonical frame: right-handed, y up, subject faces +z, origin at the pelvis of the rest
pose. Model units = metres x 0.4 (NPMs), so bodies fit the cube [-0.5, 0.5]^3, which every
grid covers. Anny's own frame is z up, subject facing -y, left side at +x, in metres.
Files users read or write (meshes, depth, cameras) are in metres with the canonical axes.
"""

from __future__ import annotations

import sys

import numpy as np

METRES_TO_MODEL = 0.4
MODEL_TO_METRES = 1.0 / METRES_TO_MODEL
CUBE_BOUND = 0.5  # grids cover [-CUBE_BOUND, CUBE_BOUND]^3, model units

# canonical = ANNY_TO_CANONICAL @ anny  (x stays, z up -> y up, -y forward -> +z forward)
ANNY_TO_CANONICAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _rotate(points, matrix: np.ndarray):
    torch = sys.modules.get("torch")  # a tensor implies torch is loaded; the app's UI process never loads it
    if torch is not None and isinstance(points, torch.Tensor):
        return points @ torch.as_tensor(matrix.T, dtype=points.dtype, device=points.device)
    return np.asarray(points) @ matrix.T.astype(np.asarray(points).dtype, copy=False)


def anny_to_metres(points, origin):
    """Anny-frame points [..., 3] (metres) -> canonical axes, metres, pelvis `origin` (Anny frame) at 0."""
    return _rotate(points - origin, ANNY_TO_CANONICAL)


def metres_to_model(points):
    """Canonical axes: metres -> model units."""
    return points * METRES_TO_MODEL


def model_to_metres(points):
    """Canonical axes: model units -> metres."""
    return points * MODEL_TO_METRES


def anny_to_model(points, origin):
    """Anny-frame points [..., 3] (metres) -> canonical model units."""
    return metres_to_model(anny_to_metres(points, origin))


def outside_cube(points, margin: float = 0.0):
    """Boolean mask of model-unit points [..., 3] outside [-0.5+margin, 0.5-margin]^3."""
    lim = CUBE_BOUND - margin
    return (abs(points) > lim).any(-1)


def yaw_tilt_deg(rotation) -> tuple[np.ndarray, np.ndarray]:
    """Body orientations [T, 3, 3] (world from canonical, as a fit stores them) as degrees [T]:
    yaw, where the body faces about the vertical (0 = +z, towards a frontal camera; 90 = +x), and
    tilt, the angle between the body's up and the world's up."""
    rotation = np.asarray(rotation, np.float64)
    front, up = rotation[:, :, 2], rotation[:, :, 1]
    yaw = np.degrees(np.arctan2(front[:, 0], front[:, 2]))
    tilt = np.degrees(np.arccos(np.clip(up[:, 1], -1.0, 1.0)))
    return yaw, tilt
