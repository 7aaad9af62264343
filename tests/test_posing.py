"""Anchor posing (npm_core/mesh/posing.py): weights, exactness where it must be exact, and the
size of the approximation on a smooth field."""

import numpy as np

from npm_core.mesh import posing


def _sphere(n, seed=0):
    v = np.random.default_rng(seed).normal(size=(n, 3))
    return (0.3 * v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_weights_sum_to_one_and_anchors_are_a_fixed_subset():
    v = _sphere(5000)
    a = posing.anchors(v, n=500, k=4)
    assert a.index.shape == (500,) and a.neighbours.shape == (5000, 4) and a.weights.shape == (5000, 4)
    np.testing.assert_allclose(a.weights.sum(1), 1.0, atol=1e-5)
    assert np.all(np.diff(a.index) > 0)  # sorted, no repeats
    np.testing.assert_array_equal(posing.anchors(v, n=500, k=4).index, a.index)  # same seed, same anchors
    # a vertex that is an anchor has itself as nearest anchor, with almost all the weight
    first = a.neighbours[a.index, 0]
    np.testing.assert_array_equal(first, np.arange(500))
    own = a.weights[a.index, 0]
    assert own.min() > 0.9 and np.median(own) > 0.98


def test_translation_is_spread_exactly_and_an_anchor_keeps_its_value():
    v = _sphere(5000)
    a = posing.anchors(v, n=500, k=4)
    shift = np.array([0.01, -0.02, 0.03], np.float32)
    posed = posing.pose_with_anchors(v, a, lambda x: np.tile(shift, (len(x), 1)))
    np.testing.assert_allclose(posed - v, np.tile(shift, (5000, 1)), atol=1e-7)
    dx = np.random.default_rng(1).random((500, 3)).astype(np.float32)
    err = np.abs(a.spread(dx)[a.index] - dx)  # an anchor (nearly) keeps its own value
    assert err.max() < 0.05 and err.mean() < 0.005


def test_all_vertices_anchors_is_exact_and_smooth_field_is_close():
    v = _sphere(20000)

    def twist(x):  # rotate about y by 0.5 rad per unit height: a smooth pose-like field
        ang = 0.5 * x[:, 1]
        c, s = np.cos(ang), np.sin(ang)
        return np.stack([c * x[:, 0] + s * x[:, 2], x[:, 1], -s * x[:, 0] + c * x[:, 2]], 1) - x

    exact = v + twist(v)
    small = v[:1000]
    all_anchors = posing.anchors(small, n=5000)
    assert len(all_anchors.index) == 1000
    np.testing.assert_allclose(posing.pose_with_anchors(small, all_anchors, twist), exact[:1000], atol=1e-4)
    mag = np.linalg.norm(twist(v), axis=1)
    errs = {}
    for n in (256, 2048):
        errs[n] = np.linalg.norm(posing.pose_with_anchors(v, posing.anchors(v, n=n), twist) - exact, axis=1)
    # 2048 anchors: a mean error of under 5% of the mean displacement; fewer anchors, larger errors
    assert errs[2048].mean() < 0.05 * mag.mean() and errs[2048].max() < 0.25 * mag.max()
    assert errs[256].mean() > 2 * errs[2048].mean()
