"""Live fitting from the app: `npms fit` (small schedules, tests/viewer/small_fit.py) in a
subprocess, its tracked frames shown as they come, the result opened for replay, and a stopped
fit leaving an earlier result in --out as it was."""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from npm_core import layout
from npm_viewer import fitting
from npm_viewer.panels import fit as fit_panel

SMALL_FIT = [sys.executable, str(Path(__file__).parent / "small_fit.py")]


@pytest.fixture(scope="module")
def three_frames(tiny_ckpt, tmp_path_factory):
    """A 3-frame depth sequence and a complete fit result of it (the 'earlier result')."""
    import tiny

    root = tmp_path_factory.mktemp("live")
    tiny.make_fit(tiny_ckpt, root / "earlier", root / "seq", frames=3)
    return root / "seq", root / "earlier"


def test_options_become_npms_fit_arguments():
    o = fitting.FitOptions("ck", "seq", "out", "paper", no_icp=True, resolution=96, frames=2, threads=3)
    expected = "fit --checkpoint ck --sequence seq --out out --schedule paper --device cpu --threads 3 --no-icp"
    assert o.args() == expected.split() + ["--resolution", "96", "--frames", "2"]
    assert fitting.FitOptions("ck", "seq", "out").args()[-1] == str(fitting.ui_threads())


def test_live_frames_place_each_body_by_its_rotation_and_translation(tmp_path):
    live = fitting.LiveFrames(tmp_path)
    v = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]], np.float32)
    turn = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]  # 90 degrees about z
    live.add_mesh({"frame": 1, "translation": [0.4, 0.0, 0.0], "rotation": turn}, "k", v, None)
    live.add_mesh({"frame": 0, "translation": [0.0, 0.0, 0.0]}, "k", v, None)  # no rotation: identity
    f = live.mesh_frames()
    assert f.shape == (2, 2, 3) and live.count == 2
    assert np.allclose(f[0], v / 0.4)  # model units -> metres
    assert np.allclose(f[1], [[1.0, 0.0, 0.0], [1.0, 2.5, 0.0]])
    live.add_mesh({"frame": 3, "translation": [0.0, 0.0, 0.0]}, "k", v, None)
    assert np.allclose(live.mesh_frames()[2], f[1])  # frame 2 not posed yet: frame 1 held


def test_live_frames_of_an_imported_domain_are_in_its_metres(tmp_path):
    from npm_core.domain import DomainInfo

    hands = DomainInfo(name="hands", source="meshes", model_per_metre=3.0, centre_m=[0.0, 0.1, 0.0])
    live = fitting.LiveFrames(tmp_path, hands)
    v = np.array([[0.0, 0.0, 0.0], [0.8, 0.0, 0.0]], np.float32)
    live.add_mesh({"frame": 0, "translation": [0.0, 0.3, 0.0]}, "k", v, None)
    np.testing.assert_allclose(live.mesh_frames()[0], [[0.0, 0.2, 0.0], [0.8 / 3.0, 0.2, 0.0]], atol=1e-6)


def test_live_frames_read_depth_points_off_the_ui_thread(three_frames):
    from npm_core.data.depth import read_sequence

    seq, _ = three_frames
    live = fitting.LiveFrames(seq)
    live.read_points(1)
    live.read_points(7)  # no such frame: no points, no error
    live.wait_points()
    assert live.take_points() and not live.take_points()  # collected once
    want = read_sequence(seq).points(1)
    assert list(live.points) == [1] and np.allclose(live.points[1], want)
    assert live.point_frames().shape == (2, min(15000, len(want)), 3)  # frame 0 not read yet: shows frame 1's


def _reset(app):
    app.fit_run, app.live = None, None


def _tick_until(app, done, timeout=180.0, each=None):
    t = time.time()
    while not done():
        assert time.time() - t < timeout, "timed out"
        app.tick()
        if each:
            each()
        time.sleep(0.02)


