"""On-disk layouts: the one module that names the files of a checkpoint, a fit result, a depth
sequence and the dataset cache, with readers of their metadata that need no torch.

Checkpoint <ckpt>/ (e.g. checkpoints/body-v1/)
    config.yaml          {"model": ModelConfig, + sections such as preset, data, shape_training, pose_training,
                          domain (domain.DomainInfo), dataset (an imported dataset, relative to <ckpt>), import,
                          tuned_from (`npms tune-shape`: the source checkpoint and any grown sizes)}
    meta.yaml            {"shape": {"num_codes", "code_dim", "codes": [{identity, phenotypes, age_years}],
                                    "metrics", "training_s"},
                          "pose":  {"num_codes", "code_dim", "codes": [{motion, frame, shape_index, identity,
                                    angles}], ...}, "versions"}
    shape.pt, pose.pt    {"format", "stage", "decoder": state dict, "codes": [K, D]} (models/checkpoint.py)
    train_<stage>.state.pt   resumable training state (train.py)
    progress.jsonl       training events, one JSON line each (progress.py)
    semantics.npz        semantic maps and PCA (semantics.py, `npms semantics`)
Fit result <fit>/
    fit.yaml             {"checkpoint", "sequence": the depth sequence's path relative to <fit>, "frames",
                          "interrupted", "timings", "mesh_resolution", "config": FitConfig}
    fit.npz              shape_code [Ds], pose_codes [T, Dp], translation [T, 3] (model units), rotation [T, 3, 3]
                         (world from canonical: posed = rotation (x + displacement) + translation; results
                         written before rotations existed have none: identity), loss_<name> [T]
    canonical.ply        the fitted canonical mesh (metres)
    meshes/              posed meshes (metres, shared faces): 000000.ply ... or meshes.npz (compact)
    metrics.json         optional: `npms eval --json <fit>/metrics.json`
    progress.jsonl       one JSON line per frame as `npms fit` tracks it (FIT_PROGRESS_FIELDS), appended
                         and flushed; started afresh by each run and kept in the result (the earlier
                         result's log waits in .<fit>.progress.kept beside it until the run completes)
Depth sequence <seq>/
    camera.json          {fx, fy, cx, cy, width, height, depth_scale, fps, world_from_camera (4x4, optional)}
    depth/000000.png     uint16, metres = value / depth_scale, 0 = no measurement (or .npy float32 metres)
    gt/000000.ply        optional ground-truth meshes (one topology), metres; or gt/meshes.npz (compact:
                         vertices [T, V, 3] float16 + faces [F, 3])
    masks/000000.png     optional per-frame subject masks, nonzero = subject (data/capture.py)
    capture.json         optional capture hints, e.g. {"box": [x0, y0, x1, y1]} (data/capture.py)
    segmentation/        what segmentation kept: 000000.png (255 = kept), frames.json, centre.json
Mesh cache <cache>/meshes/           extracted canonical meshes, named and kept by mesh/cache.py
Dataset <cache>/datasets/<config hash>/ (Anny bodies, `npms data build`; cache = $NPM_CACHE_DIR,
default ~/.cache/npm_explorer) or any directory (`npms data import`; the same files)
    config.yaml          DataConfig (Anny) or ImportConfig (imported meshes): what was built
    identities.yaml      [{id, split, phenotypes, age_years}] (Anny) or [{id, split, attributes}] (imported)
    frames.yaml, test_frames.yaml   [{identity (index), motion, frame, ...}] training / held-out frames
    domain.yaml          domain.DomainInfo: name, source, units, transform to model units, attribute and
                         joint names (absent in Anny datasets built before it: Anny bodies)
    canonical.npy, faces.npy, sdf_points.npy, sdf_values.npy, flow_face.npy, flow_bary.npy, flow_offset.npy,
    flow_sigma.npy, posed.npy, test_posed.npy   (DATASET_ARRAYS; shapes in data/dataset.py)
    DONE                 written last; built under a temporary name and renamed when complete
Mesh folder <dir>/ (a user's registered meshes of one domain, read by `npms data import`, data/meshes.py)
    domain.yaml          {name, units: metres per file unit (default 1), up: +y (default) | +z | -z | +x | ...}
    <identity>/canonical.ply   the identity's rest mesh, watertight; every mesh of the folder has its
                         vertex count, face count and faces (.ply, .obj, .off or .stl)
    <identity>/poses/<pose>.ply   posed meshes of the identity, same vertex order (any number)
    attributes.yaml      optional {identity: {name: number}} (or attributes.json): semantic sliders
    sequences.yaml       optional {sequence: {identity: id, poses: [pose, ...]}}: ordered frames
    split.yaml           optional {train: [ids], test: [ids], test_sequences: [names]}; default a seeded
                         80/20 split of identities, no held-out sequence

Paths inside a result are relative to the result (fit.yaml's sequence), so a result folder and
its sequence can move together and open from any working directory.

Must not: import torch, build decoders, or know what the arrays mean beyond their names.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from .config import write_text_atomic

STAGES = ("shape", "pose")
DATASET_ARRAYS = (
    "canonical",
    "faces",
    "sdf_points",
    "sdf_values",
    "flow_face",
    "flow_bary",
    "flow_offset",
    "flow_sigma",
    "posed",
    "test_posed",
)
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: meta.yaml of body-v1 is 2 MB
FIT_PROGRESS_FIELDS = {
    "frame": "index of the tracked frame (0-based)",
    "frames": "frames in the sequence",
    "shape_code": "[Ds] the shape code the frame was tracked with",
    "pose_code": "[Dp] the frame's pose code",
    "translation": "[3] the frame's translation, model units",
    "rotation": "[3, 3] the frame's body rotation, world from canonical",
    "energy": "the frame's last tracking energy",
    "time": "unix time",
}


class CheckpointError(ValueError):
    """A checkpoint directory or file that is missing, damaged or does not match its config."""


class FitResultError(ValueError):
    """A fit-result directory that is missing, incomplete or names a sequence that is not there."""


# ------------------------------------------------------------------------- checkpoint


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")


def checkpoint_config_path(d) -> Path:
    return Path(d) / "config.yaml"


def checkpoint_meta_path(d) -> Path:
    return Path(d) / "meta.yaml"


def checkpoint_stage_path(d, stage: str) -> Path:
    """<d>/shape.pt or <d>/pose.pt."""
    _check_stage(stage)
    return Path(d) / f"{stage}.pt"


def checkpoint_train_state_path(d, stage: str) -> Path:
    _check_stage(stage)
    return Path(d) / f"train_{stage}.state.pt"


def checkpoint_progress_path(d) -> Path:
    return Path(d) / "progress.jsonl"


def checkpoint_semantics_path(d) -> Path:
    return Path(d) / "semantics.npz"


def is_checkpoint(d) -> bool:
    """A directory with a config and a trained shape stage (what load_model needs)."""
    return checkpoint_config_path(d).is_file() and checkpoint_stage_path(d, "shape").is_file()


def list_checkpoints(folder) -> list[Path]:
    """The checkpoint directories directly inside `folder`, sorted by name ([] if it is not a directory)."""
    p = Path(folder)
    return sorted(d for d in p.iterdir() if d.is_dir() and is_checkpoint(d)) if p.is_dir() else []


def read_yaml_mapping(path: Path, what: str, error: type[ValueError] = CheckpointError) -> dict:
    """A YAML file holding a mapping; `error` naming the file and `what` it should hold otherwise."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: file not found (expected {what})")
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a mapping ({what})")
    return data


