"""Virtual depth camera, the depth-sequence directory format, and back-projection.

Pinhole camera, OpenCV convention (x right, y down, z forward); depth = z in the camera
frame, metres. World = canonical axes in metres. The directory's files (camera.json, depth/,
gt/) are named in layout.py.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import layout
from ..layout import read_meshes, write_meshes


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
    def looking_at_subject(
        width: int = 320, height: int = 240, distance: float = 2.8, height_m: float = 0.0, fov_y_deg: float = 45.0
    ) -> Camera:
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

    wp = _warp()[0]

    @wp.kernel
    def cast(
        mesh: wp.uint64, origins: wp.array(dtype=wp.vec3), dirs: wp.array(dtype=wp.vec3), out_t: wp.array(dtype=float)
    ):
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
    wp.launch(
        cast,
        dim=len(d),
        inputs=[
            mesh.id,
            wp.array(o.astype(np.float32), dtype=wp.vec3),
            wp.array(d.astype(np.float32), dtype=wp.vec3),
            t,
        ],
    )
    # directions have unit camera-z, so the ray parameter is the depth itself
    return t.numpy().reshape(camera.height, camera.width).astype(np.float32)


# ------------------------------------------------------------------------------- I/O


def write_sequence(directory, camera: Camera, depths, gt_vertices=None, faces=None, compact: bool = False) -> None:
    """Write a depth-sequence directory (uint16 PNGs in depth_scale units, camera.json, optional gt)."""
    from PIL import Image

    from ..config import write_text_atomic

    directory = Path(directory)
    layout.sequence_depth_dir(directory).mkdir(parents=True, exist_ok=True)
    max_m = 65535 / camera.depth_scale
    for i, d in enumerate(depths):
        if np.nanmax(d, initial=0) > max_m:
            raise SequenceError(
                f"frame {i}: depth {np.nanmax(d):.2f} m exceeds {max_m:.2f} m at depth_scale {camera.depth_scale}"
            )
        q = np.round(np.nan_to_num(d, nan=0.0) * camera.depth_scale).astype(np.uint16)
        Image.fromarray(q).save(layout.sequence_depth_path(directory, i))
    if gt_vertices is not None:
        layout.sequence_gt_dir(directory).mkdir(exist_ok=True)
        write_meshes(layout.sequence_gt_dir(directory), np.asarray(gt_vertices), faces, compact)
    write_text_atomic(layout.sequence_camera_path(directory), json.dumps(asdict(camera), indent=1))


def read_camera(directory) -> Camera:
    path = layout.sequence_camera_path(directory)
    if not path.is_file():
        raise SequenceError(
            f"{directory}: no {path.name} (expected a depth-sequence directory: {path.name} + "
            f"{layout.sequence_depth_dir(directory).name}/)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SequenceError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise SequenceError(f"{path}: expected a JSON object of camera fields, got a {type(data).__name__}")
    required = ["fx", "fy", "cx", "cy", "width", "height"]
    missing = [k for k in required if k not in data]
    if missing:
        raise SequenceError(f"{path}: missing field(s) {missing}")
    known = set(Camera.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise SequenceError(f"{path}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    for k, v in data.items():  # JSON's types: a number written as "500" is an error, not a string to guess at
        if k == "world_from_camera":
            ok = (
                isinstance(v, list)
                and len(v) == 4
                and all(isinstance(r, list) and len(r) == 4 and all(_is_number(x) for x in r) for r in v)
            )
            want = "a 4x4 row-major list of finite numbers"
        elif k in ("width", "height"):
            ok, want = isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer (pixels)"
        elif k in ("fx", "fy", "depth_scale", "fps"):
            ok, want = _is_number(v) and v > 0, "a positive number"
        else:
            ok, want = _is_number(v), "a number"
        if not ok:
            raise SequenceError(f"{path}: field '{k}' = {json.dumps(v)[:80]}: expected {want}")
    return Camera(**data)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)


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
    files = layout.sequence_depth_files(directory)
    if not files:
        raise SequenceError(f"{layout.sequence_depth_dir(directory)}: no .png or .npy depth frames")
    files = files[frames] if frames is not None else files
    depths = []
    for f in files:
        try:
            a = np.asarray(Image.open(f)) if f.suffix == ".png" else np.load(f, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:  # not an image, truncated, pickled or not .npy at all
            raise SequenceError(
                f"{f}: not a readable depth {'PNG' if f.suffix == '.png' else '.npy array'} "
                f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
            ) from None
        if f.suffix == ".png":
            if a.dtype != np.uint16 and a.dtype != np.int32:
                raise SequenceError(f"{f}: expected a 16-bit single-channel PNG, got {a.dtype} {a.shape}")
            d = a.astype(np.float32) / cam.depth_scale
        elif a.dtype.kind not in "fiu":
            raise SequenceError(f"{f}: expected float32 depth in metres, got {a.dtype} {a.shape}")
        else:
            d = a.astype(np.float32)
        if d.shape != (cam.height, cam.width):
            raise SequenceError(
                f"{f}: size {d.shape[::-1]} (w, h) differs from camera.json's {(cam.width, cam.height)}"
            )
        bad = ~np.isfinite(d)
        if bad.any():
            warnings.warn(f"{f}: {int(bad.sum())} non-finite pixels treated as 'no measurement'", stacklevel=2)
            d[bad] = 0.0
        d[d < 0] = 0.0
        depths.append(d)
    gt_v, gt_f = read_meshes(layout.sequence_gt_dir(directory), frames)
    if gt_v is not None and len(gt_v) != len(depths):
        raise SequenceError(
            f"{layout.sequence_gt_dir(directory)}: {len(gt_v)} gt meshes for {len(depths)} depth frames"
        )
    return DepthSequence(cam, np.stack(depths), gt_v, gt_f, directory)


def dataset_sequence(
    directory, ds, identity: str, sequence: str, camera: Camera, compact: bool = False
) -> DepthSequence:
    """Render a depth sequence of the frames a dataset (any domain) labels `sequence` of `identity`,
    in frame order, at the domain's true size (metres; the model cube's centre at the world origin)."""
    ids = [x["id"] for x in ds.identities]
    if identity not in ids:
        raise ValueError(f"{ds.path}: no identity {identity!r}; ids look like {', '.join(ids[:4])}, ...")
    for test, frames in ((True, ds.test_frames), (False, ds.frames)):
        rows = sorted(
            (f.get("frame") or 0, k)
            for k, f in enumerate(frames)
            if f["motion"] == sequence and ids[f["identity"]] == identity
        )
        if rows:
            posed = np.asarray(ds._npy("test_posed" if test else "posed")[[k for _, k in rows]])
            break
    else:
        names = sorted({f["motion"] for f in ds.frames + ds.test_frames if ids[f["identity"]] == identity})
        raise ValueError(f"{ds.path}: {identity} has no sequence {sequence!r}; it has {', '.join(names[:8])}, ...")
    verts = (posed / ds.domain.model_per_metre).astype(np.float32)
    faces = ds.faces()
    depths = np.stack([render_depth(camera, v, faces) for v in verts])
    write_sequence(directory, camera, depths, verts, faces, compact)
    return read_sequence(directory)


def synthesize_sequence(
    directory,
    phenotypes,
    motion_name: str,
    camera: Camera | None = None,
    frames: int | None = None,
    with_gt: bool = True,
    compact: bool = False,
) -> DepthSequence:
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
