"""Issue-19 behaviour of the app: keyboard shortcuts driving it, every-frame playback, the disk
mesh cache (a hit shows a body without extracting; a miss sends a coarse body first)."""

import numpy as np

from npm_core import space
from npm_core.mesh.cache import MeshCache, key_for
from npm_viewer import workers
from npm_viewer.panels import pose


def test_shortcuts_drive_the_sequence(app, tiny_fit):
    assert app.open_fit(str(tiny_fit))
    app.select_panel("sequence")
    app.settle()
    st = app.state
    app.handle_keys(["Space"])
    assert st.playing
    app.handle_keys(["Space"])
    assert not st.playing and st.frame == 0
    app.handle_keys(["RightArrow", "RightArrow"])
    assert st.frame == 2
    app.handle_keys(["LeftArrow"])
    assert st.frame == 1
    app.handle_keys(["End"])
    assert st.frame == 7
    app.handle_keys(["RightArrow"])  # stops at the last frame, no wrap
    assert st.frame == 7
    app.handle_keys(["Home"])
    assert st.frame == 0
    app.handle_keys(["5", "Enter"])  # typed frame number + Enter
    assert st.frame == 5 and app.keys.entry == ""
    app.handle_keys(["4", "2"])
    assert app.keys.entry == "42" and st.frame == 5
    app.tick()  # the entry is drawn in the status line
    app.handle_keys(["Enter"])
    assert st.frame == 7  # clamped to the clip
    app.handle_keys(["Space", "RightArrow"])  # the arrow pauses
    assert not st.playing
    app.handle_keys(["H"])
    assert app.keys.help_visible
    app.tick()  # draws the help overlay
    app.handle_keys(["Escape"])
    assert not app.keys.help_visible
    app.handle_keys(["Escape"])  # nothing left to cancel: closes popups on the next frame
    app.tick()


def test_every_frame_playback_visits_each_frame(app, tiny_fit):
    assert app.open_fit(str(tiny_fit))
    app.select_panel("sequence")
    app.settle()
    st = app.state
    st.play_mode, st.play_fps = "every frame", 10
    app.set_frame(0)
    st.playing, seen = True, []
    for _ in range(10):  # ticks 3x slower than the clip: every frame still comes, one per tick
        app.play(0.3)
        seen.append(st.frame)
    assert seen == [1, 2, 3, 4, 5, 6, 7, 0, 1, 2]
    st.play_mode = "real-time"
    app.set_frame(0)
    seen = []
    for _ in range(3):  # real time skips: 0.3 s at 10 fps = 3 frames per tick
        app.play(0.3)
        seen.append(st.frame)
    assert seen == [3, 6, 1]
    app.toggle_play()
    app.play(1.0)
    assert not st.playing and st.frame == 1  # pause keeps the frame


def test_every_frame_motion_poses_each_frame_exactly(app):
    app.select_panel("pose")
    st = app.state
    st.play_mode, st.play_fps = "every frame", 30
    pose.play_motion(app, "arm_raise")
    for r in app.worker.wait(30):  # frame 0 posed first
        app.apply_result(r)
    seen = []
    for _ in range(6):
        app.play(0.05)
        for r in app.worker.wait(30):  # the worker's exact pose of this frame arrives before the next
            app.apply_result(r)  # (no UI tick: its real-time dt would move the clock too)
        seen.append(st.frame)
        assert app.worker.last_stats["main"]["pose_mode"] == "exact"
    assert seen == [1, 2, 3, 4, 0, 1]
    np.testing.assert_allclose(app.worker.last_stats["main"]["resolution"], st.full_resolution)


def test_disk_cache_hit_shows_a_body_without_extracting(tiny_ckpt, tmp_path, monkeypatch):
    import importlib

    extract = importlib.import_module("npm_core.mesh.extract")  # the module (npm_core.mesh exports the function)
    code = np.linspace(-0.1, 0.1, 8).astype(np.float32)
    v = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]], np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    monkeypatch.setenv("NPM_CACHE_DIR", str(tmp_path))
    MeshCache().put(key_for(tiny_ckpt, code, 40, lipschitz=workers.VIEW_LIPSCHITZ), v, f)

    def refuse(*a, **k):
        raise AssertionError("extracted although the mesh was cached")

    monkeypatch.setattr(extract, "extract", refuse)
    server = workers._Serve()
    r = server.run(workers.MeshRequest(1, "main", str(tiny_ckpt), [(code, None)], 40))
    assert r.error is None and r.stats.get("disk_cache")
    np.testing.assert_array_equal(r.meshes[0].vertices, v)
    np.testing.assert_array_equal(r.meshes[0].faces, f)
    assert server.model is None  # no decoder was loaded for a cached mesh