def read_checkpoint_config(d) -> dict:
    """config.yaml as a dict with a 'model' section (plain values; models/checkpoint.py types them)."""
    d = Path(d)
    if not d.is_dir():
        raise CheckpointError(f"{d}: checkpoint directory not found")
    data = read_yaml_mapping(checkpoint_config_path(d), "the checkpoint config with a 'model' section")
    if not isinstance(data.get("model"), dict):
        raise CheckpointError(f"{checkpoint_config_path(d)}: no 'model' section")
    return data


def read_checkpoint_meta(d) -> dict:
    """meta.yaml ({} when the checkpoint has none)."""
    path = checkpoint_meta_path(d)
    return read_yaml_mapping(path, "checkpoint metadata") if path.exists() else {}


@dataclass(frozen=True)
class ShapeCodeLabel:
    """What one shape code was trained on (meta.yaml shape.codes[i])."""

    identity: str | None = None
    phenotypes: dict = field(default_factory=dict)
    age_years: float | None = None
    attributes: dict = field(default_factory=dict)  # an imported domain's per-identity numbers


@dataclass(frozen=True)
class PoseCodeLabel:
    """What one pose code was trained on (meta.yaml pose.codes[i])."""

    motion: str | None = None
    frame: int | None = None
    shape_index: int | None = None
    identity: str | None = None
    angles: list | None = None  # joint angles in degrees (bodies.JOINT_NAMES order)

    @property
    def name(self) -> str:
        """'walk 12', 'fist' (a pose with no frame number), or '' when unlabelled."""
        if self.motion is None:
            return ""
        return f"{self.motion} {self.frame}" if self.frame is not None else str(self.motion)


