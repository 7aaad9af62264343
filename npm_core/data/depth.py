"""Virtual depth camera, the depth-sequence directory format, and back-projection.

Pinhole camera, OpenCV convention (x right, y down, z forward); depth = z in the camera
frame, metres. World = canonical axes in metres. Directory format (DESIGN.md):
  camera.json  {fx, fy, cx, cy, width, height, depth_scale, fps, world_from_camera (4x4, optional)}
  depth/000000.png ...  uint16, metres = value / depth_scale, 0 = no measurement (.npy float32 metres also read)
  gt/000000.ply ...     optional ground-truth meshes (fixed topology), metres
  gt/meshes.npz         or, compact: vertices [T,V,3] float16 metres + faces [F,3] (shipped examples)
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CAMERA_FILE = "camera.json"


class SequenceError(ValueError):
    """A depth-sequence directory that does not have the expected form."""


@dataclass
class Camera:
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    depth_scale: float = 1000.0
    fps: float = 30.0
    world_from_camera: list = field(default_factory=lambda: np.eye(4).tolist())

    @staticmethod
    def looking_at_subject(width: int = 320, height: int = 240, distance: float = 2.8,
                           height_m: float = 0.0, fov_y_deg: float = 45.0) -> "Camera":
        """A camera `distance` metres in front of the subject (on +z), looking at it (-z)."""
        fy = 0.5 * height / np.tan(np.deg2rad(fov_y_deg) / 2)
        pose = np.eye(4)
        pose[:3, :3] = np.diag([1.0, -1.0, -1.0])  # columns: right=+x, down=-y, forward=-z
        pose[:3, 3] = [0.0, height_m, distance]
        return Camera(fy, fy, (width - 1) / 2, (height - 1) / 2, width, height, world_from_camera=pose.tolist())

    @property
    def pose(self) -> np.ndarray:
        return np.asarray(self.world_from_camera, dtype=np.float64)

    def rays(self):
        """Per-pixel ray origins [H*W,3] and directions [H*W,3] in world; direction has camera z = 1."""
        v, u = np.mgrid[0 : self.height, 0 : self.width]
        d_cam = np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u, dtype=float)], -1)
        d = d_cam.reshape(-1, 3) @ self.pose[:3, :3].T
        o = np.broadcast_to(self.pose[:3, 3], d.shape)
        return o, d

    def backproject(self, depth: np.ndarray) -> np.ndarray:
        """Depth map [H,W] metres (0 = none) -> world points [M,3] metres of the valid pixels."""
        v, u = np.nonzero(depth > 0)
        z = depth[v, u]
        p_cam = np.stack([(u - self.cx) / self.fx * z, (v - self.cy) / self.fy * z, z], 1)
        return p_cam @ self.pose[:3, :3].T + self.pose[:3, 3]

    def project(self, points: np.ndarray):
        """World points [N,3] -> (pixel u [N], pixel v [N], camera depth z [N])."""
        p = (points - self.pose[:3, 3]) @ self.pose[:3, :3]
        z = p[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.fx * p[:, 0] / z + self.cx, self.fy * p[:, 1] / z + self.cy, z


@functools.lru_cache(maxsize=1)
def _ray_kernel():
    from .sdf import _warp

    wp, _ = _warp()

    @wp.kernel
    def cast(mesh: wp.uint64, origins: wp.array(dtype=wp.vec3), dirs: wp.array(dtype=wp.vec3),
             out_t: wp.array(dtype=float)):
        tid = wp.tid()
        q = wp.mesh_query_ray(mesh, origins[tid], dirs[tid], 1.0e6)
        if q.result:
            out_t[tid] = q.t
        else:
            out_t[tid] = 0.0

    return wp, cast


def render_depth(camera: Camera, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Ray-cast a mesh (world, metres) into a depth map [H,W] float32 metres (0 = background)."""
    from .sdf import warp_mesh

    wp, cast = _ray_kernel()
    o, d = camera.rays()
    mesh = warp_mesh(vertices, faces)
    t = wp.zeros(len(d), dtype=float)
    wp.launch(cast, dim=len(d), inputs=[mesh.id, wp.array(o.astype(np.float32), dtype=wp.vec3),
                                        wp.array(d.astype(np.float32), dtype=wp.vec3), t])
    # directions have unit camera-z, so the ray parameter is the depth itself
    return t.numpy().reshape(camera.height, camera.width).astype(np.float32)


# ------------------------------------------------------------------------------- I/O


def write_meshes(directory: Path, vertices: np.ndarray, faces: np.ndarray, compact: bool = False) -> None:
    """Meshes sharing faces: 000000.ply ... or, compact, one meshes.npz (float16 vertices)."""
    if compact:
        tmp = directory / ".meshes.tmp.npz"
        np.savez_compressed(tmp, vertices=vertices.astype(np.float16), faces=np.asarray(faces, np.int32))
        tmp.replace(directory / "meshes.npz")
        return
    import trimesh

    for i, v in enumerate(vertices):
        trimesh.Trimesh(v, faces, process=False).export(directory / f"{i:06d}.ply")


def read_meshes(directory: Path, frames: slice | None = None):
    """(vertices [T,V,3] float32, faces) from a folder of PLYs or a meshes.npz; (None, None) if none."""
    if (directory / "meshes.npz").is_file():
        with np.load(directory / "meshes.npz", allow_pickle=False) as z:
            v, f = z["vertices"].astype(np.float32), z["faces"].astype(np.int64)
        return (v[frames] if frames is not None else v), f
    files = sorted(directory.glob("*.ply"))
    if not files:
        return None, None
    import trimesh

    files = files[frames] if frames is not None else files
    meshes = [trimesh.load(f, process=False) for f in files]
    return np.stack([m.vertices for m in meshes]).astype(np.float32), np.asarray(meshes[0].faces)


