"""Depth from elsewhere: a folder of depth frames plus intrinsics -> a depth-sequence directory.

Frames: 16-bit PNGs (raw units, metres = value / depth_scale, 0 = none) or .npy arrays (float:
metres; integer: raw units like the PNGs), in file-name order. The world frame written to
camera.json has y up (the floor's normal when a floor is seen, else the camera's -y or a given
vector), +z pointing from the subject towards the camera, and its origin at the subject's centre.
Must not: fit bodies, or write anything but the output directory (written whole, then renamed).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import layout
from . import capture
from .depth import Camera, SequenceError, read_sequence, write_sequence

FRAMES_FOR_WORLD = 10  # the first frames that decide the up direction and the origin


def read_frames(src, depth_scale: float) -> tuple[list[Path], np.ndarray]:
    """(files, depths [T,H,W] float32 metres, 0 = no measurement) of a folder of depth frames."""
    from PIL import Image

    src = Path(src)
    if not src.is_dir():
        raise SequenceError(f"{src}: not a folder (expected 16-bit depth PNGs or .npy frames)")
    png, npy = sorted(src.glob("*.png")), sorted(src.glob("*.npy"))
    if png and npy:
        raise SequenceError(f"{src}: has both .png ({len(png)}) and .npy ({len(npy)}) frames; keep one kind")
    files = png or npy
    if not files:
        raise SequenceError(f"{src}: no .png or .npy depth frames")
    depths = []
    for f in files:
        try:
            a = np.asarray(Image.open(f)) if f.suffix == ".png" else np.load(f, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise SequenceError(f"{f}: not readable ({e})") from None
        if f.suffix == ".png" and a.dtype not in (np.uint16, np.int32):
            raise SequenceError(f"{f}: expected a 16-bit single-channel depth PNG, got {a.dtype} {a.shape}")
        if a.ndim != 2 or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
            raise SequenceError(f"{f}: expected a 2-D depth image, got {a.dtype} {a.shape}")
        if depths and a.shape != depths[0].shape:
            raise SequenceError(
                f"{f}: size {a.shape[::-1]} (w, h) differs from {files[0].name}'s {depths[0].shape[::-1]}"
            )
        d = a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else (a / depth_scale).astype(np.float32)
        d[~np.isfinite(d) | (d < 0)] = 0.0
        depths.append(d)
    return files, np.stack(depths)


def world_from_camera(up: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """4x4 pose of the camera in a world with y = up [3] (camera frame), +z horizontal towards the
    camera, origin at `centre` [3] (camera frame, metres; default the camera)."""
    y = np.asarray(up, float) / np.linalg.norm(up)
    toward = -np.array([0.0, 0.0, 1.0])
    z = toward - (toward @ y) * y
    if np.linalg.norm(z) < 0.1:  # looking straight down or up: the image's bottom is the front
        z = np.array([0.0, 1.0, 0.0]) - y[1] * y
    z /= np.linalg.norm(z)
    rot = np.stack([np.cross(y, z), y, z])  # rows: world axes in the camera frame
    pose = np.eye(4)
    pose[:3, :3] = rot
    pose[:3, 3] = -rot @ (np.zeros(3) if centre is None else np.asarray(centre, float))
    return pose


@dataclass
class Imported:
    frames: int
    up_camera: np.ndarray  # [3] unit, camera frame
    up_from: str  # "floor (N frames)", "given" or "camera -y"
    centre_camera: np.ndarray  # [3] the subject's centre in the camera frame, metres (the world origin)


def import_depth(
    src,
    out,
    fx: float,
    fy: float,
    cx: float,
    cy: float,
    depth_scale: float = 1000.0,
    masks=None,
    box=None,
    up="auto",
    fps: float = 30.0,
    cfg: capture.SegmentConfig | None = None,
) -> Imported:
    """Write the depth-sequence directory `out` from the frames in `src` (see the module docstring).

    masks: a folder with one mask PNG per frame (same file name stem, nonzero = subject), copied to
    out/masks/; box (x0, y0, x1, y1): the subject's pixel box, kept in out/capture.json; up: "auto"
    or a vector [3] in the camera frame (OpenCV axes). Raises SequenceError naming the file or frame."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SequenceError(f"{out}: already exists and is not empty")
    if min(fx, fy, depth_scale) <= 0:
        raise SequenceError(f"fx {fx}, fy {fy} and depth scale {depth_scale} must be positive")
    files, depths = read_frames(src, depth_scale)
    h, w = depths.shape[1:]
    if not (0 <= cx < w and 0 <= cy < h):
        raise SequenceError(f"principal point (cx {cx}, cy {cy}) lies outside the {w}x{h} frames")
    if box is not None:
        box = capture.check_box(box, w, h)
    user = None
    if masks is not None:
        mdir = Path(masks)
        if not mdir.is_dir():
            raise SequenceError(f"{mdir}: not a folder of mask PNGs")
        user = []
        for f in files:
            m = mdir / f"{f.stem}.png"
            if not m.is_file():
                raise SequenceError(f"{m}: missing (one mask per depth frame, named like it)")
            user.append(capture.read_mask(m, (h, w)))
        user = np.stack(user)
    cam = Camera(fx, fy, cx, cy, w, h, depth_scale, fps)

    given = not (isinstance(up, str) and up == "auto")
    prior = np.asarray(up, float) if given else np.array([0.0, -1.0, 0.0])
    if given and (prior.shape != (3,) or not np.isfinite(prior).all() or np.linalg.norm(prior) < 1e-9):
        raise SequenceError(f"up {up!r}: expected 'auto' or a nonzero vector x,y,z in the camera frame")
    prior = prior / np.linalg.norm(prior)
    segs, errors = {}, []
    for t in range(min(FRAMES_FOR_WORLD, len(depths))):
        if not (depths[t] > 0).any():
            errors.append(f"frame {t}: no pixel with depth")
            continue
        try:
            segs[t] = capture.segment_frame(depths[t], cam, cfg, box, None if user is None else user[t], prior, frame=t)
        except capture.SegmentationError as e:
            errors.append(str(e))
    if not segs:
        raise capture.SegmentationError(
            f"{src}: no subject in the first {len(errors)} frames (give --box or --masks); " + errors[0]
        )
    normals = [s.floor_normal for s in segs.values() if s.floor_normal is not None]
    if given:
        up_cam, up_from = prior, "given"
    elif normals:
        up_cam = np.mean(normals, 0)
        up_cam, up_from = up_cam / np.linalg.norm(up_cam), f"floor ({len(normals)} frames)"
    else:
        up_cam, up_from = prior, "camera -y"
    cam.world_from_camera = world_from_camera(up_cam).tolist()
    ts = sorted(segs)
    centre_w = capture.subject_centre(cam, depths[ts], np.stack([segs[t].mask for t in ts]))
    centre_cam = cam.pose[:3, :3].T @ (centre_w - cam.pose[:3, 3])
    cam.world_from_camera = world_from_camera(up_cam, centre_cam).tolist()

    tmp = out.parent / f".{out.name}.import-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write_sequence(tmp, cam, depths)
        if user is not None:
            layout.sequence_masks_dir(tmp).mkdir()
            from PIL import Image

            for t, m in enumerate(user):
                Image.fromarray(m.astype(np.uint8) * 255).save(layout.sequence_mask_path(tmp, t))
        layout.sequence_capture_path(tmp).write_text(
            json.dumps(
                {
                    "box": None if box is None else list(box),
                    "up_camera": np.round(up_cam, 6).tolist(),
                    "up_from": up_from,
                    "frames": [f.name for f in files],
                },
                indent=1,
            )
        )
        read_sequence(tmp)  # what was written reads back
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if errors:
        warnings.warn(
            f"{len(errors)} of the first {len(ts) + len(errors)} frames had no subject; first: {errors[0]}",
            stacklevel=2,
        )
    return Imported(len(depths), up_cam, up_from, centre_cam)
