"""Anny body model wrapper: identities (phenotypes), joint-angle poses, motions, meshes.

Everything that touches the `anny` package lives here; the rest of npm_core sees numpy /
torch arrays in the canonical frame of space.py. Poses are given as named joint angles in
degrees (JOINTS), applied as Anny 'local-ref' deltas, i.e. rotations about fixed,
world-aligned axes at each bone, so an angle means the same thing for every identity.
The canonical pose is zero joint angles (Anny's reference A-pose, legs slightly apart) for
everyone, with the pelvis (Anny's root bone) at the origin.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from . import layout, space

if TYPE_CHECKING:
    import torch

PHENOTYPES = ["gender", "age", "muscle", "weight", "height", "proportions"]
"""Anny's phenotype parameters, each in [0, 1]. gender: 0 male, 1 female; age (Anny's morphological
age): 0.52 ~ 13 years, 0.78 ~ 25, 0.91 ~ 85; height: an adult man 1.36-2.45 m, a woman 1.22-2.31 m."""

DEFAULT_CACHE = layout.cache_root()


@dataclass(frozen=True)
class Joint:
    """A named joint angle: rotation of `bones` (split evenly) about an Anny-frame axis.

    Anny frame: x = subject's left, y = backwards, z = up. `sign` flips the axis so that a
    positive angle is the anatomical direction the name says (flexion, abduction...)."""

    bones: tuple[str, ...]
    axis: tuple[float, float, float]
    lo: float  # degrees
    hi: float
    neutral: float = 0.0


def _lr(name, bones, axis, lo, hi, mirror_axis=(1, -1, -1), neutral=0.0):
    """Left and right versions of a joint; the right one mirrors the axis across x = 0."""
    ax_r = tuple(a * m for a, m in zip(axis, mirror_axis))
    return {
        f"{name}_l": Joint(tuple(b + ".L" for b in bones), axis, lo, hi, neutral),
        f"{name}_r": Joint(tuple(b + ".R" for b in bones), ax_r, lo, hi, neutral),
    }


# Signs checked on the default body (tests/test_bodies.py): +x rotation swings a
# downward bone backwards, so flexion of hips/shoulders is about -x, knee flexion +x.
JOINTS: dict[str, Joint] = {
    "spine_bend": Joint(("spine02", "spine03", "spine04"), (1, 0, 0), -20, 45),
    "spine_side": Joint(("spine02", "spine03", "spine04"), (0, 1, 0), -25, 25),
    "torso_twist": Joint(("spine02", "spine03", "spine04"), (0, 0, 1), -40, 40),
    "neck_bend": Joint(("neck01", "neck02"), (1, 0, 0), -25, 35),
    "head_turn": Joint(("head",), (0, 0, 1), -50, 50),
    **_lr("clavicle_raise", ("clavicle",), (0, -1, 0), -5, 20),
    **_lr("shoulder_raise", ("upperarm01",), (0, -1, 0), -15, 120),
    **_lr("shoulder_flex", ("upperarm01",), (-1, 0, 0), -45, 110),
    **_lr("elbow_bend", ("lowerarm01",), (-0.75, 0.0, -0.66), 0, 130),
    **_lr("wrist_bend", ("wrist",), (1, 0, 0), -40, 40),
    **_lr("hip_flex", ("upperleg01",), (-1, 0, 0), -25, 100),
    **_lr("hip_abduct", ("upperleg01",), (0, -1, 0), -10, 40),
    **_lr("knee_bend", ("lowerleg01",), (1, 0, 0), 0, 130),
    **_lr("ankle_bend", ("foot",), (-1, 0, 0), -30, 25),
}
JOINT_NAMES = list(JOINTS)

# the "main" joints the pose sampler and the semantic pose sliders use
MAIN_JOINTS = JOINT_NAMES


# ---------------------------------------------------------------------------- model


@functools.lru_cache(maxsize=1)
def anny_model():
    """The Anny model (float32, CPU), built once per process (first ever build: ~90 s)."""
    if "ANNY_CACHE_DIR" not in os.environ:
        os.environ["ANNY_CACHE_DIR"] = str(DEFAULT_CACHE / "anny")
    import contextlib
    import io
    import warnings

    import torch
    import warp

    warp.config.quiet = True  # anny's skinning kernels would log every module load
    import anny
    import anny.paths

    anny.paths.set_anny_cache_path(os.environ["ANNY_CACHE_DIR"])
    # warp announces itself (and the missing CUDA driver) on stdout/stderr when anny inits it
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        model = anny.Anny()  # rig 'anny', 'local-ref' pose deltas, default phenotypes
    return model.to(torch.float32)


@functools.lru_cache(maxsize=1)
def faces() -> np.ndarray:
    """[F, 3] int64 triangles shared by every body (watertight, outward winding)."""
    return anny_model().faces.numpy().astype(np.int64)


SURFACES = ("full", "outer")
"""Which triangles make a body: Anny's `full` mesh (eyeballs, teeth and the mouth cavity that opens
between the lips), or the `outer` surface a camera sees: the body's skin with the cavity removed and
the lips closed along their line (watertight, one component, the same vertices)."""


@functools.lru_cache(maxsize=2)
def body_faces(surface: str = "full") -> np.ndarray:
    """[F, 3] int64 triangles of `surface` (SURFACES), shared by every body."""
    if surface == "full":
        return faces()
    if surface == "outer":
        return _outer_faces()
    raise ValueError(f"unknown body surface {surface!r}; expected one of {SURFACES}")


def _outer_faces(mouth_escape: int = 8) -> np.ndarray:
    """The skin of the default body without its inner parts. Eyeballs and teeth are their own
    components (dropped). The mouth cavity is the skin's own fold behind the lips: the faces near
    the mouth that at most `mouth_escape` of 256 rays leave (escaping_rays), grown from the most
    hidden one; its rim is the lip line, closed by a strip of triangles between the lips."""
    import trimesh

    from .data.sdf import escaping_rays

    verts, tris = body_meshes({})[0], faces()
    components = trimesh.graph.connected_components(
        trimesh.Trimesh(verts, tris, process=False).face_adjacency, nodes=np.arange(len(tris))
    )
    skin = tris[np.sort(max(components, key=len))]
    escape = escaping_rays(verts, skin)
    centres = verts[skin].mean(1)
    adjacency = trimesh.Trimesh(verts, skin, process=False).face_adjacency

    def regions(mask):
        links = adjacency[mask[adjacency[:, 0]] & mask[adjacency[:, 1]]]
        return trimesh.graph.connected_components(links, nodes=np.flatnonzero(mask), min_len=1)

    mouth = max(regions(escape == 0), key=len)  # the largest wholly hidden region
    seed = mouth[0]
    near_mouth = np.linalg.norm(centres - centres[mouth].mean(0), axis=1) < 0.03  # 7.5 cm
    candidate = (escape <= mouth_escape) & near_mouth
    cavity = next(c for c in regions(candidate) if seed in c)
    kept = np.delete(skin, cavity, axis=0)
    return np.concatenate([kept, _close_loop(verts, kept)]).astype(np.int64)


def _close_loop(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Triangles closing the one boundary loop of `tris` as a strip between its two halves (from
    the vertex of least x to that of most x: the mouth corners), wound like the mesh."""
    directed = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    edge_set = {tuple(e) for e in directed.tolist()}
    boundary = {a: b for a, b in directed.tolist() if (b, a) not in edge_set}
    start = next(iter(boundary))
    loop = [start]
    while boundary[loop[-1]] != start:
        loop.append(boundary[loop[-1]])
        if len(loop) > len(boundary):
            raise RuntimeError("the mouth's rim is not one loop")
    if len(loop) != len(boundary):
        raise RuntimeError(f"the mouth's rim is {len(boundary)} edges but its loop {len(loop)}")
    ring = loop[::-1]  # the cap runs against the mesh's boundary edges
    n = len(ring)
    first = int(np.argmin(verts[ring, 0]))
    u, w = (first + 1) % n, (first - 1) % n  # u walks forward, w backward from the first corner
    out = [(ring[w], ring[first], ring[u])]
    while len(out) < n - 2:
        fwd, back = (u + 1) % n, (w - 1) % n
        advance_u = np.linalg.norm(verts[ring[fwd]] - verts[ring[w]]) <= np.linalg.norm(
            verts[ring[back]] - verts[ring[u]]
        )
        if advance_u:
            out.append((ring[w], ring[u], ring[fwd]))
            u = fwd
        else:
            out.append((ring[back], ring[w], ring[u]))
            w = back
    return np.array(out, dtype=np.int64)