@dataclass
class CheckpointInfo:
    """A checkpoint's metadata, read without torch: sizes, labels of every code, training records."""

    path: Path
    config: dict  # config.yaml: "model" and the other sections
    num_shape_codes: int | None  # None: meta.yaml does not say (load the codes to know)
    shape_code_dim: int | None
    shape_labels: list[ShapeCodeLabel]  # one per shape code, or [] when unlabelled
    has_pose: bool  # pose.pt is there
    num_pose_codes: int | None
    pose_code_dim: int | None
    pose_labels: list[PoseCodeLabel]  # one per pose code, or [] when unlabelled
    has_semantics: bool  # semantics.npz is there
    meta: dict  # the whole meta.yaml (metrics, training_s, versions)

    @property
    def identities(self) -> list[str | None]:
        """The identity id of each shape code (None where unlabelled)."""
        return [label.identity for label in self.shape_labels]

    @property
    def frame_names(self) -> list[str]:
        """'motion frame' of each pose code ('' where unlabelled)."""
        return [label.name for label in self.pose_labels]

    @property
    def motions(self) -> dict[str, list[int]]:
        """motion -> pose-code rows of that motion in frame order; motions sorted by name, unlabelled codes left out."""
        out: dict[str, list[int]] = {}
        for i, label in enumerate(self.pose_labels):
            if label.motion is not None:
                out.setdefault(label.motion, []).append(i)
        return {k: sorted(out[k], key=lambda i: (self.pose_labels[i].frame or 0, i)) for k in sorted(out)}


def _labels(cls, entries, where: str) -> list:
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CheckpointError(f"{where}: expected a list of mappings")
    known = set(cls.__dataclass_fields__)
    return [cls(**{k: v for k, v in e.items() if k in known}) for e in entries]


def read_checkpoint_info(d) -> CheckpointInfo:
    """Metadata of checkpoint `d` from config.yaml and meta.yaml; no decoder is built, torch is not
    imported. CheckpointError names the file when the directory is not a readable checkpoint."""
    d = Path(d)
    config = read_checkpoint_config(d)
    if not checkpoint_stage_path(d, "shape").is_file():
        raise CheckpointError(
            f"{checkpoint_stage_path(d, 'shape')}: file not found (a checkpoint needs a trained shape stage)"
        )
    meta = read_checkpoint_meta(d)
    where = checkpoint_meta_path(d)
    shape, pose = meta.get("shape") or {}, meta.get("pose") or {}
    has_pose = checkpoint_stage_path(d, "pose").is_file()
    shape_labels = _labels(ShapeCodeLabel, shape.get("codes"), f"{where} shape.codes")
    pose_labels = _labels(PoseCodeLabel, pose.get("codes"), f"{where} pose.codes") if has_pose else []
    return CheckpointInfo(
        path=d,
        config=config,
        num_shape_codes=shape.get("num_codes", len(shape_labels) or None),
        shape_code_dim=shape.get("code_dim"),
        shape_labels=shape_labels,
        has_pose=has_pose,
        num_pose_codes=(pose.get("num_codes", len(pose_labels) or None) if has_pose else None),
        pose_code_dim=pose.get("code_dim") if has_pose else None,
        pose_labels=pose_labels,
        has_semantics=checkpoint_semantics_path(d).is_file(),
        meta=meta,
    )


