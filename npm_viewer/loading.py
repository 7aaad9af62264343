"""What the UI process reads from disk: a checkpoint's codes and labels (ModelInfo) and a fit result
with its depth sequence and truth (FitReplay, read a few frames per UI frame).

Every path comes from npm_core.layout; checkpoints are read without building decoders (those
live in the mesh worker). Must not: import polyscope, or build decoders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from npm_core import bodies, layout, space
from npm_core.atomic import atomic_path
from npm_core.domain import DomainInfo, info_from_dict

from . import state as S

MAX_POINTS = 15000  # depth points shown per frame
INFO_CACHE_FORMAT = 2  # bump when ModelInfo's fields change (older cache files are then not read)


@dataclass
class ModelInfo:
    """What the UI knows of a checkpoint: codes, labels, motions, semantic maps."""

    path: Path
    shape_codes: np.ndarray  # [I, Ds]
    pose_codes: np.ndarray | None  # [T, Dp]
    shape_labels: list  # one display string per shape code
    pose_labels: list  # one display string per pose code
    motions: dict  # motion -> [pose rows sorted by frame]
    info: layout.CheckpointInfo
    semantics: object | None = None  # npm_core.semantics.Semantics when the checkpoint has its maps
    phenotypes: np.ndarray | None = None  # [I, A] of each shape code's identity (Anny's phenotypes or the
    # domain's attributes, in the order of semantics.names)
    angles: np.ndarray | None = None  # [T, J] joint angles (deg) of each pose code's frame
    note: str = ""  # why the semantic sliders are missing, if they are
    domain: DomainInfo = field(default_factory=DomainInfo)  # what the shapes are, units (config.yaml)

    @staticmethod
    def read(path, cache: bool = True) -> ModelInfo:
        """Read checkpoint `path` (layout.CheckpointError, a ValueError, when it is not one).

        cache: keep the codes and the parsed metadata under <cache root>/models/ (an .npz with no
        pickled objects), keyed by the checkpoint's path and its files' sizes and times, so a later
        start skips torch and the meta.yaml parse (seconds).
        """
        cached = _cache_file(path) if cache else None
        if cached is not None and cached.is_file():
            try:
                with np.load(cached, allow_pickle=False) as z:
                    info = _info_from_json(path, str(z["info"]))
                    pose = z["pose_codes"] if "pose_codes" in z.files else None
                    return ModelInfo._build(path, info, z["shape_codes"], pose)
            except Exception:  # damaged or from another version: read the checkpoint
                pass
        from npm_core.models.checkpoint import load_codes

        info = layout.read_checkpoint_info(path)
        shape_t, pose_t = load_codes(path)
        shape_codes, pose_codes = shape_t.numpy(), None if pose_t is None else pose_t.numpy()
        if cached is not None:
            arrays = {"shape_codes": shape_codes, "info": np.array(_info_to_json(info))}
            if pose_codes is not None:
                arrays["pose_codes"] = pose_codes
            try:
                with atomic_path(cached) as tmp:
                    np.savez(tmp, **arrays)
            except Exception:  # a cache that cannot be written only costs time
                pass
        return ModelInfo._build(path, info, shape_codes, pose_codes)

    @staticmethod
    def _build(path, info: layout.CheckpointInfo, shape_codes: np.ndarray, pose_codes: np.ndarray | None) -> ModelInfo:
        sl = info.shape_labels if len(info.shape_labels) == len(shape_codes) else []
        pl = info.pose_labels if pose_codes is not None and len(info.pose_labels) == len(pose_codes) else []
        m = ModelInfo(
            Path(path),
            shape_codes,
            pose_codes,
            [S.shape_label(i, sl[i] if sl else None) for i in range(len(shape_codes))],
            [] if pose_codes is None else [S.pose_label(i, pl[i] if pl else None) for i in range(len(pose_codes))],
            _motions(info, pose_codes, pl),
            info,
        )
        m.domain = info_from_dict(info.config.get("domain"))
        m.semantics, m.note = _read_semantics(path)
        if sl and all(label.phenotypes for label in sl):
            m.phenotypes = np.concatenate([bodies.check_phenotypes(label.phenotypes) for label in sl])
        elif sl and all(label.attributes for label in sl):
            from npm_core.semantics import attribute_array

            names = m.semantics.names if m.semantics is not None else sorted(sl[0].attributes)  # semantics' order
            if all(set(names) <= set(label.attributes) for label in sl):
                m.phenotypes = np.concatenate([attribute_array(label.attributes, names) for label in sl])
        if pl and all(label.angles is not None for label in pl):
            m.angles = np.array([label.angles for label in pl], np.float64)
        return m


def read_domain(checkpoint) -> DomainInfo:
    """The domain in a checkpoint's config.yaml (Anny bodies when it names none or cannot be read)."""
    try:
        return info_from_dict(layout.read_checkpoint_config(checkpoint).get("domain"))
    except (OSError, ValueError):
        return DomainInfo()


