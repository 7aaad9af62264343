import math

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from npm_core import metrics


def _sphere(r, centre=(0, 0, 0), sub=4):
    m = trimesh.creation.icosphere(subdivisions=sub, radius=r)
    return np.asarray(m.vertices + centre), np.asarray(m.faces)


def test_iou_of_concentric_spheres_matches_volume_ratio():
    a, fa = _sphere(0.3)
    b, fb = _sphere(0.2)
    got = metrics.iou(a, fa, b, fb, n_points=400_000)
    vol = trimesh.Trimesh(b, fb).volume / trimesh.Trimesh(a, fa).volume
    assert got == pytest.approx(vol, abs=0.01)
    assert metrics.iou(a, fa, a, fa, n_points=100_000) == 1.0


def test_chamfer_of_offset_spheres():
    a, fa = _sphere(0.2)
    b, fb = _sphere(0.2 + 0.01)
    # every point of one sphere is ~0.01 from the other: squared distance ~1e-4
    assert metrics.chamfer_l2(a, fa, b, fb, n_points=20_000) == pytest.approx(1e-4, rel=0.1)
    assert metrics.chamfer_l2(a, fa, a, fa, n_points=20_000) < 1e-5


@pytest.mark.parametrize(
    "frames, expected",
    [
        (1, [0]),
        (2, [0]),
        (49, [0]),
        (50, [0]),
        (99, [0]),
        (100, [0, 50]),
        (120, [0, 60]),
        (128, [0, 64]),
        (149, [0, 74]),
        (150, [0, 50, 100]),
        (349, [0, 58, 116, 174, 232, 290]),
    ],
)
def test_reference_keyframes(frames, expected):
    assert metrics.reference_keyframes(frames) == expected


def test_rotating_sphere_static_prediction_matches_analytic_epe():
    """gt: a sphere of radius r turning 1 degree per frame about y; prediction: the sphere standing still.
    A gt sample matched at keyframe k sits at distance rho = r sin(theta) from the axis; d = |t - k|
    frames later it is the chord 2 rho sin(d / 2 degrees) away from its (static) match, and over the
    area-uniform samples E[sin theta] = pi / 4, so the error of a pair is (pi r / 2) sin(d pi / 360)."""
    r, T = 0.3, 120
    v, f = _sphere(r, sub=5)
    gt = np.stack([v @ Rotation.from_euler("y", t, degrees=True).as_matrix().T for t in range(T)])
    pred = np.repeat(v[None], T, 0)

    def pair_error(d):
        return math.pi * r / 2 * math.sin(d * math.pi / 360)

    # reference: keyframes 0 and 60, each against all 119 other frames
    reference = np.mean([pair_error(abs(t - k)) for k in (0, 60) for t in range(T) if t != k])
    windowed = np.mean([pair_error(t - k) for k in (0, 50, 100) for t in range(k + 1, min(k + 50, T))])
    assert reference == pytest.approx(0.17338, abs=1e-5) and windowed == pytest.approx(0.09144, abs=1e-5)
    assert metrics.epe(gt, f, pred, f, n_points=10_000) == pytest.approx(reference, rel=5e-3)
    assert metrics.epe(gt, f, pred, f, n_points=10_000, keyframes="windowed") == pytest.approx(windowed, rel=5e-3)


def test_epe_short_sequence_and_perfect_tracking():
    v, f = _sphere(0.2, sub=3)
    T = 6  # T < 50: one keyframe (frame 0), scored on frames 1..5
    gt = np.stack([v + [0.01 * t, 0, 0] for t in range(T)])
    floor = metrics.epe(gt, f, gt, f, n_points=5000)
    assert floor < 6e-3  # perfect tracking: only the sample-matching distance at the keyframe
    # a prediction that lags behind by half the motion
    pred = np.stack([v + [0.005 * t, 0, 0] for t in range(T)])
    err = metrics.epe(gt, f, pred, f, n_points=5000)
    assert err == pytest.approx(np.mean([0.005 * t for t in range(1, T)]), abs=floor)
    assert metrics.epe(gt, f, pred, f, n_points=5000, keyframes="windowed") == err  # same pairs when T < 50
    assert metrics.epe(gt, f, pred, f, n_points=5000, keyframes="windowed", every=2) < err  # re-matching resets drift
    with pytest.raises(ValueError, match="6 gt frames vs 5"):
        metrics.epe(gt, f, pred[:5], f)
    with pytest.raises(ValueError, match="'reference' or 'windowed'"):
        metrics.epe(gt, f, pred, f, keyframes="every50")


def test_epe_of_one_frame_is_nan():
    v, f = _sphere(0.2, sub=2)
    assert math.isnan(metrics.epe(v[None], f, v[None] + 0.1, f, n_points=1000))
    with pytest.raises(ValueError, match="frames >= 1"):
        metrics.epe(v[:0][None][:0], f, v[:0][None][:0], f)