def test_fit_from_the_app_shows_frames_as_tracked_then_opens_the_result(app, three_frames, tmp_path, monkeypatch):
    seq, _ = three_frames
    ack = tmp_path / "ack"  # the fit tracks frame t + 1 once the scene has shown frame t
    ack.mkdir()
    monkeypatch.setenv("SMALL_FIT_ACK", str(ack))
    _reset(app)
    st = app.state
    st.fit_sequence, st.fit_out, st.fit_no_segmentation = str(seq), str(tmp_path / "out"), True
    st.full_resolution = 32
    app.select_panel("fit")
    assert fit_panel.start(app, SMALL_FIT)
    run = app.fit_run
    assert "--threads" in run.command and st.view == "sequence" and app.replay is None
    seen = []  # live frames in the scene, each tick before the result opens

    def look():
        node = app.scene.get("fit")
        if node is not None and app.replay is None:
            seen.append((node.count, len(run.frames)))
            (ack / str(node.count - 1)).touch()

    _tick_until(app, lambda: app.replay is not None and app.replay.done, each=look)
    counts = [c for c, _ in seen]
    assert sorted(set(counts)) == [1, 2, 3] and counts == sorted(counts)  # grew with tracking, to 3
    assert all(c <= n for c, n in seen)  # a body only for a tracked frame
    log, _ = layout.read_fit_progress(tmp_path / "out")
    assert [x for x, _ in run.curve] == [0, 1, 2]
    assert [e for _, e in run.curve] == [e["energy"] for e in log]
    assert run.finished and app.replay.path == tmp_path / "out" and app.replay.frames == 3
    assert app.scene.get("fit").count == 3 and st.view == "sequence"
    _reset(app)


def test_stopping_a_fit_keeps_the_earlier_result_and_its_log(app, three_frames, tmp_path, monkeypatch):
    seq, earlier = three_frames
    import shutil

    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    old_log = json.dumps({"frame": 0, "frames": 3, "energy": 1.5}) + "\n"
    layout.fit_progress_path(out).write_text(old_log)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setenv("SMALL_FIT_PAUSE", "30")
    _reset(app)
    st = app.state
    st.fit_sequence, st.fit_out, st.fit_no_segmentation = str(seq), str(out), True
    assert fit_panel.start(app, SMALL_FIT)
    run = app.fit_run
    _tick_until(app, lambda: len(run.frames) >= 1)  # frame 0 tracked, the new log is being written
    assert layout.fit_progress_path(out).read_text() != old_log
    fit_panel.stop(app)
    assert not run.running and run.returncode == -15 and run.ended and not run.finished
    after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # fit.npz, meshes, canonical mesh and the earlier progress log untouched
    assert not layout.fit_kept_progress_path(out).exists() and not out.with_name(".out.partial").exists()
    app.tick()
    assert app.replay is None and "stopped" in run.status()
    _reset(app)


def test_paper_schedule_reports_its_bar_and_energy(tiny_ckpt, three_frames, tmp_path):
    seq, _ = three_frames
    opts = fitting.FitOptions(str(tiny_ckpt), str(seq), str(tmp_path / "p"), "paper", no_segmentation=True, threads=1)
    run = fitting.FitRun(opts, SMALL_FIT)
    run.start()
    t = time.time()
    while not run.ended:
        assert time.time() - t < 120
        run.poll()
        time.sleep(0.1)
    assert run.finished, run.log_tail()
    assert run.frames == {} and run.bar == (6, 6) and run.fraction == 1.0  # no per-frame lines: bar only
    assert [x for x, _ in run.curve][-1] == 6 and all(np.isfinite(e) for _, e in run.curve)


def test_a_failed_fit_puts_the_earlier_log_back(three_frames, tmp_path):
    import shutil

    _, earlier = three_frames
    out = tmp_path / "out"
    shutil.copytree(earlier, out)
    layout.fit_progress_path(out).write_text('{"frame": 0}\n')
    run = fitting.FitRun(fitting.FitOptions("ck", "seq", str(out)), [sys.executable, "-c", "import sys; sys.exit(3)"])
    run.start()
    assert not layout.fit_progress_path(out).exists() and layout.fit_kept_progress_path(out).is_file()  # set aside
    run.proc.wait()
    run.poll()
    assert run.ended and not run.finished and run.status() == "failed (exit code 3)"
    assert (
        layout.fit_progress_path(out).read_text() == '{"frame": 0}\n'
        and not layout.fit_kept_progress_path(out).exists()
    )