def _info_to_json(info: layout.CheckpointInfo) -> str:
    d = dataclasses.asdict(info)
    d.pop("path")
    return json.dumps(d)


def _info_from_json(path, text: str) -> layout.CheckpointInfo:
    d = json.loads(text)
    d["shape_labels"] = [layout.ShapeCodeLabel(**x) for x in d["shape_labels"]]
    d["pose_labels"] = [layout.PoseCodeLabel(**x) for x in d["pose_labels"]]
    return layout.CheckpointInfo(path=Path(path), **d)


def _cache_file(path) -> Path | None:
    """<cache root>/models/<hash>.npz for checkpoint `path` as its files are now (None: not a checkpoint)."""
    d = Path(path)
    files = [layout.checkpoint_config_path(d), layout.checkpoint_meta_path(d), layout.checkpoint_semantics_path(d)]
    files += [layout.checkpoint_stage_path(d, s) for s in layout.STAGES]
    stamp = [INFO_CACHE_FORMAT, str(d.resolve())]
    for f in files:
        try:
            st = f.stat()
            stamp.append((f.name, st.st_size, st.st_mtime_ns))
        except OSError:
            stamp.append((f.name, None))
    if stamp[2][1] is None:
        return None
    return layout.cache_root() / "models" / (hashlib.sha256(repr(stamp).encode()).hexdigest() + ".npz")


def _motions(info, pose_codes, labels) -> dict:
    """motion -> pose rows, clip after clip (a clip: one identity's frames of the motion, in frame
    order), so playing a motion's rows plays whole clips; rows without a motion form 'unlabelled'."""
    if pose_codes is None:
        return {}
    motions, first = {}, {}
    for motion, rows in (info.motions if labels else {}).items():
        for i in rows:
            first.setdefault((motion, labels[i].shape_index), i)
        motions[motion] = sorted(rows, key=lambda i: (first[motion, labels[i].shape_index], labels[i].frame or 0, i))
    named = {i for rows in motions.values() for i in rows}
    rest = [i for i in range(len(pose_codes)) if i not in named]
    return {**motions, "unlabelled": rest} if rest else motions


def _read_semantics(path):
    from npm_core import semantics

    f = layout.checkpoint_semantics_path(path)
    if not f.exists():
        return None, f"no {f.name}: run `npms semantics --checkpoint {path}` for semantic sliders"
    try:
        return semantics.load(f), ""
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{f}: unreadable ({e}); rerun `npms semantics --checkpoint {path}`"