# ------------------------------------------------------------------------ fit result


def fit_yaml_path(d) -> Path:
    return Path(d) / "fit.yaml"


def fit_npz_path(d) -> Path:
    return Path(d) / "fit.npz"


def fit_canonical_path(d) -> Path:
    return Path(d) / "canonical.ply"


def fit_meshes_dir(d) -> Path:
    return Path(d) / "meshes"


def fit_metrics_path(d) -> Path:
    return Path(d) / "metrics.json"


def fit_progress_path(d) -> Path:
    return Path(d) / "progress.jsonl"


def fit_kept_progress_path(d) -> Path:
    """Where an earlier result's progress log waits while a new fit runs into the same folder."""
    d = Path(d)
    return d.with_name(f".{d.name}.progress.kept")


def set_aside_fit_progress(d) -> None:
    """Before a new fit runs into d: an earlier result's progress log waits aside, so the run's
    frames start a log of their own."""
    if is_fit(d) and fit_progress_path(d).is_file():
        os.replace(fit_progress_path(d), fit_kept_progress_path(d))


def end_set_aside_fit_progress(d, completed: bool) -> None:
    """After the run: a completed run's log is the result's (the earlier one is dropped); after a
    failed one the earlier log comes back beside the earlier result, which is still in place."""
    kept = fit_kept_progress_path(d)
    if completed:
        kept.unlink(missing_ok=True)
    elif kept.is_file():
        os.replace(kept, fit_progress_path(d))


FIT_FILES = ("fit.yaml", "fit.npz", "canonical.ply")  # what makes a directory a fit result


def is_fit(d) -> bool:
    return all((Path(d) / name).is_file() for name in FIT_FILES)


def relative_sequence_path(fit_dir, sequence_dir) -> str:
    """The path fit.yaml stores: sequence_dir relative to fit_dir, with '/' separators."""
    try:
        rel = os.path.relpath(os.path.abspath(sequence_dir), os.path.abspath(fit_dir))
    except ValueError:  # another drive (Windows): no relative path exists
        return Path(os.path.abspath(sequence_dir)).as_posix()
    return Path(rel).as_posix()


def fit_sequence_dir(fit_dir) -> Path:
    """The depth-sequence directory of a fit result: fit.yaml's `sequence` resolved against the fit
    directory (absolute paths, written by older versions, are used when they exist).
    FitResultError when fit.yaml names none or it is not a depth sequence."""
    fit_dir = Path(fit_dir)
    path = fit_yaml_path(fit_dir)
    meta = read_yaml_mapping(path, "fit metadata", FitResultError)
    name = meta.get("sequence")
    if not isinstance(name, str) or not name:
        raise FitResultError(f"{path}: no 'sequence' (expected the depth sequence's path relative to {fit_dir})")
    p = Path(name)
    seq = p if p.is_absolute() else fit_dir / p
    if not is_sequence(seq):
        how = "an absolute path from another machine?" if p.is_absolute() else f"resolved against {fit_dir}"
        raise FitResultError(
            f"{path}: sequence {name!r} is not a depth-sequence directory ({how}; expected "
            f"{seq / 'camera.json'} and {seq / 'depth'}/)"
        )
    return seq


def read_fit_progress(fit_dir, offset: int = 0) -> tuple[list[dict], int]:
    """Frames logged so far by `npms fit` into fit_dir (dicts with FIT_PROGRESS_FIELDS) from byte
    `offset` on, and the offset to continue from; a half-written last line waits for the next call."""
    from .progress import read_json_lines

    return read_json_lines(fit_progress_path(fit_dir), offset)


