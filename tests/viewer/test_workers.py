"""Mesh worker (latest request wins, caching, anchor posing) and the training subprocess.
The anchor weights themselves are tested with npm_core (tests/test_posing.py)."""

import sys
import time

import numpy as np

from npm_core import layout
from npm_viewer.workers import MeshRequest, TrainRun, latest_per_channel


def test_latest_per_channel():
    reqs = [MeshRequest(j, c, "x", [], 8) for j, c in [(1, "main"), (2, "gallery"), (3, "main"), (4, "main")]]
    assert [(r.job, r.channel) for r in latest_per_channel(reqs)] == [(2, "gallery"), (4, "main")]


def test_worker_latest_wins(session_app):
    w, m = session_app.worker, session_app.model
    w.wait(30)
    w.paused.set()
    try:
        jobs = [w.submit("main", m.path, [(m.shape_codes[i % 4], None)], 24) for i in range(5)]
        time.sleep(0.5)  # let the queue's feeder thread deliver all five
    finally:
        w.paused.clear()
    results = w.wait(30)
    assert [r.job for r in results] == [jobs[-1]]  # four requests replaced, one answered
    assert results[0].meshes[0].vertices.shape[1] == 3 and results[0].error is None


def test_worker_cache_and_pose(session_app):
    w, m = session_app.worker, session_app.model
    items = [(m.shape_codes[0], m.pose_codes[3])]
    w.submit("main", m.path, [(m.shape_codes[0], None)], 64)
    (r0,) = w.wait(30)
    w.submit("main", m.path, items, 64, "exact")
    (r1,) = w.wait(30)
    w.submit("main", m.path, items, 64, "preview")
    (r2,) = w.wait(30)
    assert r1.stats.get("cached") and r1.meshes[0].key == r0.meshes[0].key  # pose: no re-extraction
    assert r1.meshes[0].vertices.shape == r0.meshes[0].vertices.shape
    assert not np.allclose(r1.meshes[0].vertices, r0.meshes[0].vertices)
    # preview = anchors + interpolation (all vertices are anchors on a small mesh: then exact)
    assert np.abs(r2.meshes[0].vertices - r1.meshes[0].vertices).max() < 0.02


def test_worker_bad_checkpoint_reports(session_app, tmp_path):
    w = session_app.worker
    w.submit("main", tmp_path / "nothing", [(np.zeros(8, np.float32), None)], 24)
    (r,) = w.wait(30)
    assert r.error and "not found" in r.error
    assert w.proc.is_alive()


FAKE = """
import sys, time
from npm_core.progress import JsonlLog, ProgressEvent
log = JsonlLog(sys.argv[1])
n = int(sys.argv[2])
for e in range(1, n + 1):
    log(ProgressEvent("shape", e * 10, e, n, {"total": 1.0 / e, "sdf": 0.5 / e}, 1000.0, (n - e) * 0.05,
                      e == n, "done" if e == n else "epoch", time.time()))
    time.sleep(0.05)
"""


def test_train_run_fake(tmp_path):
    cmd = [sys.executable, "-c", FAKE, str(layout.checkpoint_progress_path(tmp_path)), "5"]
    run = TrainRun(tmp_path, "shape", command=cmd)
    run.start()
    t = time.time()
    while run.running and time.time() - t < 30:
        run.poll()
        time.sleep(0.05)
    run.poll()
    assert run.returncode == 0 and run.finished and run.fraction == 1.0
    assert [e.epoch for e in run.events] == [1, 2, 3, 4, 5]
    x, y = run.loss_curve("total")
    assert list(x) == [10, 20, 30, 40, 50] and y[0] > y[-1]


def test_train_run_stop(tmp_path):
    run = TrainRun(tmp_path, "pose", command=[sys.executable, "-c", "import time; time.sleep(60)"])
    run.start()
    assert run.running
    run.stop()
    assert not run.running and run.returncode != 0


def test_train_run_command_on_an_imported_dataset(tmp_path):
    """The shape stage of an imported domain trains on --data; the pose stage reads the dataset the
    checkpoint recorded, so it gets no --data."""
    shape = TrainRun(tmp_path, "shape", "configs/train_hands_v1.yaml", data="datasets/hands")
    assert shape.command[-4:] == ["--config", "configs/train_hands_v1.yaml", "--data", "datasets/hands"]
    pose = TrainRun(tmp_path, "pose", "configs/train_hands_v1.yaml", data="datasets/hands")
    assert "--data" not in pose.command and pose.command[-1] == "configs/train_hands_v1.yaml"
    assert "--data" not in TrainRun(tmp_path, "shape", "configs/train_fast.yaml").command
