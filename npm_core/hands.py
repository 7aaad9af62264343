"""Hands: the second shipped domain, made from Anny's right hand and written as a mesh folder
(docs/design.md, "Mesh folder"), so it enters npm_core through `npms data import` exactly as a
user's registered meshes do.

The hand is Anny's right hand cut 3 cm above the wrist joint (the same vertices for everyone,
chosen once on the default body) and capped by a fan of triangles to the centre of the cut
ring: one watertight surface. Hand frame (metres): the wrist joint at the origin, x towards the
thumb side, y along the middle finger, z out of the palm; each identity's frame comes from its
own rest skeleton, so hand size and proportions stay true. Poses are named finger, thumb and
wrist angles (HAND_JOINTS), each a rotation about an axis built from the identity's rest bones;
the forearm does not move, so the wrist angles show as deformation.
Must not: be imported by training, fitting or the app (they see only the imported dataset).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import bodies, layout
from .atomic import atomic_dir

FINGERS = {"index": 2, "middle": 3, "ring": 4, "little": 5}  # Anny bone numbers (finger1 is the thumb)
CUT_M = 0.03  # the cut, in metres above (proximal to) the wrist joint


@dataclass(frozen=True)
class HandJoint:
    """A named angle: rotation of `bones` (split evenly) about an axis of the hand's rest frame.

    axis: "flex" (bends the bone towards the palm), "spread" (in the palm plane, away from the
    middle finger; for the middle finger towards the little finger), "thumb_oppose" (the thumb
    towards the palm), "thumb_abduct" (the thumb away from the index), "wrist_flex" (the palm
    towards the forearm), "wrist_deviation" (towards the little-finger side)."""

    bones: tuple[str, ...]
    axis: str
    lo: float  # degrees
    hi: float


HAND_JOINTS: dict[str, HandJoint] = {
    **{
        j: spec
        for f, n in FINGERS.items()
        for j, spec in (
            (f"{f}_base", HandJoint((f"finger{n}-1.R",), "flex", -20, 90)),
            (f"{f}_curl", HandJoint((f"finger{n}-2.R", f"finger{n}-3.R"), "flex", 0, 160)),
            (f"{f}_spread", HandJoint((f"finger{n}-1.R",), "spread", -10, 20)),
        )
    },
    "thumb_oppose": HandJoint(("finger1-1.R",), "thumb_oppose", -10, 60),
    "thumb_abduct": HandJoint(("finger1-1.R",), "thumb_abduct", -15, 40),
    "thumb_curl": HandJoint(("finger1-2.R", "finger1-3.R"), "thumb_curl", 0, 110),
    "wrist_flex": HandJoint(("wrist.R",), "wrist_flex", -35, 35),
    "wrist_deviation": HandJoint(("wrist.R",), "wrist_deviation", -15, 20),
}
HAND_JOINT_NAMES = list(HAND_JOINTS)


def _fist(**open_fingers):
    """A fist; open_fingers: finger -> True to leave it straight."""
    angles = {"thumb_oppose": 35, "thumb_curl": 70}
    for f in FINGERS:
        if not open_fingers.get(f):
            angles |= {f"{f}_base": 85, f"{f}_curl": 150}
    return angles


GESTURES: dict[str, dict[str, float]] = {
    "open": {},
    "fist": _fist(),
    "point": _fist(index=True),
    "peace": _fist(index=True, middle=True) | {"index_spread": 12, "middle_spread": -8},
    "four": {"thumb_oppose": 55, "thumb_curl": 60},
    "spread": {"index_spread": 18, "middle_spread": 4, "ring_spread": 12, "little_spread": 20, "thumb_abduct": 35},
    "grasp": {f"{f}_{j}": a for f in FINGERS for j, a in (("base", 45), ("curl", 70))}
    | {"thumb_oppose": 45, "thumb_curl": 30},
    "pinch": {"index_base": 40, "index_curl": 65, "thumb_oppose": 50, "thumb_curl": 35}
    | {f"{f}_{j}": a for f in ("middle", "ring", "little") for j, a in (("base", 55), ("curl", 90))},
    "thumbs_up": _fist() | {"thumb_oppose": -5, "thumb_curl": 0, "thumb_abduct": 25},
    "flat_bend": {f"{f}_base": 80 for f in FINGERS} | {"thumb_oppose": 20},
    "wave": {"wrist_flex": -30, "wrist_deviation": 15, "index_spread": 8, "little_spread": 10},
    # held out of training (the test gestures)
    "ok": {"index_base": 45, "index_curl": 80, "thumb_oppose": 45, "thumb_curl": 40, "little_spread": 10},
    "rock": _fist(index=True, little=True),
    "three": _fist(index=True, middle=True, ring=True),
    "claw": {f"{f}_curl": 130 for f in FINGERS} | {"thumb_curl": 70, "wrist_flex": 20},
}
TEST_GESTURES = ("ok", "rock", "three", "claw")
DEMO_SEQUENCE = ("open", "ok", "rock", "three", "claw", "open")  # the test gestures in turn, for depth fits


def gesture_angles(names, steps: int = 1) -> np.ndarray:
    """[len(names) * steps, J] degrees: each gesture reached from the open hand in `steps` frames."""
    out = []
    for name in names:
        if name not in GESTURES:
            raise ValueError(f"unknown gesture {name!r}; expected one of {list(GESTURES)}")
        target = np.array([GESTURES[name].get(j, 0.0) for j in HAND_JOINT_NAMES])
        out += [target * (k + 1) / steps for k in range(steps)]
    return np.array(out).reshape(-1, len(HAND_JOINT_NAMES))


def demo_angles(steps: int) -> np.ndarray:
    """[(len(DEMO_SEQUENCE) - 1) * steps + 1, J] degrees: DEMO_SEQUENCE's gestures in turn."""
    keys = gesture_angles(DEMO_SEQUENCE)
    out = [keys[0]]
    for a, b in zip(keys[:-1], keys[1:]):
        out += [a + (b - a) * (k + 1) / steps for k in range(steps)]
    return np.array(out)