@dataclass
class LoadedFit:
    """A fit result as written by `npms fit`: codes (model units), per-frame losses, fit.yaml."""

    path: Path
    shape_code: np.ndarray  # [Ds]
    pose_codes: np.ndarray  # [T, Dp]
    translation: np.ndarray  # [T, 3] model units
    losses: dict  # name -> [T]
    meta: dict  # fit.yaml
    rotation: np.ndarray | None = None  # [T, 3, 3] world from canonical; identities when fit.npz has none

    def __post_init__(self):
        if self.rotation is None:
            self.rotation = np.repeat(np.eye(3, dtype=np.float32)[None], len(self.pose_codes), 0)

    def sequence_dir(self) -> Path:
        """The fitted depth sequence's directory (fit_sequence_dir)."""
        return fit_sequence_dir(self.path)

    def meshes(self):
        """(canonical vertices [V,3] metres, posed vertices [T,V,3] metres, faces [F,3])."""
        c = _load_mesh(fit_canonical_path(self.path), FitResultError)
        posed, _ = read_meshes(fit_meshes_dir(self.path))
        return np.asarray(c.vertices), posed, np.asarray(c.faces)


def read_fit(d) -> LoadedFit:
    """Read a fit-result directory (FitResultError naming the missing file if it is not one)."""
    d = Path(d)
    if not d.is_dir():
        raise FitResultError(f"{d}: fit-result directory not found")
    for name in FIT_FILES:
        if not (d / name).is_file():
            raise FitResultError(f"{d}: not a fit-result directory (missing {name})")
    try:
        with np.load(fit_npz_path(d), allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise FitResultError(f"{fit_npz_path(d)}: cannot be read ({e})") from None
    missing = [k for k in ("shape_code", "pose_codes", "translation") if k not in data]
    if missing:
        raise FitResultError(f"{fit_npz_path(d)}: missing array(s) {missing}")
    losses = {k[5:]: v for k, v in data.items() if k.startswith("loss_")}
    meta = read_yaml_mapping(fit_yaml_path(d), "fit metadata", FitResultError)
    rotation = data.get("rotation")
    if rotation is not None and rotation.shape != (len(data["pose_codes"]), 3, 3):
        raise FitResultError(
            f"{fit_npz_path(d)}: rotation has shape {rotation.shape}, expected ({len(data['pose_codes'])}, 3, 3)"
        )
    return LoadedFit(d, data["shape_code"], data["pose_codes"], data["translation"], losses, meta, rotation)


def write_fit(
    out_dir,
    *,
    sequence_dir,
    meta: dict,
    arrays: dict[str, np.ndarray],
    canonical_vertices: np.ndarray,
    faces: np.ndarray,
    posed_vertices: np.ndarray,
    compact: bool = False,
) -> Path:
    """Write a fit-result directory atomically: built under a temp name, then renamed, so a crash
    never leaves a directory that looks complete. fit.yaml gets `meta` with the sequence path
    relative to out_dir; fit.npz gets `arrays`; vertices are metres. A progress log already in
    out_dir (the run that made this result) is kept."""
    import trimesh

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    fit_meshes_dir(tmp).mkdir(parents=True)
    trimesh.Trimesh(canonical_vertices, faces, process=False).export(fit_canonical_path(tmp))
    write_meshes(fit_meshes_dir(tmp), posed_vertices, faces, compact)
    np.savez(fit_npz_path(tmp), **arrays)
    meta = {"sequence": relative_sequence_path(out_dir, sequence_dir), **meta}
    write_text_atomic(fit_yaml_path(tmp), yaml.safe_dump(meta, sort_keys=False))
    if fit_progress_path(out_dir).is_file():
        shutil.copy2(fit_progress_path(out_dir), fit_progress_path(tmp))
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        if old.exists():
            shutil.rmtree(old)
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old)
    else:
        tmp.rename(out_dir)
    return out_dir


# -------------------------------------------------------------------- depth sequence


def sequence_camera_path(d) -> Path:
    return Path(d) / "camera.json"


