"""Fitting a depth sequence end to end on a tiny trained model (seconds, not minutes)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from npm_core import cli, fit, layout, space
from npm_core.data import depth
from npm_core.fit import problem, schedules
from npm_core.models import checkpoint


@pytest.fixture(scope="module")
def sequence(tiny_model, tmp_path_factory):
    _, ds = tiny_model
    ph = ds.identities[ds.split("train")[0]]["phenotypes"]
    cam = depth.Camera.looking_at_subject(64, 48, distance=2.8)
    return depth.synthesize_sequence(tmp_path_factory.mktemp("seq") / "walk", ph, "walk", cam, frames=3)


def _small(cfg):
    cfg.canonical_samples, cfg.init_resolution, cfg.final_resolution = 5000, 32, 32
    cfg.points_per_frame, cfg.icp_points, cfg.init_candidates = 500, 200, 4
    cfg.first_frame_iters, cfg.frame_iters, cfg.refine_steps, cfg.yaw_trial_iters = 15, 5, 3, 5
    return cfg


def test_partial_sdf_signs_and_mask(sequence):
    psdf = fit.PartialSDF(sequence, 0, truncation=0.01)
    pts = psdf.points[:50]
    cam_pos = torch.as_tensor(space.metres_to_model(sequence.camera.pose[:3, 3]), dtype=torch.float32)
    ray = (pts - cam_pos) / (pts - cam_pos).norm(dim=-1, keepdim=True)
    sdf, obs, off = psdf(torch.cat([pts - 0.005 * ray, pts + 0.005 * ray, pts + 0.1 * ray]), clamp=0.1)
    assert (sdf[:50] > 0).all() and (sdf[50:100] < 0).all()  # in front: outside; just behind: inside
    assert obs[:100].all() and not obs[100:].any()  # far behind the surface: unobserved
    assert sdf[:100].abs().max() <= 0.0051 and not off.any()
    far, obs_far, off_far = psdf(torch.tensor([[0.45, 0.45, 0.45]]), clamp=0.1)  # background pixel: observed, outside
    assert far.item() > 0 and obs_far.item() and off_far.item()  # off the silhouette: an upper bound only


def test_reconstruction_loss_reference_and_silhouette_bound():
    sdf_in = torch.tensor([0.02, -0.01, 0.05, 0.05, 0.05])
    sdf_c = torch.tensor([-0.01, 0.01, 0.03, 0.08, -0.02], requires_grad=True)
    mask = torch.tensor([True, True, True, True, False])
    # reference: |d| * (1 + 0.5 sign(c) sign(c - in)) = 0.03*1.5, 0.02*1.5, 0.02*0.5, 0.03*1.5; masked point out
    ref = fit.reconstruction_loss(sdf_in, sdf_c, mask)
    assert ref.item() == pytest.approx((0.045 + 0.03 + 0.01 + 0.045) / 4)
    off = torch.tensor([True, False, True, True, True])
    # off the silhouette sdf_in is an upper bound: 0 <= c <= in is free (third point); the rest keep the term
    bound = fit.reconstruction_loss(sdf_in, sdf_c, mask, off)
    assert bound.item() == pytest.approx((0.045 + 0.03 + 0.045) / 4)
    bound.backward()
    assert sdf_c.grad[0] < 0 and sdf_c.grad[2] == 0 and sdf_c.grad[3] > 0  # violations pulled back to the data


def _problem(tiny_model, seq):
    """The tiny model, a small fast config, its problem on seq, and the initial codes."""
    m = checkpoint.load_model(tiny_model[0])
    cfg = _small(fit.fast_config())
    prob = fit.Problem(m, seq, cfg)
    s0, p0, tau0, _ = problem.initial_codes(prob)
    prob.canonical_samples(s0, 32, 5000)
    return m, cfg, prob, s0, p0, tau0


def test_first_frame_ranks_every_training_shape(tiny_model, sequence):
    """The first frame's shape is, of the mean and every training code, the one with the lowest
    L_r at the chosen pose (on the ranking's points), computed in batches."""
    m = checkpoint.load_model(tiny_model[0])

    cfg = _small(fit.fast_config(use_rotation=False))
    prob = fit.Problem(m, sequence, cfg)
    s0, p0, tau0, _ = problem.initial_codes(prob)
    x = problem.ranking_points(torch.Generator().manual_seed(cfg.seed))
    codes = torch.cat([m.shape_codes.mean(0, keepdim=True), m.shape_codes])
    each = [prob.frame_terms(c[None], p0[None], tau0[None], [0], x, False)[0].item() for c in codes]
    assert len(codes) > 5 and torch.equal(s0, codes[int(np.argmin(each))])


def test_fit_writes_complete_result_and_improves_energy(tiny_model, sequence, tmp_path):
    m, cfg, prob, s0, p0, tau0 = _problem(tiny_model, sequence)
    cfg.refine_steps = 0  # tracking lowers the reference L_r; the refinement minimises its own energy (next test)
    before = prob.per_frame_losses(s0, p0.expand(3, -1), tau0.expand(3, 3))["reconstruction"].mean()
    res = fit.fit(m, sequence, cfg)
    assert res.pose_codes.shape == (3, 8) and res.translation.shape == (3, 3)
    assert res.losses["reconstruction"].mean() < before
    compact = fit.read_result(
        fit.write_result(tmp_path / "c", res, m, cfg, "tiny", sequence.path, compact=True)
    ).meshes()[1]
    out = fit.write_result(tmp_path / "fit", res, m, cfg, "tiny", sequence.path)
    assert not (tmp_path / ".fit.partial").exists()
    r = fit.read_result(out)
    canon, posed, faces = r.meshes()
    assert posed.shape == (3, len(canon), 3) and r.meta["frames"] == 3 and not r.meta["interrupted"]
    assert np.abs(compact - posed).max() < 2e-3
    # posed meshes are in metres near the subject (within 30 cm of the gt centroid)
    assert np.abs(posed.mean(1) - sequence.gt_vertices.mean(1)).max() < 0.3


def test_refinement_lowers_its_energy(tiny_model, sequence):
    m, cfg, prob, s0, p0, tau0 = _problem(tiny_model, sequence)
    s = s0[None].clone().requires_grad_(True)
    P, tau = p0.expand(3, -1).clone().requires_grad_(True), tau0.expand(3, 3).clone().requires_grad_(True)
    rot = torch.zeros(3, 3, requires_grad=True)
    x = prob.draw(4000)  # fixed points: the energy before and after on the same sample

    def energy():
        with torch.no_grad():
            return schedules.refine_energy(prob, fit.Codes(s, P, tau, rot), x).item()

    before = energy()
    assert schedules.refine(prob, fit.Codes(s, P, tau, rot), 40, fit.Reporter(total=40)) == 40
    assert energy() < 0.9 * before


def test_one_frame_sequence_fits_with_both_schedules(tiny_model, sequence, tmp_path):
    m = checkpoint.load_model(tiny_model[0])
    one = depth.DepthSequence(sequence.camera, sequence.depths[:1], None, None, sequence.path)
    for cfg in (_small(fit.fast_config()), _small(fit.paper_config(iterations=4, keep_iteration=4))):
        res = fit.fit(m, one, cfg)
        assert res.pose_codes.shape == (1, 8) and np.isfinite(res.losses["reconstruction"]).all()
        r = fit.read_result(fit.write_result(tmp_path / cfg.schedule, res, m, cfg, "tiny", sequence.path))
        assert r.meta["frames"] == 1 and r.meshes()[1].shape[0] == 1


def test_cli_fit_and_eval(tiny_model, sequence, tmp_path, monkeypatch, capsys):
    ck, _ = tiny_model
    monkeypatch.setitem(
        fit.SCHEDULES, "fast", fit.Schedule(lambda **kw: _small(fit.FitConfig(**kw)), fit.SCHEDULES["fast"].run)
    )
    assert (
        cli.main(
            [
                "fit",
                "--checkpoint",
                str(ck),
                "--sequence",
                str(sequence.path),
                "--out",
                str(tmp_path / "f"),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "eval",
                "--fit",
                str(tmp_path / "f"),
                "--sequence",
                str(sequence.path),
                "--iou-points",
                "20000",
                "--json",
                str(tmp_path / "m.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "mean" in out and "EPE" in out and (tmp_path / "m.json").exists()
    assert [e["frame"] for e in layout.read_fit_progress(tmp_path / "f")[0]] == [0, 1, 2]  # tracked frames, logged
    # `fit --frames 2` fits the first two frames; eval scores them against the sequence's first two
    args = ["--checkpoint", str(ck), "--sequence", str(sequence.path), "--out", str(tmp_path / "f2"), "--frames", "2"]
    assert cli.main(["fit", *args, "--threads", "1"]) == 0
    eval_args = ["--sequence", str(sequence.path), "--iou-points", "20000", "--json", str(tmp_path / "m2.json")]
    assert cli.main(["eval", "--fit", str(tmp_path / "f2"), *eval_args]) == 0
    assert "the fit has 2 frames: scored against the first 2 of 3" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "m2.json").read_text())["iou"]) == 2
    # a run into an existing result that fails keeps that result's log; one that completes replaces it
    earlier = layout.fit_progress_path(tmp_path / "f2").read_text()
    monkeypatch.setattr(fit, "write_result", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    assert cli.main(["fit", *args, "--frames", "1", "--threads", "1"]) == 2
    assert layout.fit_progress_path(tmp_path / "f2").read_text() == earlier  # not the failed run's frame 0
    assert not layout.fit_kept_progress_path(tmp_path / "f2").exists()
    monkeypatch.undo()
    monkeypatch.setitem(
        fit.SCHEDULES, "fast", fit.Schedule(lambda **kw: _small(fit.FitConfig(**kw)), fit.SCHEDULES["fast"].run)
    )
    assert cli.main(["fit", *args, "--frames", "1", "--threads", "1"]) == 0
    assert [e["frame"] for e in layout.read_fit_progress(tmp_path / "f2")[0]] == [0]
    assert not layout.fit_kept_progress_path(tmp_path / "f2").exists()


def test_each_tracked_frame_is_reported_and_logged(tiny_model, sequence, tmp_path):
    """on_frame sees every frame's codes as tracking leaves them (without refinement: the result's
    codes), and frame_log writes them as JSON lines with the documented fields."""
    m = checkpoint.load_model(tiny_model[0])
    cfg = _small(fit.fast_config())
    cfg.refine_steps = 0
    seen, log = [], fit.frame_log(tmp_path / "f")
    res = fit.fit(m, sequence, cfg, on_frame=lambda u: (seen.append(u), log(u)))
    assert [u.frame for u in seen] == [0, 1, 2] and all(u.frames == 3 for u in seen)
    assert torch.equal(torch.stack([u.pose_code for u in seen]), res.pose_codes)
    assert torch.equal(torch.stack([u.translation for u in seen]), res.translation)
    assert all(torch.equal(u.shape_code, res.shape_code) for u in seen)
    lines, _ = layout.read_fit_progress(tmp_path / "f")
    assert [set(e) for e in lines] == [set(layout.FIT_PROGRESS_FIELDS)] * 3
    assert np.allclose([e["pose_code"] for e in lines], res.pose_codes.numpy())
    assert [e["energy"] for e in lines] == [u.energy for u in seen]


def test_fit_bad_input(tiny_model, sequence, tmp_path):
    ck, _ = tiny_model
    m = checkpoint.load_model(ck)
    cfg = _small(fit.fast_config())
    blank = depth.DepthSequence(sequence.camera, np.zeros_like(sequence.depths), None, None, tmp_path)
    with pytest.raises(fit.FitError, match="no frame has a valid depth pixel"):
        fit.fit(m, blank, cfg)
    one_blank = depth.DepthSequence(sequence.camera, sequence.depths.copy(), None, None, tmp_path)
    one_blank.depths[1] = 0
    with pytest.warns(UserWarning, match=r"frames \[1\] have no valid pixel"):
        fit.Problem(m, one_blank, cfg)
    far_cam = depth.Camera(**{**sequence.camera.__dict__})
    pose = np.array(far_cam.world_from_camera)
    pose[:3, 3] += [3.0, 0, 0]
    far_cam.world_from_camera = pose.tolist()
    far = depth.DepthSequence(far_cam, sequence.depths, None, None, tmp_path)
    with pytest.raises(
        fit.FitError, match=r"frame 0: the observed subject .* \(segmentation, which centres the subject, is off\)"
    ):
        fit.fit(m, far, _small(fit.fast_config(use_segmentation=False)))
    shape_only = tmp_path / "shape_only"
    shape_only.mkdir()
    for name in ["config.yaml", "shape.pt"]:
        (shape_only / name).write_bytes((ck / name).read_bytes())
    assert (
        cli.main(
            ["fit", "--checkpoint", str(shape_only), "--sequence", str(sequence.path), "--out", str(tmp_path / "x")]
        )
        == 2
    )
    assert cli.main(["fit", "--checkpoint", str(ck), "--sequence", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    if not torch.cuda.is_available():
        assert (
            cli.main(
                [
                    "fit",
                    "--checkpoint",
                    str(ck),
                    "--sequence",
                    str(sequence.path),
                    "--out",
                    str(tmp_path / "x"),
                    "--device",
                    "cuda",
                ]
            )
            == 2
        )
    assert not (tmp_path / "x").exists()


def test_sequence_ceiling_follows_the_true_bodies(tiny_model, sequence):
    """Codes fitted to the 3D truth: the decoded bodies land where the true ones are, wherever
    the sequence places them in the world (the translation is fitted, not assumed)."""
    from npm_core import bodies, evaluate

    ck, ds = tiny_model
    m = checkpoint.load_model(ck)
    canonical = bodies.body_meshes(ds.identities[ds.split("train")[0]]["phenotypes"])[0]
    posed, faces = evaluate.sequence_ceiling(
        m, canonical, sequence.gt_faces, sequence.gt_vertices, resolution=32, points=300
    )
    assert posed.shape[0] == 3 and posed.shape[2] == 3 and faces.max() < posed.shape[1]

    def centre(v):
        return (v.min(1) + v.max(1)) / 2

    assert np.abs(centre(posed) - centre(sequence.gt_vertices)).max() < 0.1  # tiny model: coarse bodies
    shift = np.array([0.3, 0.0, -0.2], np.float32)  # metres, beyond anything the pose codes model
    moved, _ = evaluate.sequence_ceiling(
        m, canonical, sequence.gt_faces, sequence.gt_vertices + shift, resolution=32, points=300
    )
    assert np.abs(moved - posed - shift).max() < 0.01


def test_warm_start_bank_finds_an_earlier_frame_in_the_same_pose(tiny_model, sequence):
    """Frame 3 repeats frame 0's depth; frames 1-2 hold codes far off: the bank starts frame 3
    from frame 0's code, the plain warm start from frame 2's."""
    seq = depth.DepthSequence(sequence.camera, sequence.depths[[0, 1, 2, 0]], None, None, sequence.path)
    _, cfg, prob, s0, p0, tau0 = _problem(tiny_model, seq)
    far = p0 + 3.0 * torch.randn(2, p0.shape[0], generator=torch.Generator().manual_seed(0))
    P, tau = torch.stack([p0, far[0], far[1], p0]), tau0.expand(4, 3)
    x = prob.draw(cfg.points_per_frame)
    sdf_c = prob.shape_sdf(s0[None], x[None]).clamp(-cfg.clamp, cfg.clamp)[0]
    with torch.no_grad():
        banked, _, _ = schedules.warm_start(prob, fit.Codes(s0[None], P, tau, torch.zeros(4, 3)), 3, x, sdf_c)
        prob.cfg = fit.FitConfig(track_bank=False, extrapolate=False)
        plain, _, _ = schedules.warm_start(prob, fit.Codes(s0[None], P, tau, torch.zeros(4, 3)), 3, x, sdf_c)
    assert torch.equal(banked[0], p0) and torch.equal(plain[0], far[1])


def test_candidate_energies_match_the_per_frame_reconstruction_loss(tiny_model, sequence):
    """The warm start ranks all candidates with one partial-SDF query; each must get exactly the
    L_r that frame_terms gives it alone, or the bank would pick by the wrong numbers - with
    rotations too (candidates turned about the vertical and tilted)."""
    _, cfg, prob, s0, p0, tau0 = _problem(tiny_model, sequence)
    gen = torch.Generator().manual_seed(1)
    P = p0 + 0.5 * torch.randn(5, p0.shape[0], generator=gen)
    tau = tau0 + 0.02 * torch.randn(5, 3, generator=gen)
    r = torch.randn(5, 3, generator=gen) * torch.tensor([2.0, 0.3, 0.3])
    x = prob.draw(300)
    with torch.no_grad():
        sdf_c = prob.shape_sdf(s0[None], x[None]).clamp(-cfg.clamp, cfg.clamp)[0]
        energies = []
        for rr in (None, r):
            batched = prob.candidate_energies(s0[None], P, tau, 1, x, sdf_c, rr)
            one_by_one = torch.cat(
                [
                    prob.frame_terms(
                        s0[None],
                        P[k : k + 1],
                        tau[k : k + 1],
                        [1],
                        x,
                        False,
                        sdf_c,
                        r=None if rr is None else rr[k : k + 1],
                    )[0]
                    for k in range(5)
                ]
            )
            assert batched.shape == (5,) and len(set(batched.tolist())) == 5
            torch.testing.assert_close(batched, one_by_one)
            energies.append(batched)
    assert (energies[1] - energies[0]).abs().min() > 0  # the rotations were applied


def test_fit_with_a_known_shape_fits_poses_only(tiny_model, sequence):
    """A known shape code is kept exactly while poses and translations move; a code of the wrong
    size is refused with the sizes named."""
    ck, _ = tiny_model
    m = checkpoint.load_model(ck)
    cfg = _small(fit.fast_config())
    known = m.shape_codes[1].clone()
    res = fit.fit(m, sequence, cfg, shape_code=known)
    assert torch.equal(res.shape_code, known)
    assert (res.pose_codes - res.pose_codes[0]).abs().sum() > 0 and res.translation.shape == (3, 3)
    free = fit.fit(m, sequence, cfg)
    assert not torch.equal(free.shape_code, known)
    with pytest.raises(fit.FitError, match=r"shape_code has shape \(3,\)"):
        fit.fit(m, sequence, cfg, shape_code=torch.zeros(3))


def test_pose_prior_keeps_tracked_codes_near_the_training_codes(tiny_model, sequence):
    """The pose prior acts in tracking and refinement: a strong one keeps the fitted codes closer
    to the training distribution's centre than the reference weight does."""
    m = checkpoint.load_model(tiny_model[0])
    rms = {}
    for w in (1e-4, 10.0):
        cfg = _small(fit.fast_config(w_pose_prior=w))
        rms[w] = fit.fit(m, sequence, cfg).pose_codes.square().mean().sqrt().item()
    assert rms[10.0] < 0.8 * rms[1e-4]


def test_cli_schedule_choices_are_the_registry():
    import argparse

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    schedule = next(a for a in sub.choices["fit"]._actions if a.dest == "schedule")
    assert sorted(schedule.choices) == sorted(fit.SCHEDULES) == ["fast", "paper"]
    assert fit.SCHEDULES["paper"].config().schedule == "paper" and fit.SCHEDULES["fast"].config().schedule == "fast"


def test_tall_person_keeps_his_height_with_the_fast_shape_prior(tmp_path):
    """The fast schedule's weaker shape prior (0.01, not the reference's 0.1) lets the first frame's
    shape code leave the mean: with the shipped body-v2, a 2.0 m tail identity seen from the front
    is fitted taller, and with a larger code, than with 0.1."""
    from npm_core import bodies, config
    from npm_core.mesh.extract import extract

    m = checkpoint.load_model(Path(__file__).parents[1] / "checkpoints" / "body-v2")
    ident = bodies.find_identity("tail-height-hi-m", config.from_dict(config.DataConfig, m.sections["data"]).identities)
    cam = depth.Camera.looking_at_subject(160, 120, distance=3.0)
    seq = depth.synthesize_sequence(tmp_path / "seq", ident.phenotypes, "walk", cam, frames=1)
    truth = np.ptp(bodies.body_meshes(ident.phenotypes)[0][:, 1]) / m.domain.model_per_metre  # canonical height, m
    error, norm = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for w in (0.1, fit.fast_config().w_shape_prior):
            cfg = fit.fast_config(w_shape_prior=w, use_rotation=False, use_icp=False, init_shape_candidates=64)
            cfg.canonical_samples, cfg.init_resolution, cfg.points_per_frame, cfg.init_candidates = 20_000, 64, 500, 16
            s = fit.fit(m, seq, cfg).shape_code
            height = np.ptp(extract(m.shape_decoder.sdf_fn(s), 64).vertices.numpy()[:, 1]) / m.domain.model_per_metre
            error[w], norm[w] = abs(height - truth), s.norm().item()
    finally:
        torch.set_num_threads(threads)
    assert fit.fast_config().w_shape_prior == 0.01
    assert error[0.01] < 0.85 * error[0.1], (error, truth)
    assert norm[0.01] > 1.5 * norm[0.1], norm


def test_fast_tracking_keeps_up_with_a_jumping_jack(tmp_path):
    """The fast schedule's 60 steps per frame (not 30): with the shipped body-v2, the arms of a
    jumping jack seen from the front, on their way up in frames 3-5, are tracked closer to the truth
    than with 30 steps, and the whole clip's end-point error falls."""
    from npm_core import bodies, config, metrics

    m = checkpoint.load_model(Path(__file__).parents[1] / "checkpoints" / "body-v2")
    ident = bodies.find_identity("tail-age-hi-m", config.from_dict(config.DataConfig, m.sections["data"]).identities)
    cam = depth.Camera.looking_at_subject(160, 120, distance=3.0)
    seq = depth.synthesize_sequence(tmp_path / "seq", ident.phenotypes, "jumping_jack", cam, frames=6)
    iou, epe = {}, {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for iters in (30, fit.fast_config().frame_iters):
            cfg = fit.fast_config(frame_iters=iters, use_rotation=False, refine_steps=0, init_shape_candidates=64)
            cfg.canonical_samples, cfg.init_resolution, cfg.points_per_frame, cfg.init_candidates = 20_000, 64, 1000, 16
            out = fit.write_result(tmp_path / f"fit{iters}", fit.fit(m, seq, cfg), m, cfg, "test", tmp_path / "seq", 64)
            _, posed, faces = fit.read_result(out).meshes()
            r = metrics.evaluate_sequence(
                posed, faces, seq.gt_vertices, seq.gt_faces, 100_000, model_per_metre=m.domain.model_per_metre
            )
            iou[iters], epe[iters] = float(np.mean(r["iou"][3:6])), r["mean"]["epe_cm"]
    finally:
        torch.set_num_threads(threads)
    assert fit.fast_config().frame_iters == 60
    assert iou[60] > iou[30] + 0.01, iou
    assert epe[60] < 0.92 * epe[30], epe