def sample_hand_poses(count: int, seed: int = 0) -> np.ndarray:
    """Random poses [count, J]: each finger's base and curl drawn together (a curled finger is
    usually bent at the base too), everything else uniform within its limits."""
    rng = np.random.default_rng(seed)
    lo = np.array([HAND_JOINTS[j].lo for j in HAND_JOINT_NAMES])
    hi = np.array([HAND_JOINTS[j].hi for j in HAND_JOINT_NAMES])
    out = lo + rng.random((count, len(lo))) * (hi - lo)
    for f in FINGERS:
        closed = rng.random(count)
        b, c = HAND_JOINT_NAMES.index(f"{f}_base"), HAND_JOINT_NAMES.index(f"{f}_curl")
        out[:, b] = np.clip(closed * 90 + rng.normal(0, 15, count), -20, 90)
        out[:, c] = np.clip(closed * 160 + rng.normal(0, 25, count), 0, 160)
    return out


# ------------------------------------------------------------------------ the mesh


@functools.lru_cache(maxsize=1)
def _cut() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Anny vertex indices of the hand [H], faces [F, 3] over 0..H (H = the cap's centre),
    ring [R] local indices of the cut) chosen once on the default body."""
    import trimesh

    heads, verts = _rest(bodies.check_phenotypes({}))
    heads, verts = heads[0], verts[0]
    bone = bodies.anny_model().bone_labels.index
    wrist = heads[bone("wrist.R")]
    fore = wrist - heads[bone("lowerarm02.R")]
    fore /= np.linalg.norm(fore)
    faces = bodies.body_faces("outer")
    kept = faces[((verts[faces] - wrist) @ fore > -CUT_M).all(1)]
    mesh = trimesh.Trimesh(verts, kept, process=False)
    label = trimesh.graph.connected_component_labels(mesh.face_adjacency, node_count=len(kept))
    near = np.argmin([np.linalg.norm(verts[kept[label == c]].mean((0, 1)) - wrist) for c in np.unique(label)])
    hand = kept[label == np.unique(label)[near]]
    index = np.unique(hand)
    local = np.searchsorted(index, hand)
    # the cut ring: directed boundary edges a -> b of the faces; the cap winds b -> a -> centre
    edges = local[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    undirected = np.sort(edges, 1)
    _, inv, counts = np.unique(undirected, axis=0, return_inverse=True, return_counts=True)
    boundary = edges[counts[inv.ravel()] == 1]
    cap = np.stack([boundary[:, 1], boundary[:, 0], np.full(len(boundary), len(index))], 1)
    return index, np.concatenate([local, cap]).astype(np.int64), np.unique(boundary)


def hand_faces() -> np.ndarray:
    """[F, 3] triangles of every hand (watertight)."""
    return _cut()[1]


def _rest(phenotypes: np.ndarray):
    """(bone heads [B, n_bones, 3], vertices [B, V, 3]) at zero joint angles, in the frame of
    Anny's posed output (pelvis at the origin; Anny's own rest output lies elsewhere), metres."""
    import torch

    model = bodies.anny_model()
    eye = torch.eye(4).repeat(len(phenotypes), len(model.bone_labels), 1, 1)
    with torch.no_grad():
        out = model(pose_parameters=eye, phenotype_kwargs=_kwargs(phenotypes))
    return out["bone_poses"][..., :3, 3].double().numpy(), out["vertices"].double().numpy()


def _kwargs(phenotypes: np.ndarray) -> dict:
    import torch

    return {k: torch.as_tensor(phenotypes[:, i], dtype=torch.float32) for i, k in enumerate(bodies.PHENOTYPES)}


def _frame(heads: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """An identity's hand frame from its rest bone heads [n_bones, 3]: (origin, rows [x; y; z],
    axis kind -> per-bone rotation axis in Anny's frame (for `flex`, one per finger bone))."""
    bone = bodies.anny_model().bone_labels.index
    h = lambda name: heads[bone(name)]  # noqa: E731
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    wrist = h("wrist.R")
    along = unit(h("finger3-1.R") - wrist)
    palm = unit(np.cross(h("finger2-1.R") - h("finger5-1.R"), along))  # out of the palm
    thumb_side = np.cross(along, palm)
    thumb = unit(h("finger1-3.R") - h("finger1-1.R"))
    axes = {
        "thumb_oppose": -along,
        "thumb_abduct": -palm,
        "thumb_curl": unit(np.cross(thumb, palm)),
        "wrist_flex": np.cross(along, palm),
        "wrist_deviation": palm,
    }
    for f, n in FINGERS.items():
        direction = unit(h(f"finger{n}-3.R") - h(f"finger{n}-1.R"))
        axes[f"{f}_flex"] = unit(np.cross(direction, palm))
        axes[f"{f}_spread"] = -palm if f == "index" else palm
    return wrist, np.stack([thumb_side, along, palm]), axes


