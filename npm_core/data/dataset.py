"""The on-disk training set: built once from a domain source, loaded as tensors.

Two sources feed one builder (write_dataset): Anny bodies (build: the cache directory
<cache>/datasets/<config-hash>/, layout.py) and a folder of the user's registered meshes
(data/meshes.py, `npms data import`, any directory). The arrays:
  canonical.npy   [I, V, 3]  rest-pose vertices of every identity (model units)
  faces.npy       [F, 3]     the domain's shared triangles
  sdf_points.npy  [I, N, 3], sdf_values.npy [I, N]  (near-surface columns first)
  flow_face.npy [I, S], flow_bary.npy [I, S, 3], flow_offset.npy [I, S], flow_sigma.npy [S]
  posed.npy       [T, V, 3]  training frames (model units; Anny: pelvis-centred)
  test_posed.npy  [U, V, 3]  held-out frames: test motions on train identities + test identities
with identities.yaml (id, split, labels such as phenotypes or attributes), frames.yaml /
test_frames.yaml (identity index, motion, frame, labels), domain.yaml (domain.DomainInfo: units,
transform, attribute and joint names) and DONE written last. The whole directory is built under a
temporary name and renamed when complete, so an interrupted build never leaves one that looks complete.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from .. import layout
from ..atomic import atomic_dir, write_text_atomic
from ..config import DataConfig, FlowConfig, SdfConfig, save
from ..domain import DomainInfo, DomainSource, info_from_dict
from .flow import flow_sample_set
from .samples import FlowSamples, ShapeSamples
from .sdf import sdf_samples


def _tmp(path: Path) -> Path:
    """Where an array is written before it is renamed to `path`."""
    return path.with_name(f".{path.name}.tmp.npy")


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(_tmp(path), array)
    os.replace(_tmp(path), path)


@dataclass
class ImportConfig:
    """How a mesh folder becomes a dataset (data/meshes.py; saved as the dataset's config.yaml)."""

    sdf: SdfConfig = field(default_factory=SdfConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    margin: float = 0.1  # model units left free on every side of the canonical meshes' bounding box
    test_fraction: float = 0.2  # default split when the folder has no split.yaml
    split_seed: int = 0


# ------------------------------------------------------------------- Anny bodies


def _check_motions(cfg: DataConfig) -> None:
    from .. import bodies

    for name in cfg.train_motions + cfg.test_motions:
        bodies.motion(name)  # raises with the list of known motions
    both = set(cfg.train_motions) & set(cfg.test_motions)
    if both:
        raise ValueError(f"motions {sorted(both)} are in both train_motions and test_motions")


def anny_info() -> DomainInfo:
    from .. import bodies

    return DomainInfo(attributes=list(bodies.PHENOTYPES), joints=list(bodies.JOINT_NAMES))


class AnnySource:
    """Anny bodies of a DataConfig as a DomainSource: sampled identities, random poses and motions."""

    def __init__(self, cfg: DataConfig):
        from .. import bodies

        _check_motions(cfg)
        self.info = anny_info()
        if cfg.surface not in bodies.SURFACES:
            raise ValueError(f"data.surface: expected one of {bodies.SURFACES}, got {cfg.surface!r}")
        self.surface = cfg.surface
        idents = bodies.identities_of(cfg.identities)
        self.phenotypes = bodies.phenotype_array(idents)
        self.identities = [
            {"id": x.id, "split": x.split, "age_years": round(x.age_years, 2), "phenotypes": x.phenotypes}
            for x in idents
        ]
        train = [i for i, x in enumerate(idents) if x.split == "train"]
        test = [i for i, x in enumerate(idents) if x.split == "test"]
        tail = [i for i, x in enumerate(idents) if x.split == "tail"]
        pc = cfg.poses
        rng = np.random.default_rng(pc.seed)
        rand_ident = rng.choice(train, size=pc.random_frames)
        rand_angles = bodies.sample_poses(pc.random_frames, pc.seed, pc.spread)
        self.frames = [_anny_frame(i, "random", k, a) for k, (i, a) in enumerate(zip(rand_ident, rand_angles))]
        movers = rng.choice(train, size=min(pc.motion_identities, len(train)), replace=False)
        self.frames += _motion_frames(movers, cfg.train_motions, pc.motion_stride)
        self.test_frames = _motion_frames(movers[:4], cfg.test_motions, 2) + _motion_frames(
            test[:8], cfg.test_motions + cfg.train_motions[:1], 2
        )
        self.test_frames += _motion_frames(tail, cfg.test_motions, 4)

    def faces(self):
        from .. import bodies

        return bodies.body_faces(self.surface)

    def canonical(self):
        from .. import bodies

        canonical = bodies.body_meshes(self.phenotypes)
        if bodies.space.outside_cube(canonical).any():
            raise ValueError("some canonical bodies leave the cube [-0.5, 0.5]^3; narrow the identity distribution")
        return canonical

    def posed(self, frames):
        from .. import bodies

        return bodies.body_meshes(
            self.phenotypes[[f["identity"] for f in frames]],
            np.stack([f["angles"] for f in frames]),
            root_yaw_deg=np.array([f["root_yaw"] for f in frames]),
        )


def _anny_frame(i, motion, frame, angles, yaw=0.0):
    return {
        "identity": int(i),
        "motion": motion,
        "frame": int(frame),
        "angles": np.asarray(angles),
        "root_yaw": float(yaw),
    }


def _motion_frames(identity_indices, motions, stride):
    """Frames of `motions` performed by the identities, every `stride`-th."""
    from .. import bodies

    rows = []
    for i in identity_indices:
        for name in motions:
            m = bodies.motion(name)
            rows += [_anny_frame(i, name, f, m.angles[f], m.root_yaw[f]) for f in range(0, m.num_frames, stride)]
    return rows


def build(cfg: DataConfig, root: Path | None = None, progress=None, workers: int = 2) -> Path:
    """Build the Anny dataset for `cfg` into the cache (no-op if already built). `progress(stage, done, total)`."""
    _check_motions(cfg)
    out = layout.dataset_dir(cfg, root)
    if layout.is_dataset(out):
        return out
    return write_dataset(out, AnnySource(cfg), cfg.sdf, cfg.flow, cfg, progress, workers)


# ------------------------------------------------------------------- the builder


def _label(frame: dict) -> dict:
    """A frame's row of frames.yaml: everything but what only posing needs, angles rounded."""
    out = {k: v for k, v in frame.items() if k not in ("angles", "root_yaw")}
    if "angles" in frame:
        out["angles"] = [round(float(a), 3) for a in frame["angles"]]
    return out


def write_dataset(
    out: Path, src: DomainSource, sdf: SdfConfig, flow: FlowConfig, config, progress=None, workers: int = 2
) -> Path:
    """Build the dataset of a domain source into directory `out` (replaced if there), under a temporary
    name renamed at the end. `config` (a dataclass) is saved as config.yaml. Returns `out`."""
    out = Path(out)
    with atomic_dir(out) as work:
        n_near = _write_arrays(work, src, sdf, flow, progress or (lambda *a: None), workers)
        t0 = time.time()
        for name, rows in [("frames", src.frames), ("test_frames", src.test_frames)]:
            write_text_atomic(
                layout.dataset_frames_path(work, test=name == "test_frames"),
                yaml.safe_dump([_label(r) for r in rows], width=10_000, sort_keys=False),
            )
        write_text_atomic(layout.dataset_identities_path(work), yaml.safe_dump(src.identities, sort_keys=False))
        write_text_atomic(layout.dataset_domain_path(work), yaml.safe_dump(asdict(src.info), sort_keys=False))
        save(config, layout.dataset_config_path(work))
        write_text_atomic(
            layout.dataset_done_path(work),
            yaml.safe_dump(
                {"seconds": round(n_near[1] + time.time() - t0, 1), "n_near": n_near[0], "joints": src.info.joints}
            ),
        )
    return out


def _write_arrays(out: Path, src: DomainSource, sc: SdfConfig, fc: FlowConfig, report, workers: int):
    """canonical, faces, SDF, flow and posed arrays into `out`; returns (n_near, seconds)."""
    t0 = time.time()
    faces = np.asarray(src.faces())
    canonical = np.asarray(src.canonical(), np.float32)
    arr_path = functools.partial(layout.dataset_array_path, out)
    _save_npy(arr_path("canonical"), canonical)
    _save_npy(arr_path("faces"), faces.astype(np.int64))
    n = len(canonical)

    # --- SDF samples, one identity at a time (warp BVH queries), in worker processes
    pts = np.lib.format.open_memmap(_tmp(arr_path("sdf_points")), "w+", np.float32, (n, sc.samples, 3))
    val = np.lib.format.open_memmap(_tmp(arr_path("sdf_values")), "w+", np.float32, (n, sc.samples))
    jobs = [
        (canonical[i], faces, sc.samples, sc.near_fraction, sc.near_max_offset, 0.5, sc.seed * 100003 + i)
        for i in range(n)
    ]
    n_near = 0
    with _pool(workers) as pool:
        for i, (p, v, near) in enumerate(pool.imap(_sdf_job, jobs)):
            pts[i], val[i], n_near = p, v, near
            report("sdf samples", i + 1, n)
    pts.flush(), val.flush()
    del pts, val
    os.replace(_tmp(arr_path("sdf_points")), arr_path("sdf_points"))
    os.replace(_tmp(arr_path("sdf_values")), arr_path("sdf_values"))

    # --- flow sample sets (fixed per identity)
    sets = []
    for i in range(n):
        sets.append(flow_sample_set(canonical[i], faces, fc.samples_per_sigma, tuple(fc.sigmas), fc.seed * 100003 + i))
        report("flow samples", i + 1, n)
    for k, name in enumerate(["flow_face", "flow_bary", "flow_offset"]):
        _save_npy(arr_path(name), np.stack([s[k] for s in sets]).astype(np.int32 if k == 0 else np.float32))
    _save_npy(arr_path("flow_sigma"), sets[0][3])

    # --- posed frames, 64 at a time
    for name, rows in [("posed", src.frames), ("test_posed", src.test_frames)]:
        arr = np.lib.format.open_memmap(_tmp(arr_path(name)), "w+", np.float32, (len(rows), canonical.shape[1], 3))
        for s in range(0, len(rows), 64):
            chunk = rows[s : s + 64]
            arr[s : s + len(chunk)] = src.posed(chunk)
            report(f"{name} frames", s + len(chunk), len(rows))
        arr.flush()
        del arr
        os.replace(_tmp(arr_path(name)), arr_path(name))
    return n_near, time.time() - t0


def _sdf_job(args):
    torch.set_num_threads(1)
    return sdf_samples(*args[:5], bound=args[5], seed=args[6])


class _SerialPool:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False

    def imap(self, fn, jobs):
        return map(fn, jobs)


def _pool(workers: int):
    if workers <= 1:
        return _SerialPool()
    import multiprocessing as mp

    return mp.get_context("spawn").Pool(workers)


# ------------------------------------------------------------------------------ load


@dataclass
class Dataset:
    """A built dataset, arrays memory-mapped. Identity indices refer to `identities`."""

    path: Path
    config: DataConfig | ImportConfig  # Anny bodies | imported meshes
    identities: list[dict]
    frames: list[dict]
    test_frames: list[dict]
    n_near: int
    domain: DomainInfo

    def _npy(self, name):
        return np.load(layout.dataset_array_path(self.path, name), mmap_mode="r")

    def split(self, name: str) -> list[int]:
        return [i for i, x in enumerate(self.identities) if x["split"] == name]

    def faces(self) -> np.ndarray:
        """[F, 3] int64, shared by every mesh of the dataset."""
        path = layout.dataset_array_path(self.path, "faces")
        if not path.is_file():  # Anny datasets built before faces.npy was written
            from .. import bodies

            return bodies.faces()
        return np.load(path).astype(np.int64)

    def shape_code_labels(self) -> list[dict]:
        """meta.yaml labels of the shape codes (one per training identity, split order): identity and
        the identity's labels (Anny: phenotypes, age_years; imported meshes: attributes)."""
        return [
            {"identity": x["id"], **{k: v for k, v in x.items() if k not in ("id", "split")}}
            for x in (self.identities[i] for i in self.split("train"))
        ]

    def pose_code_labels(self) -> list[dict]:
        """meta.yaml labels of the pose codes (one per training frame): motion, frame, shape index, identity,
        and the frame's other labels (Anny: angles)."""
        row = {g: k for k, g in enumerate(self.split("train"))}
        return [
            {
                "motion": f["motion"],
                "frame": f["frame"],
                "shape_index": row[f["identity"]],
                "identity": self.identities[f["identity"]]["id"],
                **{k: v for k, v in f.items() if k not in ("motion", "frame", "identity")},
            }
            for f in self.frames
        ]

    def canonical(self, indices=None) -> np.ndarray:
        a = self._npy("canonical")
        return np.asarray(a if indices is None else a[indices])

    def shape_samples(self, indices: list[int]) -> ShapeSamples:
        """SDF samples of the identities `indices` (e.g. split('train')), in that order."""
        return ShapeSamples(
            torch.from_numpy(np.asarray(self._npy("sdf_points")[indices])),
            torch.from_numpy(np.asarray(self._npy("sdf_values")[indices])),
            self.n_near,
        )

    def flow_samples(self, test: bool = False) -> FlowSamples:
        """Flow samples of the training frames (or held-out frames). frame_shape indexes the
        rows of canonical_vertices, which are the training identities (split order), or for
        test=True all identities."""
        frames = self.test_frames if test else self.frames
        idents = list(range(len(self.identities))) if test else self.split("train")
        row = {g: k for k, g in enumerate(idents)}
        return FlowSamples(
            canonical_vertices=torch.from_numpy(self.canonical(idents)),
            posed_vertices=torch.from_numpy(np.array(self._npy("test_posed" if test else "posed"))),
            frame_shape=torch.tensor([row[f["identity"]] for f in frames], dtype=torch.long),
            faces=torch.from_numpy(self.faces()),
            face_index=torch.from_numpy(np.asarray(self._npy("flow_face")[idents]).astype(np.int64)),
            barycentric=torch.from_numpy(np.asarray(self._npy("flow_bary")[idents])),
            offset=torch.from_numpy(np.asarray(self._npy("flow_offset")[idents])),
            sigma_index=torch.from_numpy(np.array(self._npy("flow_sigma"))),
        )


def load(cfg: DataConfig, root: Path | None = None) -> Dataset:
    """The built Anny dataset of `cfg` in the cache."""
    path = layout.dataset_dir(cfg, root)
    if not layout.is_dataset(path):
        raise FileNotFoundError(f"{path}: dataset not built; run `npms data build` with this config first")
    return open_dataset(path)


def open_dataset(path) -> Dataset:
    """A built dataset directory: the Anny cache's or an imported one (`npms data import`)."""
    from ..config import load as load_cfg

    path = Path(path)
    if not layout.is_dataset(path):
        raise FileNotFoundError(
            f"{path}: not a built dataset (no {layout.dataset_done_path(path).name}; "
            f"expected the output of `npms data build` or `npms data import`)"
        )
    done = yaml.safe_load(layout.dataset_done_path(path).read_text())
    dom_path = layout.dataset_domain_path(path)
    info = info_from_dict(yaml.safe_load(dom_path.read_text())) if dom_path.is_file() else anny_info()
    cfg = load_cfg(ImportConfig if info.source == "meshes" else DataConfig, layout.dataset_config_path(path))
    return Dataset(
        path,
        cfg,
        yaml.safe_load(layout.dataset_identities_path(path).read_text()),
        yaml.safe_load(layout.dataset_frames_path(path).read_text()) or [],
        yaml.safe_load(layout.dataset_frames_path(path, test=True).read_text()) or [],
        done["n_near"],
        info,
    )