def write_sequence(directory, camera: Camera, depths, gt_vertices=None, faces=None, compact: bool = False) -> None:
    """Write a depth-sequence directory (uint16 PNGs in depth_scale units, camera.json, optional gt)."""
    from PIL import Image

    from ..config import write_text_atomic

    directory = Path(directory)
    (directory / "depth").mkdir(parents=True, exist_ok=True)
    max_m = 65535 / camera.depth_scale
    for i, d in enumerate(depths):
        if np.nanmax(d, initial=0) > max_m:
            raise SequenceError(f"frame {i}: depth {np.nanmax(d):.2f} m exceeds {max_m:.2f} m at depth_scale {camera.depth_scale}")
        q = np.round(np.nan_to_num(d, nan=0.0) * camera.depth_scale).astype(np.uint16)
        Image.fromarray(q).save(directory / "depth" / f"{i:06d}.png")
    if gt_vertices is not None:
        (directory / "gt").mkdir(exist_ok=True)
        write_meshes(directory / "gt", np.asarray(gt_vertices), faces, compact)
    write_text_atomic(directory / CAMERA_FILE, json.dumps(asdict(camera), indent=1))


def read_camera(directory) -> Camera:
    path = Path(directory) / CAMERA_FILE
    if not path.is_file():
        raise SequenceError(f"{directory}: no {CAMERA_FILE} (expected a depth-sequence directory: camera.json + depth/)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SequenceError(f"{path}: not valid JSON ({e})") from None
    required = ["fx", "fy", "cx", "cy", "width", "height"]
    missing = [k for k in required if k not in data]
    if missing:
        raise SequenceError(f"{path}: missing field(s) {missing}")
    known = set(Camera.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise SequenceError(f"{path}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    cam = Camera(**data)
    if np.asarray(cam.world_from_camera).shape != (4, 4):
        raise SequenceError(f"{path}: world_from_camera must be a 4x4 row-major list")
    if cam.fx <= 0 or cam.fy <= 0 or cam.depth_scale <= 0:
        raise SequenceError(f"{path}: fx, fy and depth_scale must be positive")
    return cam


@dataclass
class DepthSequence:
    camera: Camera
    depths: np.ndarray  # [T, H, W] float32 metres, 0 = no measurement
    gt_vertices: np.ndarray | None  # [T, V, 3] metres or None
    gt_faces: np.ndarray | None
    path: Path

    def __len__(self) -> int:
        return len(self.depths)

    def points(self, t: int) -> np.ndarray:
        """Back-projected world points [M,3] (metres) of frame t."""
        return self.camera.backproject(self.depths[t])


def read_sequence(directory, frames: slice | None = None) -> DepthSequence:
    """Read a depth-sequence directory; non-finite pixels become 'no measurement' (warned)."""
    from PIL import Image

    directory = Path(directory)
    cam = read_camera(directory)
    files = sorted((directory / "depth").glob("*.png")) or sorted((directory / "depth").glob("*.npy"))
    if not files:
        raise SequenceError(f"{directory / 'depth'}: no .png or .npy depth frames")
    files = files[frames] if frames is not None else files
    depths = []
    for f in files:
        if f.suffix == ".png":
            a = np.asarray(Image.open(f))
            if a.dtype != np.uint16 and a.dtype != np.int32:
                raise SequenceError(f"{f}: expected a 16-bit single-channel PNG, got {a.dtype} {a.shape}")
            d = a.astype(np.float32) / cam.depth_scale
        else:
            d = np.load(f, allow_pickle=False).astype(np.float32)
        if d.shape != (cam.height, cam.width):
            raise SequenceError(f"{f}: size {d.shape[::-1]} (w, h) differs from camera.json's {(cam.width, cam.height)}")
        bad = ~np.isfinite(d)
        if bad.any():
            warnings.warn(f"{f}: {int(bad.sum())} non-finite pixels treated as 'no measurement'", stacklevel=2)
            d[bad] = 0.0
        d[d < 0] = 0.0
        depths.append(d)
    gt_v, gt_f = read_meshes(directory / "gt", frames)
    if gt_v is not None and len(gt_v) != len(depths):
        raise SequenceError(f"{directory / 'gt'}: {len(gt_v)} gt meshes for {len(depths)} depth frames")
    return DepthSequence(cam, np.stack(depths), gt_v, gt_f, directory)


def synthesize_sequence(directory, phenotypes, motion_name: str, camera: Camera | None = None,
                        frames: int | None = None, with_gt: bool = True, compact: bool = False) -> DepthSequence:
    """Render a depth sequence of an Anny identity performing a motion (world = canonical axes, metres).

    The motion's root translation is applied in world, so a fit has to track it. More frames
    than the clip has repeat it (the clips are cycles), for sequences of any length."""
    from .. import bodies, space

    camera = camera or Camera.looking_at_subject()
    m = bodies.motion(motion_name)
    idx = np.arange(m.num_frames if frames is None else frames) % m.num_frames
    ph = bodies.check_phenotypes(phenotypes)
    verts = bodies.body_meshes(np.repeat(ph, len(idx), 0), m.angles[idx], root_yaw_deg=m.root_yaw[idx])
    verts = space.model_to_metres(verts) + m.translation[idx, None, :].astype(np.float32)
    faces = bodies.faces()
    depths = np.stack([render_depth(camera, v, faces) for v in verts])
    camera.fps = m.fps
    write_sequence(directory, camera, depths, verts if with_gt else None, faces, compact)
    return read_sequence(directory)
