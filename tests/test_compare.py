"""Per-vertex error against the truth (npm_core/compare.py)."""

import numpy as np

from npm_core import compare


def test_vertex_error_is_the_distance_to_the_nearest_true_vertex():
    truth = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], np.float32)
    pred = np.array([[0.1, 0, 0], [1, 0.3, 0], [0, 2, -0.5], [0.5, 0, 0]], np.float32)
    np.testing.assert_allclose(compare.vertex_error(pred, truth), [0.1, 0.3, 0.5, 0.5], atol=1e-6)


def test_vertex_errors_per_frame_and_frames_past_the_truth():
    rng = np.random.default_rng(0)
    pred = rng.random((4, 50, 3)).astype(np.float32)
    truth = pred[:3] + np.array([0.0, 0.0, 0.01], np.float32) * np.arange(1, 4)[:, None, None]
    e = compare.vertex_errors(pred, truth)
    assert e.shape == (4, 50) and e.dtype == np.float32
    # each predicted vertex's nearest true vertex is its own copy, shifted 1, 2, 3 cm
    np.testing.assert_allclose(e[:3].mean(1), [0.01, 0.02, 0.03], atol=1e-6)
    assert not e[3].any()  # no truth for frame 3


def test_colour_range_ignores_the_top_outliers():
    e = np.concatenate([np.linspace(0, 0.01, 985), np.full(15, 5.0)]).astype(np.float32)
    assert compare.colour_range(e) < 0.011  # the top 1.5% do not set the range
    assert compare.colour_range(None) == 0.05 and compare.colour_range(np.zeros(0)) == 0.05