def test_cold_cache_sends_a_coarse_body_first(session_app):
    w, m = session_app.worker, session_app.model
    w.wait(30)
    code = m.shape_codes[1] * 0.5 + 0.01  # a code no test has extracted
    job = w.submit("main", m.path, [(code, None)], 40, coarse_first=16)
    got = []
    while w.busy("main"):
        got += w.poll()
    got += w.poll()
    assert [(r.job, r.partial, r.stats["resolution"]) for r in got] == [(job, True, 16), (job, False, 40)]
    assert got[1].stats["extract_s"] > 0
    job = w.submit("main", m.path, [(code, None)], 40, coarse_first=16)  # now on disk: no coarse step
    (r,) = w.wait(30)
    assert not r.partial and r.stats["resolution"] == 40 and r.stats.get("cached")


def test_exports_timeline_mp4_turntable_and_camera(app, tiny_fit, tmp_path, rendering):
    import imageio.v3 as iio

    from npm_viewer.panels import export

    app.select_panel("shape")
    app.defer(lambda: export.export_video(app, "turntable", tmp_path / "turn.mp4", n_frames=5))  # as the button does
    app.tick()  # rendered after the frame, outside the UI callback
    frames = iio.imread(tmp_path / "turn.mp4")
    assert frames.shape[0] == 5 and not np.array_equal(frames[0], frames[2])  # the camera turns
    assert export.export_video(app, "timeline", tmp_path / "none.mp4") is None  # a still view: refused
    assert "nothing plays" in app.state.messages[-1][1]
    assert app.open_fit(str(tiny_fit))
    app.select_panel("sequence")
    app.settle()
    app.set_frame(2)
    out = export.export_video(app, "timeline", tmp_path / "seq.mp4")
    assert iio.imread(out).shape[0] == app.replay.frames == 8 and app.state.frame == 2
    export.camera(app, "save", tmp_path / "cam.json")
    assert (tmp_path / "cam.json").exists()
    export.camera(app, "load", tmp_path / "nothing.json")
    assert app.state.messages[-1][0] == "error" and "not found" in app.state.messages[-1][1]


def test_compare_side_by_side_labels_and_panel_helpers(app, tiny_fit):
    from npm_viewer import scene as SC
    from npm_viewer.panels import sequence

    assert app.open_fit(str(tiny_fit))
    app.select_panel("sequence")
    app.settle()
    st = app.state
    st.show_gt, st.compare = False, True
    app.set_frame(3)
    app.tick()
    gt = app.scene.get("gt")
    assert gt.enabled and gt.shifted == SC.COMPARE_SHIFT  # the truth is shown beside the fit
    (fpos, ftext), (gpos, gtext) = app.scene.labels()
    assert (ftext, gtext) == ("fit", "truth")
    assert abs((gpos[0] - fpos[0]) - SC.COMPARE_SHIFT) < 0.1  # same frame, shifted copies
    st.compare = False
    app.tick()
    assert not gt.enabled and app.scene.labels() == []
    st.show_gt = True  # overlaid again (a hidden node catches up when shown)
    app.tick()
    assert gt.enabled and gt.shifted == 0.0
    series = sequence.metric_series(app.replay)
    assert list(series)[0] == "vertex error EPE (cm)"
    np.testing.assert_allclose(series["vertex error EPE (cm)"], app.replay.metrics["mean vertex error (mm)"] / 10)
    app.select_panel("pose")
    row = pose.random_pose(app)
    assert app.state.pose_a == row and 0 <= row < len(app.model.pose_codes) and not app.state.motion_on
    app.select_panel("transfer")
    from npm_viewer.panels import transfer

    transfer.set_gallery(app, True, [0, 3], [0, 5])
    app.settle()
    texts = [t for _, t in app.scene_labels()]
    assert texts == ["arm_raise #0", "wave #0", "0 t0", "3 t3"]  # columns: poses; rows: identities


class SilentWorker:
    """A mesh worker that takes requests and never answers (what a still-importing one looks like)."""

    last_stats: dict = {}

    def submit(self, *args, **kwargs) -> int:
        return 1

    def poll(self) -> list:
        return []

    def busy(self, channel=None) -> bool:
        return False

    def close(self) -> None:
        pass


def test_cached_body_is_shown_before_the_worker_answers(session_app, tiny_ckpt):
    from npm_viewer.app import App

    session_app.settle()  # the shared app's worker has put shape 0 at 128^3 into this session's mesh cache
    app = App(None, None, worker=SilentWorker())
    assert app.scene.get("body") is None
    assert app.open_checkpoint(str(tiny_ckpt))
    node = app.scene.get("body")  # from the disk cache, in this process, no extraction
    assert node is not None and node.key[1] == app.state.full_resolution
    v, f = MeshCache().get(node.key[0])  # the cache entry of shape 0 at full resolution, shown as is
    np.testing.assert_allclose(node.frames[0], space.model_to_metres(v), atol=1e-6)
    np.testing.assert_array_equal(node.faces, f)
    app.scene.remove_group("body")  # one Polyscope session: the shared app registers its body again
    session_app.scene.nodes.pop("body", None)  # (the next `app` fixture asks for it)
