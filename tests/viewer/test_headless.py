"""Headless video rendering through EGL: frame count, size, content, and the session left as it was."""

import itertools
import json

import numpy as np
import pytest

from npm_viewer import headless

W, H = 96, 64


def read_frames(path):
    if path.suffix == ".gif":
        from PIL import Image, ImageSequence

        with Image.open(path) as im:
            return [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
    import imageio.v2 as iio

    with iio.get_reader(str(path), "ffmpeg") as r:
        return [np.asarray(f) for f in r]


@pytest.fixture
def box(backend, rendering):
    """An asymmetric box (1 x 0.5 x 0.25) registered for the test, removed after it."""
    import polyscope as ps

    c = np.array([[x, y, z] for x in (0, 1) for y in (0, 0.5) for z in (0, 0.25)], np.float64)
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ]
    )
    mesh = ps.register_surface_mesh("headless test box", c, f, color=(0.9, 0.2, 0.1))
    ps.look_at((0.5, 0.6, 3.0), (0.5, 0.25, 0.0))
    size, view = ps.get_window_size(), ps.get_view_as_json()
    yield ps, mesh, c
    ps.remove_surface_mesh("headless test box")
    assert tuple(ps.get_window_size()) == tuple(size)  # render_video put them back
    assert json.loads(ps.get_view_as_json())["viewMat"] == json.loads(view)["viewMat"]


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_render_video_frames(box, tmp_path, suffix):
    if suffix == ".mp4":
        pytest.importorskip("imageio_ffmpeg")
    _, mesh, c = box
    done = []
    path = headless.render_video(
        tmp_path / f"slide{suffix}",
        lambda i: mesh.update_vertex_positions(c + [0.3 * i, 0, 0]),
        5,
        fps=10,
        size=(W, H),
        progress=lambda k, n: done.append(k),
    )
    frames = read_frames(path)
    assert len(frames) == 5 and frames[0].shape == (H, W, 3)
    assert done == [1, 2, 3, 4, 5]
    red = [(f[..., 0].astype(int) - f[..., 1] > 80) for f in frames]  # the box's pixels
    for f, r in zip(frames, red):
        assert f.reshape(-1, 3).std(0).max() > 10  # not one colour
        assert 20 < r.sum() < 0.8 * W * H
    xs = [np.nonzero(r)[1].mean() for r in red]
    assert all(b > a + 2 for a, b in itertools.pairwise(xs))  # the box moves right, frame by frame


def test_turntable_views_differ(box, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    # about an axis off the box's centre: a box looks the same from opposite sides of its own centre
    path = headless.render_turntable(tmp_path / "turn.mp4", (0.2, 0.25, 0.0), 2.5, 20.0, n_frames=4, fps=4, size=(W, H))
    frames = [f.astype(int) for f in read_frames(path)]
    assert len(frames) == 4
    for i in range(4):
        for j in range(i + 1, 4):
            assert np.abs(frames[i] - frames[j]).mean() > 1.0, (i, j)


def test_refuses_without_a_renderer(backend, tmp_path):
    if backend != "openGL_mock":
        pytest.skip("needs the mock backend")
    with pytest.raises(RuntimeError, match="openGL_mock backend draws nothing"):
        headless.render_video(tmp_path / "x.mp4", lambda i: None, 2)
