import numpy as np
import torch

from npm_core import space


def test_axes_anny_to_canonical():
    # Anny: z up, subject faces -y, left at +x  ->  canonical: y up, faces +z, left at +x
    pts = np.array([[0, 0, 1.0], [0, -1.0, 0], [1.0, 0, 0]])
    out = space.anny_to_metres(pts, np.zeros(3))
    np.testing.assert_allclose(out, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    assert np.isclose(np.linalg.det(space.ANNY_TO_CANONICAL), 1.0)  # a rotation, not a mirror


def test_units_and_origin():
    p = torch.tensor([[0.1, 0.2, 1.1]], dtype=torch.float64)
    out = space.anny_to_model(p, torch.tensor([0.1, 0.2, 0.1], dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor([[0.0, 0.4, 0.0]], dtype=torch.float64))
    np.testing.assert_allclose(space.model_to_metres(space.metres_to_model(np.array([1.7]))), [1.7])
    assert space.outside_cube(np.array([[0.0, 0.51, 0.0], [0.1, 0.2, -0.49]])).tolist() == [True, False]


def test_yaw_and_tilt_of_fitted_rotations():
    def about(axis, deg):
        c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
        return {"y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]), "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]])}[
            axis
        ]

    r = np.stack([np.eye(3), about("y", 90), about("y", -135), about("x", 20), about("y", 180) @ about("x", 10)])
    yaw, tilt = space.yaw_tilt_deg(r)
    np.testing.assert_allclose(yaw, [0, 90, -135, 0, 180], atol=1e-9)
    np.testing.assert_allclose(tilt, [0, 0, 0, 20, 10], atol=1e-9)
