"""The app driven through its panel functions (the Viewer interface): opening things,
shape/pose/transfer requests, sequence replay, training from the menu (fake subprocess), export.
Rendering tests (EGL) take screenshots and check they are not blank and change with the state."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from npm_core import bodies, layout
from npm_viewer import selection
from npm_viewer.loading import read_eval
from npm_viewer.panels import export, pose, shape, train, transfer


def body(app):
    return app.scene.get("body").vertices(0).copy()


def test_bad_checkpoint_shows_error_and_keeps_running(app, tmp_path):
    layout.checkpoint_config_path(tmp_path).write_text("model: {shape: {width: 3}}\n")
    assert not app.open_checkpoint(str(tmp_path))
    assert not app.open_checkpoint(str(tmp_path / "missing"))
    assert not app.open_fit(str(tmp_path))
    errors = [t for lvl, t in app.state.messages if lvl == "error"]
    assert len(errors) == 3 and "missing" in errors[1] and "not a fit-result" in errors[2]
    app.tick()  # the UI draws the errors and goes on
    assert app.model is not None and app.model.path.name == "ckpt"  # the good one stays open


def test_checkpoint_metadata_without_decoders(app, tiny_ckpt, monkeypatch):
    from npm_core.models import decoders
    from npm_viewer.loading import ModelInfo

    def refuse(*args, **kwargs):
        raise AssertionError("a decoder was built in the UI process")

    monkeypatch.setattr(decoders.ShapeDecoder, "__init__", refuse)
    monkeypatch.setattr(decoders.PoseDecoder, "__init__", refuse)
    m = ModelInfo.read(tiny_ckpt)  # the decoders live in the mesh worker only
    assert m.shape_codes.shape == (4, 8) and m.pose_codes.shape == (8, 4)
    assert m.motions == {"arm_raise": [0, 1, 2, 3, 4], "wave": [5, 6, 7]}
    assert m.shape_labels[2] == "2 t2  m 40y  w.50 h.88" and m.pose_labels[6] == "6 wave #1"
    assert m.angles.shape == (8, len(bodies.JOINT_NAMES)) and m.phenotypes.shape == (4, 6)
    np.testing.assert_array_equal(m.shape_codes, app.model.shape_codes)


def test_shape_panel_preview_then_full(app):
    v0 = body(app)
    assert app.worker.last_stats["main"]["resolution"] == 128
    app.state.alpha = 0.7
    app.request_mesh(preview=True)
    app.settle()
    assert app.worker.last_stats["main"]["resolution"] == app.state.preview_resolution
    app.request_mesh(preview=False)
    app.settle()
    assert app.worker.last_stats["main"]["resolution"] == 128
    assert body(app).shape != v0.shape or not np.allclose(body(app), v0)
    shape.sample_prior(app)
    first = list(app.state.sampled)
    shape.sample_prior(app)
    app.settle()
    assert app.state.sampled != first and app.state.prior_draws == 2 and app.state.alpha == 0.0


def test_pose_panel_moves_vertices_in_place(app):
    app.select_panel("pose")
    app.settle()
    node, v0 = app.scene.get("body"), body(app)
    key, registered = node.key, node.registrations
    pose.set_poses(app, a=0, b=4, beta=1.0)
    app.settle()
    node = app.scene.get("body")
    assert node.key == key and node.registrations == registered  # same canonical mesh, moved in place
    assert app.worker.last_stats["main"].get("cached")
    assert body(app).shape == v0.shape and not np.allclose(body(app), v0)


def test_motion_plays_on_the_timeline_and_pause_keeps_the_frame(app):
    app.select_panel("pose")
    app.state.play_mode = "real-time"  # frames due while the worker poses the last one are skipped
    pose.play_motion(app, "arm_raise")
    assert app.timeline() == (5, app.state.motion_fps)
    for _ in range(3):
        app.play(1.0 / app.state.motion_fps + 1e-4)
    assert app.state.playing and app.state.frame == 3
    app.toggle_play()
    app.settle()
    st = app.state
    assert not st.playing and st.motion_on and st.frame == 3  # paused where it was, not back at A
    np.testing.assert_allclose(selection.pose_code(st, app.model), app.model.pose_codes[3])
    assert app.worker.last_stats["main"]["pose_mode"] == "exact"
    pose.show_motion_frame(app, 6)  # wraps on the 5-frame motion
    app.settle()
    np.testing.assert_allclose(selection.pose_code(st, app.model), app.model.pose_codes[1])
    pose.set_poses(app, a=2)
    assert not st.motion_on and app.timeline() == (0, 0.0)


def test_transfer_and_gallery(app):
    app.select_panel("transfer")
    transfer.set_transfer(app, shape=2, pose=4)
    app.settle()
    assert app.mesh_on_screen() is not None
    transfer.set_gallery(app, True, [0, 3], [0, 2, 4])
    app.settle()
    nodes = sorted(app.scene.group("gallery"), key=lambda n: n.name)
    assert len(nodes) == 6 and all(n.enabled for n in nodes) and not app.scene.get("body").enabled
    xs = [n.frames[0][:, 0].mean() for n in nodes]
    ys = [n.frames[0][:, 1].mean() for n in nodes]
    assert xs[1] > xs[0] + 0.5 and ys[3] < ys[0] - 0.5  # poses in columns, shapes in rows
    transfer.set_gallery(app, False)
    app.scene.sync()
    assert app.scene.get("body").enabled and not nodes[0].enabled


def test_sequence_load_and_replay(app, tiny_fit):
    assert app.open_fit(str(tiny_fit))
    app.select_panel("sequence")
    app.settle()
    rp = app.replay
    assert rp.done and rp.frames == 8 and rp.gt is not None and rp.points.shape[0] == 8
    err = rp.metrics["mean vertex error (mm)"]
    assert err.shape == (8,) and 3 < err.mean() < 15  # gt leans 0-2 cm away from the fit
    assert rp.errors[0].max() > 3 * rp.errors[0].min() + 1e-3
    fit = app.scene.get("fit")
    assert fit.count == 8 and fit.enabled and not app.scene.get("body").enabled
    app.state.show_gt = True
    app.set_frame(3)
    assert [app.scene.get(n).shown_frame for n in ("fit", "gt", "depth points")] == [3, 3, 3]
    np.testing.assert_array_equal(app.mesh_on_screen()[0], rp.posed[3])
    app.set_frame(6)
    assert not np.allclose(app.mesh_on_screen()[0], rp.posed[3])
    app.state.playing, frames = True, []
    for _ in range(4):  # replay is time-based: one frame period -> the next frame
        app.play(1.0 / rp.fps + 1e-4)
        frames.append(app.state.frame)
    assert frames == [7, 0, 1, 2]
    app.state.play_fps = 60  # a preset: half the recorded period per frame
    app.play(1.0 / 60 + 1e-4)
    assert app.state.frame == 3
    assert app.scene.get("fit").registrations == 1  # replay moved vertices, never re-registered
    app.state.show_points = False
    app.tick()
    assert not app.scene.get("depth points").enabled


def test_train_panel_fake_run_then_open(app, tiny_ckpt, tmp_path):
    import shutil

    from test_workers import FAKE

    out = tmp_path / "run"
    shutil.copytree(tiny_ckpt, out)
    cmd = [sys.executable, "-c", FAKE, str(layout.checkpoint_progress_path(out)), "4"]
    app.select_panel("train")
    train.start(app, str(out), "shape", None, command=cmd)
    t = time.time()
    while (app.train_run.running or app.train_run.fraction < 1) and time.time() - t < 30:
        app.tick()
        time.sleep(0.05)
    assert app.train_run.finished and len(app.train_run.events) == 4
    assert any("finished" in t for _, t in app.state.messages)
    assert app.open_checkpoint(str(out)) and app.model.path == out
    train.watch(app, str(tmp_path / "nothing"), "shape")  # a folder that does not exist: refused
    assert app.train_run.out_dir == out and "no folder" in app.state.messages[-1][1]


def test_export_mesh_and_recording(app, tiny_fit, tmp_path, rendering):
    import trimesh

    for ext in ("ply", "obj"):
        p = export.save_mesh(app, tmp_path / f"m.{ext}")
        m = trimesh.load(p, process=False)
        assert len(m.vertices) == len(app.mesh_on_screen()[0])
    app.open_fit(str(tiny_fit))
    app.settle()
    rec = export.record(app, export.SOURCES[0], 0, tmp_path / "frames", gif=True, mp4=False)
    t = time.time()
    while app.recorder is not None and time.time() - t < 60:
        app.tick()
    assert rec.done and len(list((tmp_path / "frames").glob("frame_*.png"))) == 8
    assert (tmp_path / "frames" / "animation.gif").stat().st_size > 0


def test_phenotype_slider_moves_the_code_along_the_map_and_marks_out_of_range(app):
    st, m = app.state, app.model
    sem = m.semantics
    assert sem is not None and len(st.phenotype_delta) == 6
    base_code, base_ph = selection.shape_code(st, m), selection.base_phenotypes(st, m)
    h = bodies.PHENOTYPES.index("height")
    np.testing.assert_allclose(base_ph, m.phenotypes[0])  # the identity's own labels
    v0 = body(app)
    shape.set_phenotype(app, "height", base_ph[h] - 0.2)
    app.settle()
    p2s = sem.phenotype_to_shape
    want = base_code + p2s(base_ph - np.eye(6)[h] * 0.2) - p2s(base_ph)
    np.testing.assert_allclose(selection.shape_code(st, m), want, atol=1e-5)
    v1 = body(app)
    assert np.ptp(v1[:, 1]) < np.ptp(v0[:, 1]) * 0.98  # asked for shorter: the decoded body is shorter
    assert sem.out_of_range({**dict(zip(bodies.PHENOTYPES, base_ph)), "height": base_ph[h] - 0.2}) == ["height"]
    st.shape_pca[0] = 1.0
    assert np.linalg.norm(selection.shape_code(st, m) - want) == pytest.approx(sem.shape_pca.std[0], rel=1e-4)
    st.zero("phenotype_delta", "shape_pca")
    np.testing.assert_allclose(selection.shape_code(st, m), base_code)
    app.settle()


def test_joint_slider_poses_the_body(app):
    st, m = app.state, app.model
    app.select_panel("pose")
    pose.set_poses(app, a=0, b=0, beta=0.0)
    app.settle()
    raise_l = bodies.JOINT_NAMES.index("shoulder_raise_l")
    assert selection.base_angles(st, m)[raise_l] == pytest.approx(0.0)
    v0 = body(app)
    pose.set_joint(app, "shoulder_raise_l", 50.0)
    app.settle()
    assert st.angle_delta[raise_l] == pytest.approx(50.0)
    a2p, zero = m.semantics.angles_to_pose, np.zeros(len(bodies.JOINT_NAMES))
    want = m.pose_codes[0] + a2p(zero + np.eye(len(zero))[raise_l] * 50) - a2p(zero)
    np.testing.assert_allclose(selection.pose_code(st, m), want, atol=1e-5)
    v1 = body(app)
    assert v1.shape == v0.shape and np.abs(v1 - v0).max() > 0.02  # arms moved (metres)
    st.zero("angle_delta", "pose_pca")
    np.testing.assert_allclose(selection.pose_code(st, m), m.pose_codes[0])


def test_an_imported_domain_is_shown_in_its_metres_with_its_sliders_and_no_joints(app, imported_ckpt):
    """The tiny checkpoint's decoders as a checkpoint of an imported domain (tiny.IMPORTED: 3 model
    units per metre, centre 0.1 m up, 3 attributes, no joint angles): the same model-unit mesh comes
    out at the domain's size, framed by the domain's box; sliders are its attributes; every panel draws."""
    from npm_viewer import scene as sc
    from npm_viewer import state as S

    anny_body = body(app)
    assert app.scene.view_bounds() is sc.BODY_BOX
    assert app.open_checkpoint(str(imported_ckpt))
    app.settle()
    st, m = app.state, app.model
    hand = body(app)  # shape code 0 of the same decoders: model / 0.4 before, model / 3 + centre now
    np.testing.assert_allclose(hand, anny_body * 0.4 / 3.0 + [0.0, 0.1, 0.0], atol=1e-5)
    np.testing.assert_allclose(
        app.scene.view_bounds(), [np.full(3, -0.5 / 3), np.full(3, 0.5 / 3)] + np.array([0, 0.1, 0])
    )

    assert [label for _, label, _, _ in shape.slider_items(m)] == ["arch", "length_mm", "width_mm"]
    shape.set_phenotype(app, "length_mm", m.phenotypes[0, 1] + 30.0)
    assert st.phenotype_delta == pytest.approx([0.0, 30.0, 0.0])
    app.settle()
    assert np.ptp(body(app)[:, 1]) > np.ptp(hand[:, 1])  # asked for a longer one: the decoded shape is taller

    app.select_panel("pose")
    assert pose.joint_items(m) == [] and st.angle_delta == []
    with pytest.raises(ValueError, match="no joint-angle sliders"):
        pose.set_joint(app, "knee_bend_l", 30.0)
    pose.set_poses(app, a=0, b=4, beta=0.5)
    app.settle()
    assert not [t for lvl, t in st.messages if lvl == "error"]
    for name in S.PANELS:  # every panel draws for a domain without joints or phenotypes
        app.select_panel(name)
        app.tick()

    app.select_panel("transfer")
    transfer.set_gallery(app, True, [0, 1], [0, 4])
    app.settle()
    (c0, _), (c1, _), (r0, _), (r1, _) = app.scene_labels()
    k = 0.4 / 3.0  # gallery spacing and labels at a hand's size
    # columns labelled just above the shapes (model y 0.42 in metres, the domain's centre 0.1 m up), rows beside them
    above = 0.1 + 0.42 / 3.0 - 0.1 * k
    np.testing.assert_allclose([c1[0] - c0[0], r0[1] - r1[1], c0[1] - r0[1]], [1.3 * k, 1.9 * k, above], atol=1e-6)


def _nonblank(img):
    rgb = img[..., :3].astype(int)
    return rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3)[::97], axis=0)) > 20


def test_screenshots_change_with_state(app, tiny_fit, rendering, tmp_path):
    shots = {}
    app.state.alpha = 0.0
    app.request_mesh()
    app.settle()
    shots["shape"] = app.capture(True)
    app.state.shape_a = 3
    app.request_mesh()
    app.settle()
    shots["shape3"] = app.capture(True)
    app.select_panel("pose")
    pose.set_poses(app, a=0, b=4, beta=1.0)
    app.settle()
    shots["pose"] = app.capture(True)
    app.open_fit(str(tiny_fit))
    app.select_panel("sequence")
    app.settle()
    shots["seq"] = app.capture(True)
    for name, img in shots.items():
        assert img.shape[2] == 4 and _nonblank(img), name
    keys = list(shots)
    for a, b in zip(keys, keys[1:]):
        assert np.abs(shots[a].astype(int) - shots[b].astype(int)).mean() > 0.5, (a, b)
    # the 3D part alone changes between shapes (not only the UI text)
    assert np.abs(shots["shape"][:, 500:].astype(int) - shots["shape3"][:, 500:].astype(int)).mean() > 0.2


def test_cli_screenshot(tiny_ckpt, tiny_fit, tmp_path, rendering):
    out = tmp_path / "cli.png"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "npm_viewer.app",
            "--screenshot",
            str(out),
            "--checkpoint",
            str(tiny_ckpt),
            "--fit",
            str(tiny_fit),
            "--panel",
            "sequence",
            "--frame",
            "3",
            "--size",
            "800x600",
            "--set",
            "show_gt=true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(out))
    assert img.shape[:2] == (600, 800) and _nonblank(img)


def test_app_starts_without_checkpoint_or_fit(backend, tmp_path):
    from npm_viewer.app import App

    class NoWorker:
        last_stats = {}

        def poll(self):
            return []

        def busy(self, channel=None):
            return False

        def close(self):
            pass

    a = App(str(tmp_path / "none"), str(tmp_path / "nofit"), worker=NoWorker())
    assert a.model is None and a.replay is None
    assert any("no checkpoint" in t for _, t in a.state.messages)


def test_folder_dialog_polled_and_drop(app, tiny_fit):
    opened = []
    app.browse("fit", "Open fit", ".", opened.append)
    if not app.dialogs:  # imgui_bundle missing: the path field still works
        pytest.skip(f"portable_file_dialogs unavailable: {app.state.messages[-1]}")
    t = time.time()
    while app.dialogs and time.time() - t < 10:  # no zenity/kdialog here: finishes at once, empty
        app.tick()
    assert not app.dialogs
    app.files_dropped([str(layout.fit_yaml_path(tiny_fit))])
    assert app.replay is not None and app.state.panel == "sequence"


def test_defaults_find_the_shipped_checkpoint_from_any_directory(tmp_path, monkeypatch):
    from npm_viewer import app as A

    monkeypatch.chdir(tmp_path)
    args = A.parse_args([])
    assert Path(args.checkpoint) == A.REPO_ROOT / "checkpoints" / "body-v2"
    assert layout.is_checkpoint(args.checkpoint) and layout.is_fit(args.fit)


def test_shipped_example_opens_its_sequence_from_any_directory(tmp_path, monkeypatch):
    from npm_viewer import app as A
    from npm_viewer.loading import FitReplay

    monkeypatch.chdir(tmp_path)
    rp = FitReplay(A.parse_args([]).fit)
    rp.load_step(budget_s=1e9)
    assert rp.done and not rp.warning and rp.points is not None and rp.gt is not None


def test_eval_metrics_next_to_a_fit_are_plotted(tmp_path):
    import json

    path = layout.fit_metrics_path(tmp_path)
    path.write_text(json.dumps({"iou": [0.8, 0.9, 0.85], "chamfer_l2": [1e-5, 2e-5, 3e-5], "epe": 0.01}))
    got = read_eval(path, 3)
    assert set(got) == {"IoU", "Chamfer-L2"} and got["IoU"][1] == 0.9
    assert read_eval(path, 4) == {}  # other frame count: not this fit's
    assert read_eval(tmp_path / "missing.json", 3) == {}