def _named_array(values, names: list[str], default: float, what: str) -> np.ndarray:
    """A dict name -> value(s), or an array [B, len(names)], as a finite float64 array [B, len(names)]."""
    if isinstance(values, dict):
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"unknown {what}(s) {unknown}; expected some of {names}")
        cols = [np.atleast_1d(np.asarray(values.get(k, default), dtype=np.float64)) for k in names]
        n = max(len(c) for c in cols)
        arr = np.stack([np.broadcast_to(c, (n,)) for c in cols], 1)
    else:
        arr = np.atleast_2d(np.asarray(values, dtype=np.float64))
        if arr.shape[-1] != len(names):
            raise ValueError(f"{what}s: expected [B, {len(names)}] in order {names}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}s contain non-finite values")
    return arr


def check_phenotypes(phenotypes) -> np.ndarray:
    """Validate phenotypes: a dict name -> value(s) (others 0.5) or an array [B, 6] in PHENOTYPES order."""
    arr = _named_array(phenotypes, PHENOTYPES, 0.5, "phenotype")
    bad = (arr < 0) | (arr > 1)
    if bad.any():
        b, j = np.argwhere(bad)[0]
        raise ValueError(f"phenotype '{PHENOTYPES[j]}' = {arr[b, j]} is outside [0, 1]")
    return arr