def sequence_depth_dir(d) -> Path:
    return Path(d) / "depth"


def sequence_depth_path(d, t: int, suffix: str = ".png") -> Path:
    """<d>/depth/NNNNNN.png (or .npy) of frame t."""
    return sequence_depth_dir(d) / f"{t:06d}{suffix}"


def sequence_depth_files(d) -> list[Path]:
    """The depth frames in order: the .png files, or the .npy files when there are no PNGs."""
    depth = sequence_depth_dir(d)
    return sorted(depth.glob("*.png")) or sorted(depth.glob("*.npy"))


def sequence_gt_dir(d) -> Path:
    return Path(d) / "gt"


def sequence_masks_dir(d) -> Path:
    return Path(d) / "masks"


def sequence_mask_path(d, t: int) -> Path:
    return sequence_masks_dir(d) / f"{t:06d}.png"


def sequence_capture_path(d) -> Path:
    return Path(d) / "capture.json"


def sequence_segmentation_dir(d) -> Path:
    return Path(d) / "segmentation"


def sequence_segmentation_path(d, t: int) -> Path:
    """<d>/segmentation/NNNNNN.png: the pixels of frame t that segmentation kept."""
    return sequence_segmentation_dir(d) / f"{t:06d}.png"


def sequence_segmentation_summary_path(d) -> Path:
    return sequence_segmentation_dir(d) / "frames.json"


def sequence_centre_path(d) -> Path:
    return sequence_segmentation_dir(d) / "centre.json"


def is_sequence(d) -> bool:
    return sequence_camera_path(d).is_file() and sequence_depth_dir(d).is_dir()


# --------------------------------------------------- meshes sharing faces (gt/, meshes/)

COMPACT_MESHES = "meshes.npz"


def write_meshes(directory, vertices: np.ndarray, faces: np.ndarray, compact: bool = False) -> None:
    """Meshes [T,V,3] sharing faces [F,3]: 000000.ply ... or, compact, one meshes.npz (float16 vertices)."""
    directory = Path(directory)
    if compact:
        tmp = directory / f".{COMPACT_MESHES}.tmp.npz"
        np.savez_compressed(tmp, vertices=np.asarray(vertices).astype(np.float16), faces=np.asarray(faces, np.int32))
        tmp.replace(directory / COMPACT_MESHES)
        return
    import trimesh

    for i, v in enumerate(vertices):
        trimesh.Trimesh(v, faces, process=False).export(directory / f"{i:06d}.ply")


def read_meshes(directory, frames: slice | None = None):
    """(vertices [T,V,3] float32, faces [F,3]) from a folder of PLYs or a meshes.npz; (None, None) if none."""
    directory = Path(directory)
    path = directory / COMPACT_MESHES
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                v, f = z["vertices"].astype(np.float32), z["faces"].astype(np.int64)
        except Exception as e:  # not a zip, truncated, missing arrays: the file is bad, whatever the library says
            raise ValueError(
                f"{path}: cannot be read as meshes (vertices [T, V, 3], faces [F, 3]): {_why(e)}"
            ) from None
        if v.ndim != 3 or v.shape[-1] != 3 or f.ndim != 2 or f.shape[-1] != 3:
            raise ValueError(f"{path}: expected vertices [T, V, 3] and faces [F, 3], got {v.shape} and {f.shape}")
        return (v[frames] if frames is not None else v), f
    files = sorted(directory.glob("*.ply"))
    if not files:
        return None, None
    files = files[frames] if frames is not None else files
    meshes = [_load_mesh(f) for f in files]
    sizes = {len(m.vertices) for m in meshes}
    if len(sizes) > 1:
        raise ValueError(f"{directory}: the meshes have {sorted(sizes)} vertices; expected one topology")
    return np.stack([m.vertices for m in meshes]).astype(np.float32), np.asarray(meshes[0].faces)


def _why(e: Exception) -> str:
    """'Type: first line of the message' of a library's exception, for an error that names the file."""
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}"


