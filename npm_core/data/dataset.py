"""The on-disk training set: build once into a cache keyed by the config hash, load as tensors.

The directory <cache>/datasets/<config-hash>/ and its file names are layout.py's; the arrays:
  canonical.npy   [I, V, 3]  rest-pose vertices of every identity (model units)
  sdf_points.npy  [I, N, 3], sdf_values.npy [I, N]  (near-surface columns first)
  flow_face.npy [I, S], flow_bary.npy [I, S, 3], flow_offset.npy [I, S], flow_sigma.npy [S]
  posed.npy       [T, V, 3]  training frames (pelvis-centred, model units)
  test_posed.npy  [U, V, 3]  held-out frames: test motions on train identities + test identities
with identities.yaml (phenotypes, split), frames.yaml / test_frames.yaml (motion labels) and
DONE written last (a directory without it is rebuilt). Each array is written to a temp file and renamed, so an interrupted build never leaves a
file that looks complete.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from .. import bodies, layout
from ..atomic import write_text_atomic
from ..config import DataConfig, save
from .flow import flow_sample_set
from .samples import FlowSamples, ShapeSamples
from .sdf import sdf_samples


def _tmp(path: Path) -> Path:
    """Where an array is written before it is renamed to `path`."""
    return path.with_name(f".{path.name}.tmp.npy")


def _save_npy(path: Path, array: np.ndarray) -> None:
    np.save(_tmp(path), array)
    os.replace(_tmp(path), path)


def _check_motions(cfg: DataConfig) -> None:
    for name in cfg.train_motions + cfg.test_motions:
        bodies.motion(name)  # raises with the list of known motions
    both = set(cfg.train_motions) & set(cfg.test_motions)
    if both:
        raise ValueError(f"motions {sorted(both)} are in both train_motions and test_motions")


def _frames_of(identity_indices, motions, stride):
    """(identity index, motion name, frame index, angles, yaw) rows for motions performed by identities."""
    rows = []
    for i in identity_indices:
        for name in motions:
            m = bodies.motion(name)
            for f in range(0, m.num_frames, stride):
                rows.append((int(i), name, f, m.angles[f], float(m.root_yaw[f])))
    return rows


def build(cfg: DataConfig, root: Path | None = None, progress=None, workers: int = 2) -> Path:
    """Build the dataset for `cfg` (no-op if already built). `progress(stage, done, total)`."""
    _check_motions(cfg)
    out = layout.dataset_dir(cfg, root)
    if layout.is_dataset(out):
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.time()
    report = progress or (lambda *a: None)

    ic = cfg.identities
    idents = bodies.sample_identities(ic.count, ic.seed, ic.test_fraction, ic.min_age_years, ic.max_age_years)
    ph = bodies.phenotype_array(idents)
    faces = bodies.faces()
    canonical = bodies.body_meshes(ph)
    if bodies.space.outside_cube(canonical).any():
        raise ValueError("some canonical bodies leave the cube [-0.5, 0.5]^3; narrow the identity distribution")
    arr_path = functools.partial(layout.dataset_array_path, out)
    _save_npy(arr_path("canonical"), canonical)
    train = [i for i, x in enumerate(idents) if x.split == "train"]
    test = [i for i, x in enumerate(idents) if x.split == "test"]

    # --- SDF samples, one identity at a time (warp BVH queries), in worker processes
    sc = cfg.sdf
    pts = np.lib.format.open_memmap(_tmp(arr_path("sdf_points")), "w+", np.float32, (len(idents), sc.samples, 3))
    val = np.lib.format.open_memmap(_tmp(arr_path("sdf_values")), "w+", np.float32, (len(idents), sc.samples))
    jobs = [(canonical[i], faces, sc.samples, sc.near_fraction, sc.near_max_offset, 0.5, sc.seed * 100003 + i)
            for i in range(len(idents))]
    n_near = 0
    with _pool(workers) as pool:
        for i, (p, v, near) in enumerate(pool.imap(_sdf_job, jobs)):
            pts[i], val[i], n_near = p, v, near
            report("sdf samples", i + 1, len(idents))
    pts.flush(), val.flush()
    del pts, val
    os.replace(_tmp(arr_path("sdf_points")), arr_path("sdf_points"))
    os.replace(_tmp(arr_path("sdf_values")), arr_path("sdf_values"))

    # --- flow sample sets (fixed per identity)
    fc = cfg.flow
    sets = []
    for i in range(len(idents)):
        sets.append(flow_sample_set(canonical[i], faces, fc.samples_per_sigma, tuple(fc.sigmas), fc.seed * 100003 + i))
        report("flow samples", i + 1, len(idents))
    for k, name in enumerate(["flow_face", "flow_bary", "flow_offset"]):
        _save_npy(arr_path(name), np.stack([s[k] for s in sets]).astype(np.int32 if k == 0 else np.float32))
    _save_npy(arr_path("flow_sigma"), sets[0][3])

    # --- posed frames: random poses of training identities + training motions
    pc = cfg.poses
    rng = np.random.default_rng(pc.seed)
    rand_ident = rng.choice(train, size=pc.random_frames)
    rand_angles = bodies.sample_poses(pc.random_frames, pc.seed)
    rows = [(int(i), "random", k, a, 0.0) for k, (i, a) in enumerate(zip(rand_ident, rand_angles))]
    movers = rng.choice(train, size=min(pc.motion_identities, len(train)), replace=False)
    rows += _frames_of(movers, cfg.train_motions, pc.motion_stride)
    test_rows = _frames_of(movers[:4], cfg.test_motions, 2) + _frames_of(test[:8], cfg.test_motions + cfg.train_motions[:1], 2)
    for name, rr in [("posed", rows), ("test_posed", test_rows)]:
        arr = np.lib.format.open_memmap(_tmp(arr_path(name)), "w+", np.float32, (len(rr), canonical.shape[1], 3))
        for s in range(0, len(rr), 64):
            chunk = rr[s : s + 64]
            arr[s : s + len(chunk)] = bodies.body_meshes(ph[[r[0] for r in chunk]], np.stack([r[3] for r in chunk]),
                                                         root_yaw_deg=np.array([r[4] for r in chunk]))
            report(f"{name} frames", s + len(chunk), len(rr))
        arr.flush()
        del arr
        os.replace(_tmp(arr_path(name)), arr_path(name))
        labels = [{"identity": r[0], "motion": r[1], "frame": r[2], "angles": [round(float(a), 3) for a in r[3]]} for r in rr]
        write_text_atomic(layout.dataset_frames_path(out, test=name == "test_posed"), yaml.safe_dump(labels, width=10_000))

    write_text_atomic(layout.dataset_identities_path(out), yaml.safe_dump(
        [{"id": x.id, "split": x.split, "age_years": round(x.age_years, 2), "phenotypes": x.phenotypes} for x in idents],
        sort_keys=False))
    save(cfg, layout.dataset_config_path(out))
    write_text_atomic(layout.dataset_done_path(out), yaml.safe_dump({"seconds": round(time.time() - t0, 1), "n_near": n_near,
                                                     "joints": bodies.JOINT_NAMES}))
    return out


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
    config: DataConfig
    identities: list[dict]
    frames: list[dict]
    test_frames: list[dict]
    n_near: int

    def _npy(self, name):
        return np.load(layout.dataset_array_path(self.path, name), mmap_mode="r")

    def split(self, name: str) -> list[int]:
        return [i for i, x in enumerate(self.identities) if x["split"] == name]

    def shape_code_labels(self) -> list[dict]:
        """meta.yaml labels of the shape codes (one per training identity, split order)."""
        return [{"identity": self.identities[i]["id"], "phenotypes": self.identities[i]["phenotypes"],
                 "age_years": self.identities[i]["age_years"]} for i in self.split("train")]

    def pose_code_labels(self) -> list[dict]:
        """meta.yaml labels of the pose codes (one per training frame): motion, frame, shape index, angles."""
        row = {g: k for k, g in enumerate(self.split("train"))}
        return [{"motion": f["motion"], "frame": f["frame"], "shape_index": row[f["identity"]],
                 "identity": self.identities[f["identity"]]["id"], "angles": f["angles"]} for f in self.frames]

    def canonical(self, indices=None) -> np.ndarray:
        a = self._npy("canonical")
        return np.asarray(a if indices is None else a[indices])

    def shape_samples(self, indices: list[int]) -> ShapeSamples:
        """SDF samples of the identities `indices` (e.g. split('train')), in that order."""
        return ShapeSamples(torch.from_numpy(np.asarray(self._npy("sdf_points")[indices])),
                            torch.from_numpy(np.asarray(self._npy("sdf_values")[indices])), self.n_near)

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
            frame_shape=torch.tensor([row[f["identity"]] for f in frames]),
            faces=torch.from_numpy(bodies.faces()),
            face_index=torch.from_numpy(np.asarray(self._npy("flow_face")[idents]).astype(np.int64)),
            barycentric=torch.from_numpy(np.asarray(self._npy("flow_bary")[idents])),
            offset=torch.from_numpy(np.asarray(self._npy("flow_offset")[idents])),
            sigma_index=torch.from_numpy(np.array(self._npy("flow_sigma"))),
        )


def load(cfg: DataConfig, root: Path | None = None) -> Dataset:
    path = layout.dataset_dir(cfg, root)
    if not layout.is_dataset(path):
        raise FileNotFoundError(f"{path}: dataset not built; run `npms data build` with this config first")
    return open_dataset(path)


def open_dataset(path) -> Dataset:
    from ..config import load as load_cfg

    path = Path(path)
    done = yaml.safe_load(layout.dataset_done_path(path).read_text())
    return Dataset(path, load_cfg(DataConfig, layout.dataset_config_path(path)),
                   yaml.safe_load(layout.dataset_identities_path(path).read_text()),
                   yaml.safe_load(layout.dataset_frames_path(path).read_text()),
                   yaml.safe_load(layout.dataset_frames_path(path, test=True).read_text()), done["n_near"])