def check_joint_angles(angles) -> np.ndarray:
    """Validate poses: dict name -> degrees (others 0), or an array [B, J] in JOINT_NAMES order."""
    return _named_array(angles, JOINT_NAMES, 0.0, "joint")


def _axis_angle_rotations(angles_deg: np.ndarray, root_yaw_deg: np.ndarray | None) -> torch.Tensor:
    """[B, J] joint angles -> Anny 'local-ref' deltas [B, n_bones, 4, 4]."""
    import roma
    import torch

    model = anny_model()
    labels = model.bone_labels
    B = angles_deg.shape[0]
    rotvec = torch.zeros(B, len(labels), 3, dtype=torch.float64)
    for j, name in enumerate(JOINT_NAMES):
        joint = JOINTS[name]
        axis = torch.tensor(joint.axis, dtype=torch.float64)
        axis = axis / axis.norm()
        per_bone = torch.as_tensor(np.deg2rad(angles_deg[:, j]) / len(joint.bones))
        for bone in joint.bones:
            rotvec[:, labels.index(bone)] += per_bone[:, None] * axis
    if root_yaw_deg is not None:
        rotvec[:, 0] += torch.as_tensor(np.deg2rad(root_yaw_deg))[:, None] * torch.tensor(
            [0.0, 0.0, 1.0], dtype=torch.float64
        )
    deltas = torch.eye(4, dtype=torch.float32).repeat(B, len(labels), 1, 1)
    # bones hit by several joints: compose by summing rotation vectors (small, commuting enough)
    deltas[..., :3, :3] = roma.rotvec_to_rotmat(rotvec).to(torch.float32)
    return deltas


def body_meshes(phenotypes, joint_angles=None, root_yaw_deg=None, batch: int = 32):
    """Canonical or posed bodies in model units.

    phenotypes: [B, 6] or dict; joint_angles: None (canonical pose) or [B, J] degrees / dict.
    Returns (vertices [B, V, 3] float32 model units, pelvis of each body's rest pose at 0,
    canonical axes), with faces from `faces()`."""
    ph = check_phenotypes(phenotypes)
    if joint_angles is None:  # the canonical pose: zero joint angles, the same for everyone
        joint_angles = np.zeros((len(ph), len(JOINT_NAMES)))
    ja = check_joint_angles(joint_angles)
    if len(ph) != len(ja):
        if len(ph) == 1:
            ph = np.repeat(ph, len(ja), 0)
        else:
            raise ValueError(f"{len(ph)} phenotypes for {len(ja)} poses")
    import torch

    model = anny_model()
    out = []
    for s in range(0, len(ph), batch):
        kw = {k: torch.as_tensor(ph[s : s + batch, i], dtype=torch.float32) for i, k in enumerate(PHENOTYPES)}
        yaw = None if root_yaw_deg is None else np.broadcast_to(root_yaw_deg, (len(ph),))[s : s + batch]
        pose = _axis_angle_rotations(ja[s : s + batch], yaw)
        # 'local-ref' deltas with zero root translation put the root (pelvis) at the origin
        with torch.no_grad():
            o = model(pose_parameters=pose, phenotype_kwargs=kw)
        out.append(space.anny_to_model(o["vertices"], 0.0).float())
    return torch.cat(out).numpy()


