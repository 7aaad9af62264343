"""Video files (MP4 via imageio-ffmpeg, GIF via Pillow) read back frame by frame; turntable camera path."""

import math

import numpy as np
import pytest

from npm_viewer import video

W, H = 64, 48


def colour(i: int) -> np.ndarray:
    """A colour per frame index, far from its neighbours'."""
    return np.array([(40 * i) % 256, 255 - (40 * i) % 256, 128 if i % 2 else 32], np.uint8)


def frame(i: int, w: int = W, h: int = H, alpha: bool = False) -> np.ndarray:
    """Left half: colour(i); right half: white, so a frame is not one colour."""
    a = np.full((h, w, 4 if alpha else 3), 255, np.uint8)
    a[:, : w // 2, :3] = colour(i)
    return a


def read_mp4(path):
    import imageio.v2 as iio

    with iio.get_reader(str(path), "ffmpeg") as r:
        return [np.asarray(f) for f in r], r.get_meta_data()


def test_mp4_frames_read_back(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    seen = []
    path = video.write_video(
        tmp_path / "out" / "clip.mp4",
        lambda i: frame(i, alpha=i % 2 == 1),
        12,
        fps=24,
        progress=lambda done, n: seen.append((done, n)),
    )
    assert path == tmp_path / "out" / "clip.mp4"
    frames, meta = read_mp4(path)
    assert len(frames) == 12 and frames[0].shape == (H, W, 3)
    assert meta["fps"] == pytest.approx(24)
    for i, f in enumerate(frames):  # in order, each its own colour (H.264 4:2:0: a few levels off)
        left = f[8:-8, 8 : W // 2 - 8].reshape(-1, 3).mean(0)
        right = f[8:-8, W // 2 + 8 : -8].reshape(-1, 3).mean(0)
        assert np.abs(left - colour(i)).max() < 8, (i, left, colour(i))
        assert np.abs(right - 255).max() < 8
    assert seen == [(k, 12) for k in range(1, 13)]
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # the temp file was renamed


def test_mp4_odd_size_is_padded_by_the_edge(tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    path = video.write_video(tmp_path / "odd.mp4", lambda i: frame(i, 63, 47), 3, fps=10)
    frames, _ = read_mp4(path)
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)
    assert np.abs(frames[1][:, 63].astype(int) - 255).max() < 8  # copy of the white right edge


def test_gif_fallback(tmp_path):
    from PIL import Image, ImageSequence

    path = video.write_video(tmp_path / "clip.gif", frame, 5, fps=10)
    with Image.open(path) as im:
        frames = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)]
        assert im.info["duration"] == 100 and im.info["loop"] == 0
    assert len(frames) == 5 and frames[0].shape == (H, W, 3)
    for i, f in enumerate(frames):
        assert np.abs(f[H // 2, W // 4].astype(int) - colour(i)).max() <= 4


def test_failure_leaves_no_file_and_keeps_the_old_one(tmp_path):
    old = tmp_path / "clip.gif"
    old.write_bytes(b"previous export")

    def render(i):
        if i == 3:
            raise RuntimeError("scene failed")
        return frame(i)

    with pytest.raises(RuntimeError, match="scene failed"):
        video.write_video(old, render, 6)
    assert old.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.gif"]


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"clip\.avi: video format \.avi not supported; expected one of \.mp4, \.gif"):
        video.VideoWriter(tmp_path / "clip.avi")
    with pytest.raises(ValueError, match=r"frame 0: expected uint8 \[H, W, 3\|4\], got float64 \(48, 64, 3\)"):
        video.write_video(tmp_path / "a.gif", lambda i: frame(i) / 255.0, 2)
    with pytest.raises(ValueError, match="frame 1 is 32x48, the first frame was 64x48"):
        video.write_video(tmp_path / "b.gif", lambda i: frame(i, w=W if i == 0 else 32), 2)
    with pytest.raises(ValueError, match="n_frames must be >= 1"):
        video.write_video(tmp_path / "c.gif", frame, 0)
    assert list(tmp_path.iterdir()) == []


def test_turntable_views_circle_the_centre():
    c = np.array([0.1, 0.9, -0.2])
    n, r, el = 12, 2.5, 20.0
    eyes = video.turntable(c, r, el, n)
    assert eyes.shape == (n, 3)
    d = eyes - c
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), r)
    np.testing.assert_allclose(d[:, 1], r * math.sin(math.radians(el)))  # same elevation for all
    np.testing.assert_allclose(d[0], [0, r * math.sin(math.radians(el)), r * math.cos(math.radians(el))], atol=1e-12)
    az = np.degrees(np.arctan2(d[:, 0], d[:, 2]))  # 0 at +z, 90 at +x
    np.testing.assert_allclose(np.diff(np.unwrap(np.radians(az))), math.radians(30.0))
    assert len({tuple(np.round(e, 9)) for e in eyes}) == n  # n distinct views, the first not repeated
    for e in eyes:
        m = video.look_at(e, c)
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        np.testing.assert_allclose(m @ np.append(c, 1), [0, 0, -r, 1], atol=1e-12)  # centre straight ahead
        np.testing.assert_allclose(m @ np.append(e, 1), [0, 0, 0, 1], atol=1e-12)
        assert abs(m[0, 1]) < 1e-12 and m[1, 1] > 0  # horizon level, world up is up on screen
    quarter = video.turntable(c, r, 0.0, 4, start_deg=90.0)
    np.testing.assert_allclose(quarter[0], c + [r, 0, 0], atol=1e-12)


def test_turntable_rejects_degenerate_paths():
    with pytest.raises(ValueError, match="elevation=90"):
        video.turntable((0, 0, 0), 1.0, 90, 8)
    with pytest.raises(ValueError, match="radius=0"):
        video.turntable((0, 0, 0), 0, 10, 8)
    with pytest.raises(ValueError, match="coincide"):
        video.look_at((0, 0, 0), (0, 0, 0))
