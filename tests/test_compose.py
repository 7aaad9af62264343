"""Code composition (npm_core/compose.py): blends, prior samples, semantic edits, transfer grid."""

import numpy as np
import pytest

from npm_core import compose
from npm_core.semantics import PCA, LinearMap, Semantics


def test_mix_and_prior():
    a, b = np.zeros(4), np.ones(4)
    assert np.allclose(compose.mix(a, b, 0.25), 0.25) and compose.mix(a, b, 0).dtype == np.float32
    codes = np.random.default_rng(0).normal(2.0, 0.5, (500, 3))
    s = np.stack([compose.prior_sample(codes, np.random.default_rng(i)) for i in range(300)])
    assert np.allclose(s.mean(0), 2.0, atol=0.1) and np.allclose(s.std(0), 0.5, atol=0.1)
    one = compose.prior_sample(np.ones((1, 3)), np.random.default_rng(0))
    assert np.abs(one - 1).max() < 0.05  # one code: a tight std of 0.01


def _semantics():
    """Phenotypes [6] -> shape codes [3] by a known linear map; angles [J] -> pose codes [2]."""
    from npm_core import bodies

    J = len(bodies.JOINT_NAMES)
    ps = LinearMap(np.zeros(6), np.ones(6), np.eye(6, 3), np.zeros(3))
    sp = LinearMap(np.zeros(3), np.ones(3), np.eye(3, 6), np.zeros(6))
    ap = LinearMap(np.zeros(J), np.ones(J), np.eye(J, 2) * 0.1, np.zeros(2))
    shape_pca = PCA(np.zeros(3), np.array([[0.0, 0.0, 1.0]]), np.array([2.0]), np.array([1.0]))
    pose_pca = PCA(np.zeros(2), np.array([[1.0, 0.0]]), np.array([0.5]), np.array([1.0]))
    return Semantics(
        ps,
        sp,
        shape_pca,
        np.array([np.zeros(6), np.ones(6)]),
        ap,
        pose_pca,
        np.array([np.full(J, -90.0), np.full(J, 90.0)]),
    )


def test_semantic_edits_move_along_the_maps():
    sem = _semantics()
    code = np.array([0.1, 0.2, 0.3], np.float32)
    ph = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    delta = np.array([0.2, 0, 0, 0, 0, 0])
    # the linear map puts phenotype 0 on code dim 0: +0.2; one PCA sd along dim 2 adds 2.0
    np.testing.assert_allclose(compose.edit_shape(code, sem, ph, delta, [1.0]), [0.3, 0.2, 2.3], atol=1e-6)
    np.testing.assert_allclose(compose.edit_shape(code, sem, ph, np.zeros(6), [0.0]), code)
    np.testing.assert_allclose(compose.edit_shape(code, None, ph, delta, [1.0]), code)
    angles = np.zeros(sem.angle_range.shape[1])
    d = np.zeros_like(angles)
    d[1] = 30.0  # joint 1 -> pose dim 1 at 0.1 per degree
    np.testing.assert_allclose(compose.edit_pose(np.zeros(2), sem, angles, d, [2.0]), [1.0, 3.0], atol=1e-6)
    no_pose = Semantics(sem.phenotype_to_shape, sem.shape_to_phenotype, sem.shape_pca, sem.phenotype_range)
    np.testing.assert_allclose(compose.edit_pose(np.ones(2), no_pose, angles, d, [2.0]), np.ones(2))
    # a domain without joint angles: the pose PCA moves the code, the angle deltas are ignored
    pca_only = Semantics(
        sem.phenotype_to_shape, sem.shape_to_phenotype, sem.shape_pca, sem.phenotype_range, None, sem.pose_pca
    )
    np.testing.assert_allclose(compose.edit_pose(np.zeros(2), pca_only, None, d, [2.0]), [1.0, 0.0], atol=1e-6)


def test_transfer_grid_is_row_major_shapes_by_poses():
    S, P = np.arange(12.0).reshape(4, 3), -np.arange(10.0).reshape(5, 2)
    g = compose.transfer_grid(S, P, [0, 3], [1, 2, 4])
    assert len(g) == 6
    assert [(s[0], p[0]) for s, p in g] == [(0, -2), (0, -4), (0, -8), (9, -2), (9, -4), (9, -8)]
    assert all(p is None for _, p in compose.transfer_grid(S, None, [1], [0, 0]))
    with pytest.raises(IndexError):
        compose.transfer_grid(S, P, [4], [0])