# ------------------------------------------------------------------------ identities


@dataclass
class Identity:
    id: str
    phenotypes: dict[str, float]
    age_years: float
    split: str  # "train" | "test" | "tail" (held out: the extremes of the phenotype box)


def _shape_distribution(min_age_years: float, max_age_years: float):
    import torch
    from anny.shape_distribution import SimpleShapeDistribution

    f64 = torch.float64
    model = anny_model()
    ages = torch.distributions.Uniform(torch.tensor(min_age_years, dtype=f64), torch.tensor(max_age_years, dtype=f64))
    dist = SimpleShapeDistribution(model.to(f64), morphological_age_distribution=ages)
    model.to(torch.float32)
    return dist


def _years_to_age(dist, years) -> np.ndarray:
    import torch

    return dist.morphological_age_mapping.morphological_to_anny_age(torch.as_tensor(years, dtype=torch.float64)).numpy()


def _age_to_years(dist, age) -> np.ndarray:
    import torch

    return dist.morphological_age_mapping.anny_to_morphological_age(torch.as_tensor(age, dtype=torch.float64)).numpy()


def sample_identities(
    count: int,
    seed: int = 0,
    test_fraction: float = 0.2,
    min_age_years: float = 13.0,
    max_age_years: float = 85.0,
    box_fraction: float = 0.0,
    tails: bool = False,
    box_heights_m: tuple[float, float] = (1.35, 2.05),
) -> list[Identity]:
    """Phenotypes from Anny's WHO-calibrated distribution (height/weight/muscle conditioned on
    age and gender), ages uniform in [min, max] years; seeded, with a seeded train/test split.
    A `box_fraction` share is instead drawn uniformly over the whole phenotype box (ages in the
    same years, standing heights within box_heights_m), so the tails of the population (very tall,
    short, heavy, thin, muscular, old) are covered.
    `tails` appends TAIL_IDENTITIES (split "tail", never trained on).
    Ids are stable: the same settings and index always give the same body."""
    if count < 2:
        raise ValueError(f"identities.count must be >= 2, got {count}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"identities.test_fraction must be in (0, 1), got {test_fraction}")
    if not 0.0 <= box_fraction <= 1.0:
        raise ValueError(f"identities.box_fraction must be in [0, 1], got {box_fraction}")
    import torch

    dist = _shape_distribution(min_age_years, max_age_years)
    n_box = round(count * box_fraction)
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        morph_age, ph = dist.sample(count - n_box)
    finally:
        torch.random.set_rng_state(state)
    table = np.stack([ph[k].numpy() for k in PHENOTYPES], 1) if count > n_box else np.zeros((0, 6))
    years = morph_age.numpy()
    if n_box:
        box = _box_phenotypes(
            dist, n_box, np.random.default_rng([seed, 1]), min_age_years, max_age_years, box_heights_m
        )
        table = np.concatenate([table, box])
        years = np.concatenate([years, _age_to_years(dist, box[:, PHENOTYPES.index("age")])])
    rng = np.random.default_rng(seed)
    test = set(rng.permutation(count)[: max(1, round(count * test_fraction))].tolist())
    out = [
        Identity(
            id=f"s{seed}-{i:05d}",
            phenotypes={k: float(np.clip(table[i, j], 0.0, 1.0)) for j, k in enumerate(PHENOTYPES)},
            age_years=float(years[i]),
            split="test" if i in test else "train",
        )
        for i in range(count)
    ]
    return out + (tail_identities(min_age_years, max_age_years) if tails else [])


def _standing_heights(phenotypes: np.ndarray) -> np.ndarray:
    v = body_meshes(phenotypes)
    return space.model_to_metres(v[:, :, 1].max(1) - v[:, :, 1].min(1))


def _box_phenotypes(dist, n, rng, min_age_years, max_age_years, heights_m) -> np.ndarray:
    """n phenotype rows uniform over the box, ages in [min, max] years, heights in heights_m."""
    lo, hi = _years_to_age(dist, [min_age_years, max_age_years])
    a = PHENOTYPES.index("age")
    rows = []
    while sum(len(r) for r in rows) < n:
        cand = rng.random((2 * n, len(PHENOTYPES)))
        cand[:, a] = lo + cand[:, a] * (hi - lo)
        h = _standing_heights(cand)
        rows.append(cand[(h >= heights_m[0]) & (h <= heights_m[1])])
    return np.concatenate(rows)[:n]


TAIL_EXTREMES = ("age", "muscle", "weight", "height", "proportions")


def tail_identities(min_age_years: float = 13.0, max_age_years: float = 85.0, heights_m=(1.40, 2.00)) -> list[Identity]:
    """The named tail test set: each of TAIL_EXTREMES at its low and at its high end (age: the
    youngest and oldest years; height: heights_m standing), for a man and a woman, the other
    phenotypes at 0.5 and 25 years; then four corners people bring (tall muscular man, heavy
    elderly woman, tall thin woman, short light teenager). Ids say what they are: tail-height-hi-m."""
    dist = _shape_distribution(min_age_years, max_age_years)
    age_lo, age_hi, adult = (float(a) for a in _years_to_age(dist, [min_age_years, max_age_years, 25.0]))
    genders = (("m", 0.0), ("f", 1.0))
    ends = {"age": {g: (age_lo, age_hi) for g, _ in genders}}
    ends["height"] = {}
    for g, gender in genders:  # standing height is linear in the height phenotype
        h0, h1 = _standing_heights(check_phenotypes({"gender": gender, "age": adult, "height": [0.0, 1.0]}))
        ends["height"][g] = tuple(float(np.clip((t - h0) / (h1 - h0), 0, 1)) for t in heights_m)
    rows = []
    for name in TAIL_EXTREMES:
        for g, gender in genders:
            for end, value in zip(("lo", "hi"), ends.get(name, {}).get(g, (0.0, 1.0))):
                rows.append((f"tail-{name}-{end}-{g}", {"gender": gender, name: value}))
    tall_m, tall_f = ends["height"]["m"][1], ends["height"]["f"][1]
    rows += [
        ("tail-tall-muscular-man", {"gender": 0.0, "height": tall_m, "muscle": 1.0, "weight": 0.8}),
        ("tail-heavy-elderly-woman", {"gender": 1.0, "age": age_hi, "weight": 1.0, "height": 0.3}),
        ("tail-tall-thin-woman", {"gender": 1.0, "height": tall_f, "weight": 0.0, "muscle": 0.3}),
        ("tail-short-light-teenager", {"gender": 0.5, "age": age_lo, "height": 0.2, "weight": 0.1}),
    ]
    out = []
    for name, values in rows:
        ph = {k: float(values.get(k, adult if k == "age" else 0.5)) for k in PHENOTYPES}
        out.append(Identity(name, ph, round(float(_age_to_years(dist, [ph["age"]])[0]), 2), "tail"))
    return out


def identities_of(identities_cfg) -> list[Identity]:
    """The identities a data config's `identities` section describes."""
    ic = identities_cfg
    return sample_identities(
        ic.count,
        ic.seed,
        ic.test_fraction,
        ic.min_age_years,
        ic.max_age_years,
        ic.box_fraction,
        ic.tails,
        tuple(ic.box_heights_m),
    )


def find_identity(identity_id: str, identities_cfg) -> Identity:
    """The identity with this id under a data config's `identities` settings (ids are seeded)."""
    idents = {x.id: x for x in identities_of(identities_cfg)}
    if identity_id not in idents:
        some = ", ".join(list(idents)[:5])
        raise ValueError(f"unknown identity '{identity_id}' for this data config; ids look like {some}, ...")
    return idents[identity_id]


def phenotype_array(identities: list[Identity]) -> np.ndarray:
    return np.array([[ident.phenotypes[k] for k in PHENOTYPES] for ident in identities])


# ------------------------------------------------------------------------------ poses


def sample_poses(count: int, seed: int = 0, spread: float = 0.65) -> np.ndarray:
    """Random poses [count, J] in degrees within each joint's limits.

    Each angle is a Beta(2, 2) draw between its limits pulled towards neutral by `spread`
    (1: the whole range), so most poses are moderate and extremes are rare; a few
    coupled limits keep limbs out of the body (no deep hip flexion with a straight,
    crossing leg; arms lowered into the torso only when raised forward)."""
    rng = np.random.default_rng(seed)
    lo = np.array([JOINTS[n].lo for n in JOINT_NAMES])
    hi = np.array([JOINTS[n].hi for n in JOINT_NAMES])
    neutral = np.array([JOINTS[n].neutral for n in JOINT_NAMES])
    u = rng.beta(2.0, 2.0, size=(count, len(JOINT_NAMES)))
    a = lo + u * (hi - lo)
    a = neutral + spread * (a - neutral)
    idx = {n: i for i, n in enumerate(JOINT_NAMES)}
    for side in "lr":
        # an arm pressed into the torso only when it is also swung forward or back
        raise_, flex = idx[f"shoulder_raise_{side}"], idx[f"shoulder_flex_{side}"]
        low = a[:, raise_] < 0
        a[low, flex] = np.sign(a[low, flex] + 1e-9) * np.maximum(np.abs(a[low, flex]), 25.0)
        # adduction of a strongly flexed hip would cross the other leg
        hf, ha = idx[f"hip_flex_{side}"], idx[f"hip_abduct_{side}"]
        a[:, ha] = np.where(a[:, hf] > 60, np.maximum(a[:, ha], 0.0), a[:, ha])
    return np.clip(a, lo, hi)


# ---------------------------------------------------------------------------- motions


@dataclass
class Motion:
    """A clip: joint angles [T, J] (degrees), root yaw [T] (degrees) and root translation
    [T, 3] (metres, canonical axes), at `fps`."""

    name: str
    angles: np.ndarray
    root_yaw: np.ndarray
    translation: np.ndarray
    fps: float = 30.0

    @property
    def num_frames(self) -> int:
        return len(self.angles)


def _clip(name: str, frames: int, curves: dict, translation=None, yaw=None) -> Motion:
    t = np.linspace(0.0, 1.0, frames, endpoint=False)
    angles = np.zeros((frames, len(JOINT_NAMES)))
    for joint, fn in curves.items():
        angles[:, JOINT_NAMES.index(joint)] = fn(t)
    tr = np.zeros((frames, 3)) if translation is None else translation(t)
    yw = np.zeros(frames) if yaw is None else yaw(t)
    lo = np.array([JOINTS[n].lo for n in JOINT_NAMES])
    hi = np.array([JOINTS[n].hi for n in JOINT_NAMES])
    return Motion(name, np.clip(angles, lo, hi), yw, tr)


def _sin(amp, cycles=1.0, phase=0.0, offset=0.0):
    return lambda t: offset + amp * np.sin(2 * np.pi * (cycles * t + phase))


def _pulse(amp, cycles=1.0, phase=0.0, offset=0.0):
    """0 -> amp -> 0 per cycle (raised cosine)."""
    return lambda t: offset + amp * 0.5 * (1 - np.cos(2 * np.pi * (cycles * t + phase)))


def _walk():
    c = 2.0  # two strides
    return _clip(
        "walk",
        80,
        {
            "hip_flex_l": _sin(28, c, 0.0, 5),
            "hip_flex_r": _sin(28, c, 0.5, 5),
            "knee_bend_l": _pulse(45, c, 0.5 + 0.25, 8),
            "knee_bend_r": _pulse(45, c, 0.75 + 0.5, 8),
            "shoulder_flex_l": _sin(22, c, 0.5),
            "shoulder_flex_r": _sin(22, c, 0.0),
            "elbow_bend_l": _pulse(20, c, 0.5, 15),
            "elbow_bend_r": _pulse(20, c, 0.0, 15),
            "torso_twist": _sin(8, c, 0.25),
            "ankle_bend_l": _sin(12, c, 0.25),
            "ankle_bend_r": _sin(12, c, 0.75),
        },
        translation=lambda t: np.stack([0 * t, 0.02 * np.abs(np.sin(2 * np.pi * c * t)), 0.9 * t - 0.45], 1),
    )


def _squat():
    d = _pulse(1.0, 1.5)
    return _clip(
        "squat",
        90,
        {
            "hip_flex_l": lambda t: 95 * d(t),
            "hip_flex_r": lambda t: 95 * d(t),
            "knee_bend_l": lambda t: 115 * d(t),
            "knee_bend_r": lambda t: 115 * d(t),
            "ankle_bend_l": lambda t: 22 * d(t),
            "ankle_bend_r": lambda t: 22 * d(t),
            "spine_bend": lambda t: 20 * d(t),
            "shoulder_flex_l": lambda t: 85 * d(t),
            "shoulder_flex_r": lambda t: 85 * d(t),
        },
        translation=lambda t: np.stack([0 * t, -0.38 * d(t), 0 * t], 1),
    )


def _arm_raise():
    return _clip(
        "arm_raise",
        80,
        {
            "shoulder_raise_l": _pulse(110, 1.0),
            "shoulder_raise_r": _pulse(110, 1.0, 0.25),
            "clavicle_raise_l": _pulse(12, 1.0),
            "clavicle_raise_r": _pulse(12, 1.0, 0.25),
            "elbow_bend_l": _pulse(30, 2.0),
            "spine_side": _sin(8, 1.0),
        },
    )


def _torso_twist():
    return _clip(
        "torso_twist",
        72,
        {
            "torso_twist": _sin(38, 1.5),
            "head_turn": _sin(30, 1.5, 0.05),
            "shoulder_raise_l": lambda t: 55 + 0 * t,
            "shoulder_raise_r": lambda t: 55 + 0 * t,
            "elbow_bend_l": _pulse(60, 1.5),
            "elbow_bend_r": _pulse(60, 1.5, 0.5),
            "spine_bend": _pulse(10, 3.0),
        },
    )


def _jumping_jack():
    c = 2.0
    return _clip(
        "jumping_jack",
        72,
        {
            "shoulder_raise_l": _pulse(115, c, 0, -5),
            "shoulder_raise_r": _pulse(115, c, 0, -5),
            "hip_abduct_l": _pulse(30, c),
            "hip_abduct_r": _pulse(30, c),
            "knee_bend_l": _pulse(20, 2 * c),
            "knee_bend_r": _pulse(20, 2 * c),
            "elbow_bend_l": _pulse(25, c, 0.5),
            "elbow_bend_r": _pulse(25, c, 0.5),
            "neck_bend": _sin(6, 2 * c),
        },
        translation=lambda t: np.stack([0 * t, 0.12 * np.abs(np.sin(2 * np.pi * c * t)), 0 * t], 1),
    )


def _kick():
    k = _pulse(1.0, 1.0)
    return _clip(
        "kick",
        64,
        {
            "hip_flex_r": lambda t: 85 * k(t) ** 2,
            "knee_bend_r": lambda t: 70 * np.sin(np.pi * t) ** 4 + 10 * k(t),
            "ankle_bend_r": lambda t: -25 * k(t),
            "knee_bend_l": lambda t: 12 * k(t),
            "shoulder_raise_l": lambda t: 35 * k(t),
            "shoulder_raise_r": lambda t: 35 * k(t),
            "shoulder_flex_l": lambda t: 30 * k(t),
            "spine_bend": lambda t: -12 * k(t),
        },
    )


def _wave():
    return _clip(
        "wave",
        90,
        {
            "shoulder_raise_r": lambda t: np.minimum(1.0, 4 * np.sin(np.pi * t)) * 100,
            "elbow_bend_r": lambda t: np.minimum(1.0, 4 * np.sin(np.pi * t)) * (70 + 30 * np.sin(2 * np.pi * 4 * t)),
            "wrist_bend_r": _sin(30, 4.0),
            "head_turn": _sin(15, 1.0),
            "spine_side": _sin(-6, 1.0, 0, -4),
        },
    )


def _reach_across():
    """Arms reaching forward and across the body in turn, torso twisting with them."""
    return _clip(
        "reach_across",
        80,
        {
            "shoulder_flex_l": _pulse(95, 1.0),
            "shoulder_flex_r": _pulse(95, 1.0, 0.5),
            "shoulder_raise_l": _pulse(-15, 1.0),
            "shoulder_raise_r": _pulse(-15, 1.0, 0.5),
            "elbow_bend_l": _pulse(40, 1.0, 0.5, 10),
            "elbow_bend_r": _pulse(40, 1.0, 0.0, 10),
            "torso_twist": _sin(-30, 1.0, 0.25),
            "spine_bend": _pulse(15, 2.0),
        },
    )


def _crouch():
    """A deep crouch, heels down, arms forward for balance, back rounded."""
    d = _pulse(1.0, 1.0)
    return _clip(
        "crouch",
        70,
        {
            "hip_flex_l": lambda t: 100 * d(t),
            "hip_flex_r": lambda t: 100 * d(t),
            "knee_bend_l": lambda t: 130 * d(t),
            "knee_bend_r": lambda t: 130 * d(t),
            "ankle_bend_l": lambda t: 25 * d(t),
            "ankle_bend_r": lambda t: 25 * d(t),
            "hip_abduct_l": lambda t: 15 * d(t),
            "hip_abduct_r": lambda t: 15 * d(t),
            "spine_bend": lambda t: 35 * d(t),
            "shoulder_flex_l": lambda t: 70 * d(t),
            "shoulder_flex_r": lambda t: 60 * d(t),
            "elbow_bend_l": lambda t: 30 * d(t),
        },
        translation=lambda t: np.stack([0 * t, -0.5 * d(t), 0 * t], 1),
    )


def _side_bend():
    """Side bends to both sides, the arm of the long side over the head."""
    return _clip(
        "side_bend",
        80,
        {
            "spine_side": _sin(25, 1.0),
            "shoulder_raise_r": lambda t: 150 * np.clip(np.sin(2 * np.pi * t), 0, 1) ** 0.5 * 0.8,
            "shoulder_raise_l": lambda t: 150 * np.clip(-np.sin(2 * np.pi * t), 0, 1) ** 0.5 * 0.8,
            "elbow_bend_r": lambda t: 40 * np.clip(np.sin(2 * np.pi * t), 0, 1),
            "elbow_bend_l": lambda t: 40 * np.clip(-np.sin(2 * np.pi * t), 0, 1),
            "head_turn": _sin(10, 1.0, 0.25),
        },
    )


def _boxing():
    """Guard up in front of the face, alternating straight punches with a twisting torso."""
    return _clip(
        "boxing",
        72,
        {
            "shoulder_flex_l": _pulse(50, 2.0, 0.0, 40),
            "shoulder_flex_r": _pulse(50, 2.0, 0.5, 40),
            "shoulder_raise_l": lambda t: 20 + 0 * t,
            "shoulder_raise_r": lambda t: 20 + 0 * t,
            "elbow_bend_l": _pulse(-110, 2.0, 0.0, 125),
            "elbow_bend_r": _pulse(-110, 2.0, 0.5, 125),
            "torso_twist": _sin(25, 2.0, 0.25),
            "knee_bend_l": lambda t: 15 + 0 * t,
            "knee_bend_r": lambda t: 15 + 0 * t,
            "hip_flex_l": lambda t: 12 + 0 * t,
            "hip_flex_r": lambda t: 12 + 0 * t,
            "neck_bend": lambda t: 10 + 0 * t,
        },
        translation=lambda t: np.stack([0 * t, -0.03 + 0 * t, 0 * t], 1),
    )


MOTIONS = {
    "walk": _walk,
    "squat": _squat,
    "arm_raise": _arm_raise,
    "torso_twist": _torso_twist,
    "jumping_jack": _jumping_jack,
    "kick": _kick,
    "wave": _wave,
    "reach_across": _reach_across,
    "crouch": _crouch,
    "side_bend": _side_bend,
    "boxing": _boxing,
}
"""Procedural clips: name -> builder. Train/test split of motions lives in the data config."""


def motion(name: str) -> Motion:
    if name not in MOTIONS:
        raise ValueError(f"unknown motion '{name}'; expected one of {sorted(MOTIONS)}")
    return MOTIONS[name]()