def hand_meshes(phenotypes, angles=None) -> np.ndarray:
    """Hands [B, H + 1, 3] float64 in each identity's hand frame, metres (faces: hand_faces()).

    phenotypes: [B, 6] or a dict (bodies.PHENOTYPES); angles: None (the open rest hand) or
    [B, J] degrees in HAND_JOINT_NAMES order (a single row of phenotypes is repeated)."""
    import roma
    import torch

    ph = bodies.check_phenotypes(phenotypes)
    ja = np.zeros((len(ph), len(HAND_JOINTS))) if angles is None else np.atleast_2d(np.asarray(angles, float))
    if ja.shape[1] != len(HAND_JOINTS):
        raise ValueError(f"hand angles have {ja.shape[1]} columns; expected {len(HAND_JOINTS)} ({HAND_JOINT_NAMES})")
    if len(ph) == 1:
        ph = np.repeat(ph, len(ja), 0)
    if len(ph) != len(ja):
        raise ValueError(f"{len(ph)} phenotypes for {len(ja)} hand poses")
    index, _, ring = _cut()
    model = bodies.anny_model()
    heads, _ = _rest(ph)
    rotvec = np.zeros((len(ph), len(model.bone_labels), 3))
    frames = []
    for b in range(len(ph)):
        origin, rows, axes = _frame(heads[b])
        frames.append((origin, rows))
        for j, name in enumerate(HAND_JOINT_NAMES):
            joint = HAND_JOINTS[name]
            for bone in joint.bones:
                kind = joint.axis
                if kind in ("flex", "spread"):
                    kind = f"{name.split('_')[0]}_{kind}"
                rotvec[b, model.bone_labels.index(bone)] += np.deg2rad(ja[b, j]) / len(joint.bones) * axes[kind]
    deltas = torch.eye(4, dtype=torch.float32).repeat(len(ph), len(model.bone_labels), 1, 1)
    deltas[..., :3, :3] = roma.rotvec_to_rotmat(torch.as_tensor(rotvec)).float()
    with torch.no_grad():
        verts = model(pose_parameters=deltas, phenotype_kwargs=_kwargs(ph))["vertices"].double().numpy()
    out = np.empty((len(ph), len(index) + 1, 3))
    for b, (origin, rows) in enumerate(frames):
        out[b, :-1] = (verts[b, index] - origin) @ rows.T
        out[b, -1] = out[b, ring].mean(0)
    return out


