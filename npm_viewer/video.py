"""Video files from rendered frames, and the camera path of a turntable.

VideoWriter / write_video: RGB(A) uint8 frames [H, W, 3|4] -> .mp4 (H.264, yuv420p, through
imageio-ffmpeg, the `video` extra) or .gif (Pillow, always installed: the fallback without
ffmpeg). Frames are streamed to the encoder one at a time (a GIF keeps its paletted frames
until close), and the file is written beside its final name and renamed at close, so it is
never seen half-written. turntable / look_at: camera positions and view matrices, world frame
(y up, the body faces +z), pure numpy.

Must not: draw or call Polyscope (npm_viewer.headless renders the frames), or keep RGB frames.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

FORMATS = (".mp4", ".gif")


def has_ffmpeg() -> bool:
    """True when imageio-ffmpeg (and so MP4 export) is installed."""
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        return False
    return True


class VideoWriter:
    """Append frames to `path` (.mp4 or .gif) at `fps`; close() finishes the file, abort() drops it.

    Use as a context manager: leaving the block normally closes, leaving it by an exception aborts.
    Alpha is dropped; an odd width or height is padded by one edge pixel (H.264 needs even sizes).
    In a GIF, Pillow merges identical consecutive frames into one longer frame (timing kept).
    """

    def __init__(self, path, fps: float = 30.0):
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        if self.suffix not in FORMATS:
            raise ValueError(
                f"{self.path}: video format {self.suffix or '(none)'} not supported; expected one of "
                f"{', '.join(FORMATS)}"
            )
        if not fps > 0:
            raise ValueError(f"{self.path}: fps must be > 0, got {fps}")
        if self.suffix == ".mp4" and not has_ffmpeg():
            raise RuntimeError(
                f"{self.path}: MP4 export needs imageio-ffmpeg (pip install 'npm-explorer[video]'); "
                "a .gif needs nothing extra"
            )
        self.fps = float(fps)
        self.n_frames = 0
        self.size: tuple[int, int] | None = None  # (width, height) of the frames given
        self._encoder = None
        self._gif: list = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=self.suffix)
        os.close(fd)
        self._tmp = Path(tmp)

    def append(self, frame) -> None:
        """frame: [H, W, 3] or [H, W, 4] uint8 RGB(A), the same size as the first frame."""
        rgb = self._check(frame)
        if self.suffix == ".gif":
            from PIL import Image

            self._gif.append(Image.fromarray(rgb).quantize(256))
        else:
            if self._encoder is None:
                import imageio_ffmpeg

                h, w = rgb.shape[:2]
                self._encoder = imageio_ffmpeg.write_frames(
                    str(self._tmp),
                    (w, h),
                    fps=self.fps,
                    codec="libx264",
                    quality=8,
                    macro_block_size=2,
                    output_params=["-movflags", "+faststart"],
                )
                self._encoder.send(None)
            self._encoder.send(rgb)
        self.n_frames += 1

    def _check(self, frame) -> np.ndarray:
        a = np.asarray(frame)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] not in (3, 4):
            raise ValueError(f"{self.path}: frame {self.n_frames}: expected uint8 [H, W, 3|4], got {a.dtype} {a.shape}")
        h, w = a.shape[:2]
        if self.size is None:
            self.size = (w, h)
        elif self.size != (w, h):
            raise ValueError(
                f"{self.path}: frame {self.n_frames} is {w}x{h}, the first frame was {self.size[0]}x{self.size[1]}"
            )
        rgb = a[..., :3]
        if h % 2 or w % 2:
            rgb = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        return np.ascontiguousarray(rgb)

    def close(self) -> Path:
        """Finish the file and move it to `path`; returns `path`."""
        try:
            if self.n_frames == 0:
                raise ValueError(f"{self.path}: no frames were given")
            if self._encoder is not None:
                self._encoder.close()
                self._encoder = None
            if self._gif:
                self._gif[0].save(
                    self._tmp,
                    format="GIF",
                    save_all=True,
                    append_images=self._gif[1:],
                    duration=round(1000 / self.fps),
                    loop=0,
                )
                self._gif = []
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Stop encoding and delete the partial file; `path` is left as it was."""
        if self._encoder is not None:
            with contextlib.suppress(Exception):  # the encoder may have failed already; the file goes anyway
                self._encoder.close()
            self._encoder = None
        self._gif = []
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path,
    render_frame: Callable[[int], np.ndarray],
    n_frames: int,
    fps: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write frames render_frame(0) .. render_frame(n_frames - 1) to `path` (.mp4 or .gif).

    render_frame(i) returns [H, W, 3|4] uint8; progress(done, n_frames) is called after each
    frame. An exception from render_frame or progress leaves no file behind. Returns `path`.
    """
    if n_frames < 1:
        raise ValueError(f"{path}: n_frames must be >= 1, got {n_frames}")
    with VideoWriter(path, fps) as writer:
        for i in range(n_frames):
            writer.append(render_frame(i))
            if progress is not None:
                progress(i + 1, n_frames)
    return writer.path


def turntable(center, radius: float, elevation_deg: float, n: int, start_deg: float = 0.0) -> np.ndarray:
    """[n, 3] camera positions on a circle about the vertical axis through `center` (world, y up).

    The circle has `radius` (distance to the centre) and `elevation_deg` above the centre's
    horizontal plane; view i is at azimuth start_deg + 360 i / n, azimuth 0 in front of the body
    (+z), growing towards +x. The n views close the loop without repeating the first.
    """
    if n < 1 or not radius > 0 or not -90.0 < elevation_deg < 90.0:
        raise ValueError(
            f"turntable: need n >= 1, radius > 0, -90 < elevation < 90 degrees; got n={n}, "
            f"radius={radius}, elevation={elevation_deg}"
        )
    az = np.radians(start_deg + 360.0 * np.arange(n) / n)
    el = math.radians(elevation_deg)
    offsets = np.stack([np.cos(el) * np.sin(az), np.full(n, np.sin(el)), np.cos(el) * np.cos(az)], axis=1)
    return np.asarray(center, np.float64).reshape(1, 3) + radius * offsets


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """[4, 4] world -> camera matrix (OpenGL: the camera looks down its -z, y up on screen)."""
    eye, target, up = (np.asarray(x, np.float64) for x in (eye, target, up))
    back = eye - target
    if np.linalg.norm(back) == 0 or np.linalg.norm(np.cross(up, back)) < 1e-9 * np.linalg.norm(back):
        raise ValueError(f"look_at: eye {eye} and target {target} coincide or the view is along up {up}")
    z = back / np.linalg.norm(back)
    x = np.cross(up, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[0, :3], m[1, :3], m[2, :3] = x, y, z
    m[:3, 3] = -m[:3, :3] @ eye
    return m