def _load_mesh(path: Path, error: type[ValueError] = ValueError):
    """A triangle mesh file (trimesh.Trimesh); `error` naming the file when it is not one."""
    import trimesh

    try:
        m = trimesh.load(path, process=False)
    except Exception as e:  # trimesh raises many types for a damaged file
        raise error(f"{path}: cannot be read as a mesh ({_why(e)})") from None
    if not isinstance(m, trimesh.Trimesh):
        raise error(f"{path}: expected a triangle mesh, got {type(m).__name__}")
    return m


# ---------------------------------------------------------------------- dataset cache


def cache_root() -> Path:
    """$NPM_CACHE_DIR, default ~/.cache/npm_explorer (datasets and the Anny cache live there)."""
    return Path(os.environ.get("NPM_CACHE_DIR", Path.home() / ".cache" / "npm_explorer"))


def mesh_cache_dir() -> Path:
    """<cache_root()>/meshes: extracted meshes cached across runs (mesh/cache.py)."""
    return cache_root() / "meshes"


def dataset_dir(cfg, root: Path | None = None) -> Path:
    """<root or cache_root()>/datasets/<hash of the DataConfig cfg>."""
    from .config import config_hash

    return Path(root or cache_root()) / "datasets" / config_hash(cfg)


def dataset_array_path(d, name: str) -> Path:
    if name not in DATASET_ARRAYS:
        raise ValueError(f"unknown dataset array {name!r}; expected one of {DATASET_ARRAYS}")
    return Path(d) / f"{name}.npy"


def dataset_config_path(d) -> Path:
    return Path(d) / "config.yaml"


def dataset_identities_path(d) -> Path:
    return Path(d) / "identities.yaml"


def dataset_frames_path(d, test: bool = False) -> Path:
    """frames.yaml (training frames) or test_frames.yaml (held-out frames)."""
    return Path(d) / ("test_frames.yaml" if test else "frames.yaml")


def dataset_domain_path(d) -> Path:
    return Path(d) / "domain.yaml"


def dataset_done_path(d) -> Path:
    return Path(d) / "DONE"


def is_dataset(d) -> bool:
    """A completely built dataset directory (DONE is written last)."""
    return dataset_done_path(d).is_file()


# ------------------------------------------------------------------------ mesh folder

MESH_FOLDER_SUFFIXES = (".ply", ".obj", ".off", ".stl")


def mesh_folder_domain_path(d) -> Path:
    return Path(d) / "domain.yaml"


def _mesh_file(stem: Path) -> Path:
    """stem + the first suffix of MESH_FOLDER_SUFFIXES that exists (stem.ply when none does)."""
    for suffix in MESH_FOLDER_SUFFIXES:
        if stem.with_suffix(suffix).is_file():
            return stem.with_suffix(suffix)
    return stem.with_suffix(".ply")


def mesh_folder_canonical_path(d, identity: str) -> Path:
    return _mesh_file(Path(d) / identity / "canonical")


def mesh_folder_identities(d) -> list[str]:
    """The identity folders of a mesh folder (those with a canonical mesh), sorted."""
    return sorted(p.name for p in Path(d).iterdir() if p.is_dir() and mesh_folder_canonical_path(d, p.name).is_file())


def mesh_folder_poses(d, identity: str) -> dict[str, Path]:
    """pose name -> posed mesh file of an identity, sorted by name."""
    folder = Path(d) / identity / "poses"
    files = [p for p in folder.iterdir() if p.suffix.lower() in MESH_FOLDER_SUFFIXES] if folder.is_dir() else []
    return {p.stem: p for p in sorted(files)}


def mesh_folder_attributes_path(d) -> Path:
    """attributes.yaml, or attributes.json when only that exists."""
    j = Path(d) / "attributes.json"
    return j if j.is_file() and not (Path(d) / "attributes.yaml").is_file() else Path(d) / "attributes.yaml"


def mesh_folder_sequences_path(d) -> Path:
    return Path(d) / "sequences.yaml"


def mesh_folder_split_path(d) -> Path:
    return Path(d) / "split.yaml"
