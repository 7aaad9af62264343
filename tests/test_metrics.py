import numpy as np
import pytest
import trimesh

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


def test_epe_zero_for_perfect_tracking_and_measures_drift():
    v, f = _sphere(0.2, sub=3)
    T = 6
    gt = np.stack([v + [0.01 * t, 0, 0] for t in range(T)])
    floor = metrics.epe(gt, f, gt, f, n_points=5000, keyframe_every=50)
    assert floor < 6e-3  # perfect tracking: only the sample-matching distance at the keyframe
    # a prediction that lags behind by half the motion
    pred = np.stack([v + [0.005 * t, 0, 0] for t in range(T)])
    err = metrics.epe(gt, f, pred, f, n_points=5000, keyframe_every=50)
    expected = np.mean([0.005 * t for t in range(1, T)])
    assert err == pytest.approx(expected, abs=floor)
    assert metrics.epe(gt, f, pred, f, n_points=5000, keyframe_every=2) < err  # re-matching resets drift
    with pytest.raises(ValueError, match="6 gt frames vs 5"):
        metrics.epe(gt, f, pred[:5], f)