# ------------------------------------------------------------------------ the mesh folder


@dataclass
class HandsConfig:
    """What `npms data hands` writes: identities from Anny's phenotypes (the population and the
    phenotype box, as bodies.sample_identities draws them), random poses and gestures per identity."""

    identities: int = 96
    test_fraction: float = 0.2
    seed: int = 0
    random_poses: int = 16  # per identity
    gesture_steps: int = 3  # frames from the open hand to each gesture
    box_fraction: float = 0.5
    demo_identities: int = 4  # test hands that also perform DEMO_SEQUENCE (held out), for depth fits
    demo_steps: int = 8  # frames between two gestures of the demo


def export_hands(out, cfg: HandsConfig | None = None, progress=None) -> Path:
    """Write the hands mesh folder at `out` (replaced atomically): per identity canonical.ply and
    poses/*.ply, attributes.yaml (the phenotypes), sequences.yaml (each gesture reached from the
    open hand) and split.yaml (test identities; TEST_GESTURES' sequences held out for everyone)."""
    import trimesh
    import yaml

    cfg = cfg or HandsConfig()
    idents = bodies.sample_identities(cfg.identities, cfg.seed, cfg.test_fraction, box_fraction=cfg.box_fraction)
    faces = hand_faces()
    hid_of = lambda ident: ident.id.replace(f"s{cfg.seed}-", "hand-")  # noqa: E731
    tests = [hid_of(ident) for ident in idents if ident.split == "test"]
    demo_ids = set(tests[: cfg.demo_identities])
    sequences, attributes = {}, {}
    with atomic_dir(Path(out)) as tmp:
        (tmp / "domain.yaml").write_text(
            yaml.safe_dump({"name": "hands", "units": 1.0, "up": "+y", "capture_rotation": "none"})
        )
        for k, ident in enumerate(idents):
            hid = hid_of(ident)
            attributes[hid] = {p: round(v, 6) for p, v in ident.phenotypes.items()}
            randoms = sample_hand_poses(cfg.random_poses, seed=cfg.seed * 100_003 + k)
            names = list(GESTURES)[1:]
            gestures = gesture_angles(names, cfg.gesture_steps)
            ph = bodies.phenotype_array([ident])
            demo = hid in demo_ids
            angles = [np.zeros((1, len(HAND_JOINTS))), randoms, gestures] + (
                [demo_angles(cfg.demo_steps)] if demo else []
            )
            meshes = hand_meshes(ph, np.concatenate(angles))
            write = lambda path, v: trimesh.Trimesh(v, faces, process=False).export(path)  # noqa: E731
            (tmp / hid / "poses").mkdir(parents=True)
            write(layout.mesh_folder_canonical_path(tmp, hid), meshes[0])
            for r in range(cfg.random_poses):
                write(tmp / hid / "poses" / f"random-{r:03d}.ply", meshes[1 + r])
            for g, name in enumerate(names):
                poses = [f"{name}-{s + 1}" for s in range(cfg.gesture_steps)]
                for s, pose in enumerate(poses):
                    write(tmp / hid / "poses" / f"{pose}.ply", meshes[1 + cfg.random_poses + g * cfg.gesture_steps + s])
                sequences[f"{name}/{hid}"] = {"identity": hid, "poses": poses}
            if demo:
                first = 1 + cfg.random_poses + len(names) * cfg.gesture_steps
                poses = [f"demo-{k:03d}" for k in range(len(meshes) - first)]
                for k, pose in enumerate(poses):
                    write(tmp / hid / "poses" / f"{pose}.ply", meshes[first + k])
                sequences[f"demo/{hid}"] = {"identity": hid, "poses": poses}
            if progress:
                progress(k + 1, len(idents))
        (tmp / "attributes.yaml").write_text(yaml.safe_dump(attributes))
        (tmp / "sequences.yaml").write_text(yaml.safe_dump(sequences))
        held_out = [s for s in sequences if s.split("/")[0] in (*TEST_GESTURES, "demo")]
        (tmp / "split.yaml").write_text(yaml.safe_dump({"test": tests, "test_sequences": held_out}))
    return Path(out)