class FitReplay:
    """A fit result beside its depth sequence and truth, every frame held in memory: posed fitted
    vertices, truth vertices, depth points and per-vertex errors, read step by step (load_step)
    so the window stays live. Units: metres, world = canonical axes."""

    def __init__(self, path):
        self.path = Path(path)
        self.fit = layout.read_fit(self.path)  # FitResultError (a ValueError) on a bad directory
        self.frames = len(self.fit.pose_codes)
        self.fps = 30.0
        self.posed = self.faces = self.gt = self.gt_faces = None  # [T, V, 3], [F, 3], [T, Vg, 3], [Fg, 3]
        self.points = None  # [T, N, 3] depth points the fit used (N the same in every frame)
        self.removed = None  # [T, M, 3] depth points segmentation removed (floor, walls, objects), if any
        self.kept_fraction = None  # [T] share of the measured pixels segmentation kept
        # the fitted body orientation: yaw and tilt [T] degrees, and an arrow along the body's front
        self.yaw_deg, self.tilt_deg = space.yaw_tilt_deg(self.fit.rotation)
        self.facing = None  # [T, V, 3], [F, 3]: the arrow, drawn from the body's centre
        self.errors = None  # [T, V] metres, distance to the nearest truth vertex
        self.metrics: dict = {k: np.asarray(v, np.float64) for k, v in self.fit.losses.items()}
        self.metrics.update(read_eval(layout.fit_metrics_path(self.path), self.frames))
        self.fraction, self.status, self.done = 0.0, "reading meshes", False
        self.warning = ""
        self._steps = self._load()

    def _load(self):
        from npm_core import compare

        _, posed, self.faces = self.fit.meshes()
        self.posed = np.asarray(posed, np.float32)
        self.frames = len(self.posed)
        # sized to the fitted subject: fit.yaml records the model's units (0.4 per metre for bodies)
        size = space.METRES_TO_MODEL / float(self.fit.meta.get("model_per_metre", space.METRES_TO_MODEL))
        self.facing = facing_arrows(self.posed.mean(1), np.asarray(self.fit.rotation[: self.frames]), size)
        self.metrics["body yaw (deg)"] = self.yaw_deg[: self.frames]
        self.fraction, self.status = 0.3, "reading depth sequence"
        yield
        try:
            sdir = layout.fit_sequence_dir(self.path)
        except ValueError as e:
            self.warning = f"{e}: showing the fit only"
        else:
            from npm_core.data.capture import read_segmentation
            from npm_core.data.depth import read_sequence

            seq = read_sequence(sdir)
            self.fps = float(seq.camera.fps or 30.0)
            n = min(len(seq), self.frames)
            kept = read_segmentation(sdir, n)  # what the fit's segmentation kept, when it removed anything
            centre = self.posed.reshape(-1, 3).mean(0)
            if kept is None:
                self.points = fixed_count([seq.points(t) for t in range(n)], MAX_POINTS, centre)
            else:
                depths = seq.depths[:n]
                self.points = fixed_count(
                    [seq.camera.backproject(np.where(kept[t], depths[t], 0)) for t in range(n)], MAX_POINTS, centre
                )
                removed = [seq.camera.backproject(np.where(kept[t], 0, depths[t])) for t in range(n)]
                if any(len(p) for p in removed):
                    self.removed = fixed_count(removed, MAX_POINTS, centre)
                measured = depths > 0
                self.kept_fraction = (kept & measured).sum((1, 2)) / np.maximum(measured.sum((1, 2)), 1)
            if seq.gt_vertices is not None:
                self.gt, self.gt_faces = np.asarray(seq.gt_vertices, np.float32), np.asarray(seq.gt_faces)
        yield
        if self.gt is not None:
            self.errors = np.zeros(self.posed.shape[:2], np.float32)
            for t in range(min(self.frames, len(self.gt))):
                self.errors[t] = compare.vertex_error(self.posed[t], self.gt[t])
                self.fraction, self.status = 0.4 + 0.6 * (t + 1) / self.frames, f"vertex errors {t + 1}/{self.frames}"
                yield
            self.metrics["mean vertex error (mm)"] = self.errors.mean(1) * 1000.0
        self.fraction, self.status, self.done = 1.0, "loaded", True

    def load_step(self, budget_s: float = 0.02) -> None:
        """Advance the load for about budget_s seconds (called once per UI frame)."""
        t = time.perf_counter()
        while not self.done and time.perf_counter() - t < budget_s:
            next(self._steps, None)

    def error_range(self) -> float:
        from npm_core.compare import colour_range

        return colour_range(self.errors)


def facing_arrows(centres: np.ndarray, rotation: np.ndarray, size: float = 1.0):
    """An arrow mesh per frame from each centre [T, 3] (metres) along the subject's front, R_t (0, 0, 1):
    (vertices [T, V, 3], faces [F, 3]); 0.45 m long for a body (size 1), scaled by `size` for
    subjects of another size (scene.domain_scale)."""
    import trimesh

    length = 0.45 * size
    shaft = trimesh.creation.cylinder(0.012 * size, 0.75 * length, sections=12)
    shaft.apply_translation([0, 0, 0.375 * length])
    head = trimesh.creation.cone(0.035 * size, 0.25 * length, sections=12)
    head.apply_translation([0, 0, 0.75 * length])
    arrow = trimesh.util.concatenate([shaft, head])  # along +z from the origin
    v = np.asarray(arrow.vertices, np.float32)
    return np.einsum("tij,vj->tvi", rotation.astype(np.float32), v) + centres[:, None], np.asarray(arrow.faces)


def fixed_count(frames: list, n_max: int, fill, seed: int = 0) -> np.ndarray:
    """Per-frame point sets [N_t, 3] -> [T, N, 3] with one N for all frames (N = min(n_max, max N_t)),
    so a point cloud moves in place: frames with more points keep a random N of them, frames with
    fewer repeat theirs, an empty frame puts all N at `fill` [3]."""
    rng = np.random.default_rng(seed)
    n = min(n_max, max([len(p) for p in frames], default=0)) or 1
    out = np.empty((len(frames), n, 3), np.float32)
    for t, p in enumerate(frames):
        p = np.asarray(p, np.float32)
        if len(p) == 0:
            out[t] = np.asarray(fill, np.float32)
        elif len(p) >= n:
            out[t] = p[rng.permutation(len(p))[:n]]
        else:
            out[t] = p[np.arange(n) % len(p)]
    return out


def read_eval(path: Path, frames: int) -> dict:
    """Per-frame IoU and Chamfer-L2 from `npms eval --json`, if that file is there and has `frames` entries."""
    try:
        d = json.loads(Path(path).read_text())
        return {
            name: np.asarray(d[key], np.float64)
            for key, name in (("iou", "IoU"), ("chamfer_l2", "Chamfer-L2"))
            if len(d.get(key, [])) == frames
        }
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # absent or not an eval file: the plot shows losses and vertex errors only
