import numpy as np
import pytest

from npm_core import bodies, cli, layout, semantics
from npm_core.models import checkpoint


def test_linear_map_recovers_a_linear_relation():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (200, 6))
    a = rng.normal(size=(6, 16))
    y = x @ a + 0.3 + rng.normal(scale=1e-3, size=(200, 16))
    m = semantics.LinearMap.fit(x, y, ridge=1e-6)
    x_new = rng.uniform(0, 1, (10, 6))
    np.testing.assert_allclose(m(x_new), x_new @ a + 0.3, atol=5e-3)
    assert m.r2(x, y).min() > 0.999


def test_slider_move_is_the_map_difference_and_constant_inputs_are_inert():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (100, 3))
    x[:, 2] = 0.7  # a joint never moved in training
    y = x[:, :2] @ rng.normal(size=(2, 5))
    m = semantics.LinearMap.fit(x, y)
    delta = np.array([0.2, -0.1, 0.0])
    # linear: the same move from any base
    np.testing.assert_allclose(m(x[:1] + delta) - m(x[:1]), m(x[5:6] + delta) - m(x[5:6]), atol=1e-12)
    assert np.abs(m(x[:1] + [0.0, 0.0, 30.0]) - m(x[:1])).max() < 1e-9  # no blow-up along the constant column


def test_mlp_map_beats_linear_on_a_nonlinear_relation_and_roundtrips(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.uniform(-90, 90, (1500, 4))  # "joint angles" in degrees
    y = np.concatenate([np.sin(np.radians(x)), np.cos(np.radians(x[:, :2]))], 1) @ rng.normal(size=(6, 8))
    xt, yt = x[1200:], y[1200:]
    lin = semantics.LinearMap.fit(x[:1200], y[:1200])
    mlp = semantics.MLPMap.fit(x[:1200], y[:1200], hidden=64, steps=1500)
    assert mlp.r2(xt, yt).mean() > 0.99 and lin.r2(xt, yt).mean() < 0.95
    sem = semantics.Semantics(
        lin, lin, semantics.PCA.fit(y), np.zeros((2, 6)), mlp, semantics.PCA.fit(y), np.zeros((2, 4))
    )
    semantics.save(sem, tmp_path / "s.npz")
    back = semantics.load(tmp_path / "s.npz")
    assert isinstance(back.angles_to_pose, semantics.MLPMap) and isinstance(
        back.phenotype_to_shape, semantics.LinearMap
    )
    np.testing.assert_allclose(back.angles_to_pose(xt[:5]), mlp(xt[:5]))


def test_pca_offset_moves_codes_by_standard_deviations():
    rng = np.random.default_rng(3)
    codes = rng.normal(size=(400, 4)) * [2.0, 0.5, 0.2, 0.1]
    p = semantics.PCA.fit(codes, k=2)
    off = p.offset([1.5, 0.0])
    assert np.linalg.norm(off) == pytest.approx(1.5 * p.std[0])
    assert abs(off @ p.directions[1]) < 1e-9


def test_pca_orders_directions_by_variance():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(500, 3)) * [3.0, 1.0, 0.1]
    p = semantics.PCA.fit(codes, k=3)
    assert np.abs(p.directions[0]) @ [1, 0, 0] > 0.99
    assert p.explained[0] > 0.85 and np.all(np.diff(p.explained) < 0)
    assert p.std[0] == pytest.approx(3.0, rel=0.1)


def test_semantics_of_a_checkpoint_roundtrip(tiny_model, capsys):
    ck, _ = tiny_model
    assert cli.main(["semantics", "--checkpoint", str(ck), "--no-refine"]) == 0
    assert "R^2" in capsys.readouterr().out
    sem = semantics.load(layout.checkpoint_semantics_path(ck))
    m = checkpoint.load_model(ck)
    ph = np.array([[l["phenotypes"][k] for k in bodies.PHENOTYPES] for l in m.meta["shape"]["codes"]])
    codes = sem.shape_code(ph)
    assert codes.shape == tuple(m.shape_codes.shape)
    lo, hi = sem.phenotype_range[:, bodies.PHENOTYPES.index("weight")]
    assert sem.out_of_range({k: v for k, v in zip(bodies.PHENOTYPES, ph[0])}) == []
    assert sem.out_of_range({**dict(zip(bodies.PHENOTYPES, ph[0])), "weight": lo / 2}) == ["weight"]
    assert sem.pose_code({"knee_bend_l": 30}).shape == (1, m.pose_codes.shape[1])
    assert sem.shape_pca.directions.shape[1] == m.shape_codes.shape[1]


def test_refine_through_the_decoders_lowers_held_out_loss_and_keeps_a_map_it_cannot_improve(tiny_model):
    import copy

    import torch

    ck, _ = tiny_model
    torch.set_num_threads(1)
    m = checkpoint.load_model(ck)
    sem = semantics.compute(m, shape_map="mlp", pose_map="mlp")
    cfg = semantics.RefineConfig(
        bodies=20,
        sdf_points=1024,
        poses=40,
        pose_points=256,
        shape_steps=60,
        pose_steps=60,
        shape_batch=8,
        pose_batch=8,
        points_per_step=256,
        shape_lr=2e-3,
        pose_lr=2e-3,
        validation=0.25,
    )
    frozen = copy.deepcopy(sem)
    semantics.refine(frozen, m, semantics.RefineConfig(**{**cfg.__dict__, "shape_lr": 0.0, "pose_lr": 0.0}))
    np.testing.assert_array_equal(frozen.phenotype_to_shape.w2, sem.phenotype_to_shape.w2)  # lr 0: nothing kept
    before_w = sem.angles_to_pose.w2.copy()
    result = semantics.refine(sem, m, cfg)
    for name in ("shape", "pose"):
        before, after = result[name]
        assert after < before, (name, before, after)
    assert not np.allclose(sem.angles_to_pose.w2, before_w)
    assert all(p.requires_grad is False for p in m.shape_decoder.parameters())  # decoders stay frozen
