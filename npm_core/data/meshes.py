"""A folder of a user's registered meshes (one topology per domain; layout.py "Mesh folder") as a
domain source, and its import into a dataset (`npms data import`).

Validation before anything is built: every mesh shares the first canonical mesh's vertex count,
face count and faces (errors name the file and both counts); the shared faces must close the
canonical mesh (trimesh is_watertight), else holes are filled with trimesh.repair.fill_holes
(the added faces join the shared topology, and the result says so) or the import is refused
naming the file and its boundary edges. One similarity transform for the whole domain (file
units -> metres, up axis -> +y, centre and scale of the joint bounding box of all meshes, posed ones too,
into [-0.5 + margin, 0.5 - margin]^3) is recorded in domain.yaml (domain.DomainInfo).
Must not: know about bodies, or write anything but through data/dataset.write_dataset.
ImportConfig (how the folder is sampled) lives in data/dataset.py, which reads it back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from .. import layout
from ..domain import CAPTURE_ROTATIONS, DomainInfo
from .dataset import ImportConfig, write_dataset


class MeshFolderError(ValueError):
    """A mesh folder that does not have the documented layout or one topology."""


_UP = {
    "+y": np.eye(3),
    "-y": np.diag([1.0, -1.0, -1.0]),
    "+z": np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]]),
    "-z": np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]),
    "+x": np.array([[0, -1.0, 0], [1.0, 0, 0], [0, 0, 1.0]]),
    "-x": np.array([[0, 1.0, 0], [-1.0, 0, 0], [0, 0, 1.0]]),
}


def _read_mesh(path: Path):
    """(vertices [V,3] float64, faces [F,3] int64) of a mesh file, exactly as stored (no merging)."""
    m = layout._load_mesh(path, MeshFolderError)
    return np.asarray(m.vertices, np.float64), np.asarray(m.faces, np.int64)


def boundary_edges(faces: np.ndarray) -> int:
    """Edges used by exactly one face (0 for a closed mesh)."""
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return int((counts == 1).sum())


def _yaml(path: Path, what: str):
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise MeshFolderError(f"{path}: not valid {path.suffix[1:].upper()} ({str(e).splitlines()[0]})") from None
    if data is not None and not isinstance(data, dict):
        raise MeshFolderError(f"{path}: expected a mapping ({what})")
    return data or {}


class MeshFolderSource:
    """A validated mesh folder as a DomainSource (all vertices read into memory, model units).

    notes: what the import changed (filled holes), for the user."""

    def __init__(self, folder, cfg: ImportConfig | None = None):
        cfg = cfg or ImportConfig()
        d = Path(folder)
        if not d.is_dir():
            raise MeshFolderError(f"{d}: mesh folder not found")
        self.notes: list[str] = []
        keys = ("name", "units", "up", "capture_rotation")
        dom = _yaml(layout.mesh_folder_domain_path(d), ", ".join(keys)) or {}
        unknown = sorted(set(dom) - set(keys))
        if unknown:
            raise MeshFolderError(
                f"{layout.mesh_folder_domain_path(d)}: unknown key(s) {unknown}; expected {', '.join(keys)}"
            )
        turns = str(dom.get("capture_rotation", "none"))
        if turns not in CAPTURE_ROTATIONS:
            raise MeshFolderError(
                f"{layout.mesh_folder_domain_path(d)}: capture_rotation {dom['capture_rotation']!r}: "
                f"expected one of {list(CAPTURE_ROTATIONS)}"
            )
        units, up = dom.get("units", 1.0), str(dom.get("up", "+y"))
        up = up if up[0] in "+-" else "+" + up
        if isinstance(units, bool) or not isinstance(units, (int, float)) or units <= 0:
            raise MeshFolderError(
                f"{layout.mesh_folder_domain_path(d)}: units {units!r}: expected metres per file unit, > 0"
            )
        if up not in _UP:
            raise MeshFolderError(
                f"{layout.mesh_folder_domain_path(d)}: up {dom['up']!r}: expected one of {sorted(_UP)}"
            )
        ids = layout.mesh_folder_identities(d)
        if not ids:
            raise MeshFolderError(f"{d}: no identity folders with a canonical mesh (expected <identity>/canonical.ply)")

        # --- one topology everywhere
        ref_path = layout.mesh_folder_canonical_path(d, ids[0])
        ref_v, ref_f = _read_mesh(ref_path)
        verts: dict[tuple[str, str | None], np.ndarray] = {}
        for ident in ids:
            for pose, path in [
                (None, layout.mesh_folder_canonical_path(d, ident)),
                *layout.mesh_folder_poses(d, ident).items(),
            ]:
                v, f = (ref_v, ref_f) if path == ref_path else _read_mesh(path)
                if len(v) != len(ref_v) or len(f) != len(ref_f):
                    raise MeshFolderError(
                        f"{path}: {len(v)} vertices and {len(f)} faces; {ref_path} has {len(ref_v)} "
                        f"vertices and {len(ref_f)} faces (every mesh of a domain shares one topology)"
                    )
                if not np.array_equal(f, ref_f):
                    k = int(np.nonzero((f != ref_f).any(1))[0][0])
                    raise MeshFolderError(
                        f"{path}: face {k} is {f[k].tolist()}, {ref_path} has {ref_f[k].tolist()} "
                        f"(same counts, but the faces differ: every mesh of a domain shares one topology)"
                    )
                verts[ident, pose] = v
        self._faces = self._closed(ref_path, ref_v, ref_f)

        # --- attributes, sequences, split
        attr_path = layout.mesh_folder_attributes_path(d)
        attrs = _yaml(attr_path, "{identity: {name: number}}")
        names: list[str] = []
        if attrs:
            unknown = sorted(set(map(str, attrs)) - set(ids))
            if unknown:
                raise MeshFolderError(f"{attr_path}: identities {unknown} have no folder with a canonical mesh")
            names = sorted({str(k) for a in attrs.values() if isinstance(a, dict) for k in a})
            for ident in ids:
                a = attrs.get(ident)
                if (
                    not isinstance(a, dict)
                    or sorted(map(str, a)) != names
                    or not all(_is_number(x) for x in a.values())
                ):
                    raise MeshFolderError(f"{attr_path}: {ident}: {a!r}; expected a number for each of {names}")
        split = self._split(d, ids, cfg)
        test_seqs = set(split.get("test_sequences") or [])
        label = self._sequences(d, ids, verts, test_seqs)

        self.info = DomainInfo(
            name=str(dom.get("name", d.resolve().name)),
            source="meshes",
            metres_per_unit=float(units),
            rotation=_UP[up].tolist(),
            attributes=names,
            capture_rotation=turns,
        )
        # the bounding box of every mesh, posed ones too, so no pose leaves the model cube
        lo = np.min([v.min(0) for v in verts.values()], 0) * units @ _UP[up].T
        hi = np.max([v.max(0) for v in verts.values()], 0) * units @ _UP[up].T
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        self.info.centre_m = ((lo + hi) / 2).tolist()
        self.info.model_per_metre = float((1 - 2 * cfg.margin) / (hi - lo).max())
        self.identities = [
            {
                "id": i,
                "split": "test" if i in split["test"] else "train",
                **({"attributes": {str(k): float(v) for k, v in attrs[i].items()}} if names else {}),
            }
            for i in ids
        ]
        self.frames, self.test_frames = [], []
        for k, ident in enumerate(ids):
            for pose in layout.mesh_folder_poses(d, ident):
                motion, frame = label.get((ident, pose), (pose, None))
                row = {"identity": k, "motion": motion, "frame": frame, "pose": pose}
                held_out = ident in split["test"] or motion in test_seqs
                (self.test_frames if held_out else self.frames).append(row)
        self._ids = ids
        self._verts = {key: self.info.user_to_model(v) for key, v in verts.items()}

    def _closed(self, path: Path, v: np.ndarray, f: np.ndarray) -> np.ndarray:
        """The shared faces, closed: as they are, with holes filled, or MeshFolderError."""
        import trimesh

        m = trimesh.Trimesh(v, f, process=False)
        if m.is_watertight:
            return f
        n = boundary_edges(f)
        filled = m.copy()
        trimesh.repair.fill_holes(filled)
        if filled.is_watertight and len(filled.vertices) == len(v):
            self.notes.append(
                f"{path}: not watertight ({n} boundary edges); filled its holes with "
                f"{len(filled.faces) - len(f)} faces, added to every mesh of the domain"
            )
            return np.asarray(filled.faces, np.int64)
        raise MeshFolderError(
            f"{path}: the canonical mesh is not watertight ({n} boundary edges) and "
            f"trimesh.repair.fill_holes cannot close it; close it before importing"
        )

    @staticmethod
    def _split(d: Path, ids: list[str], cfg: ImportConfig) -> dict:
        path = layout.mesh_folder_split_path(d)
        data = _yaml(path, "train, test, test_sequences")
        if data is None:
            rng = np.random.default_rng(cfg.split_seed)
            n_test = min(
                len(ids) - 1,
                max(1 if len(ids) > 1 and cfg.test_fraction > 0 else 0, round(cfg.test_fraction * len(ids))),
            )
            return {"test": {ids[k] for k in rng.permutation(len(ids))[:n_test]}}
        unknown = sorted(set(data) - {"train", "test", "test_sequences"})
        if unknown:
            raise MeshFolderError(f"{path}: unknown key(s) {unknown}; expected train, test, test_sequences")
        for key in ("train", "test"):
            bad = sorted(set(map(str, data.get(key) or [])) - set(ids))
            if bad:
                raise MeshFolderError(f"{path}: {key}: identities {bad} have no folder with a canonical mesh")
        test = set(map(str, data.get("test") or [])) | (
            set(ids) - set(map(str, data["train"])) if "train" in data else set()
        )
        if test == set(ids):
            raise MeshFolderError(f"{path}: no training identity left")
        return {"test": test, "test_sequences": data.get("test_sequences") or []}

    @staticmethod
    def _sequences(d: Path, ids, verts, test_seqs) -> dict:
        """(identity, pose) -> (sequence, frame index) from sequences.yaml."""
        path = layout.mesh_folder_sequences_path(d)
        seqs = _yaml(path, "{sequence: {identity, poses}}") or {}
        out = {}
        for name, s in seqs.items():
            if not isinstance(s, dict) or str(s.get("identity")) not in ids or not isinstance(s.get("poses"), list):
                raise MeshFolderError(
                    f"{path}: {name}: expected {{identity: one of {ids}, poses: [pose names]}}, got {s!r}"
                )
            for k, pose in enumerate(s["poses"]):
                if (str(s["identity"]), str(pose)) not in verts:
                    raise MeshFolderError(f"{path}: {name}: no pose {pose!r} in {d / str(s['identity']) / 'poses'}")
                out.setdefault((str(s["identity"]), str(pose)), (str(name), k))
        bad = sorted(set(test_seqs) - set(map(str, seqs)))
        if bad:
            raise MeshFolderError(f"{layout.mesh_folder_split_path(d)}: test_sequences {bad} are not in {path}")
        return out

    def faces(self) -> np.ndarray:
        return self._faces

    def canonical(self) -> np.ndarray:
        return np.stack([self._verts[i, None] for i in self._ids])

    def posed(self, frames: list[dict]) -> np.ndarray:
        return np.stack([self._verts[self._ids[f["identity"]], f["pose"]] for f in frames])


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


@dataclass
class ImportResult:
    path: Path
    identities: int
    frames: int
    test_frames: int
    seconds: float
    notes: list[str]


def import_meshes(folder, out, cfg: ImportConfig | None = None, progress=None, workers: int = 2) -> ImportResult:
    """Validate the mesh folder and build its dataset into `out` (replaced when complete; nothing is
    written when validation fails, and an interrupted build leaves no directory that looks complete)."""
    cfg = cfg or ImportConfig()
    t = time.time()
    src = MeshFolderSource(folder, cfg)
    if not src.frames:
        raise MeshFolderError(f"{folder}: no posed mesh of a training identity (expected <identity>/poses/<pose>.ply)")
    path = write_dataset(Path(out), src, cfg.sdf, cfg.flow, cfg, progress, workers)
    return ImportResult(path, len(src.identities), len(src.frames), len(src.test_frames), time.time() - t, src.notes)
