"""Explorer state (what is selected and shown) and the small pure functions panels share.

Pure python + numpy: no polyscope, no torch, no files. Panels change a State; app.py turns it
into worker requests and Polyscope structures.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PANELS = ("shape", "pose", "transfer", "sequence", "train", "export")
VIEW_PANELS = ("shape", "pose", "transfer", "sequence")  # panels that own the 3D view


@dataclass
class State:
    panel: str = "shape"
    view: str = "shape"  # the last panel that owned the 3D view (train/export keep showing it)
    # shape panel
    shape_a: int = 0
    shape_b: int = 1
    alpha: float = 0.0
    sampled: list | None = None  # a code drawn from the prior; replaces A while set
    phenotype_delta: list = field(default_factory=list)  # [6] semantic shift of the phenotypes
    shape_pca: list = field(default_factory=list)  # [K] offsets along the shape-code PCA (std units)
    # pose panel
    pose_a: int = 0
    pose_b: int = 1
    beta: float = 0.0
    angle_delta: list = field(default_factory=list)  # [J] semantic shift of the joint angles (deg)
    pose_pca: list = field(default_factory=list)  # [K] offsets along the pose-code PCA (std units)
    motion: str = ""
    motion_playing: bool = False
    motion_pos: float = 0.0
    motion_fps: float = 15.0
    # transfer panel
    transfer_shape: int = 0
    transfer_pose: int = 0
    gallery: bool = False
    gallery_shapes: list = field(default_factory=lambda: [0, 1, 2])
    gallery_poses: list = field(default_factory=lambda: [0, 1, 2, 3])
    # sequence panel
    frame: int = 0
    playing: bool = False
    speed: float = 1.0
    play_pos: float = 0.0
    show_points: bool = True
    show_fit: bool = True
    show_gt: bool = False
    color_error: bool = True
    # resolutions (cells per axis)
    preview_resolution: int = 48
    full_resolution: int = 128
    # paths typed in the UI and recently opened
    checkpoint_text: str = ""
    fit_text: str = ""
    recent_checkpoints: list = field(default_factory=list)
    recent_fits: list = field(default_factory=list)
    messages: list = field(default_factory=list)  # (level, text), newest last

    def set_panel(self, name: str) -> None:
        if name not in PANELS:
            raise ValueError(f"unknown panel {name!r}; expected one of {PANELS}")
        self.panel = name
        if name in VIEW_PANELS:
            self.view = name

    def reset_semantics(self, sem=None) -> None:
        """Zero every semantic slider (sized for the checkpoint's semantics, none without)."""
        self.phenotype_delta = [0.0] * len(sem.phenotype_range[0]) if sem is not None else []
        self.shape_pca = [0.0] * len(sem.shape_pca.std) if sem is not None else []
        has_pose = sem is not None and sem.angles_to_pose is not None
        self.angle_delta = [0.0] * len(sem.angle_range[0]) if has_pose else []
        self.pose_pca = [0.0] * len(sem.pose_pca.std) if has_pose else []

    def zero(self, *names: str) -> None:
        """Set the named list fields (slider offsets) back to zeros."""
        for name in names:
            setattr(self, name, [0.0] * len(getattr(self, name)))

    def error(self, text: str) -> None:
        self.messages = (self.messages + [("error", text)])[-5:]

    def info(self, text: str) -> None:
        self.messages = (self.messages + [("info", text)])[-5:]


def mix(a, b, t: float) -> np.ndarray:
    """Linear interpolation of two codes: (1 - t) a + t b."""
    return ((1.0 - t) * np.asarray(a, np.float32) + t * np.asarray(b, np.float32)).astype(np.float32)


def prior_sample(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A code from the Gaussian that fits the training codes [K, D] (per-dimension mean and std)."""
    codes = np.asarray(codes, np.float32)
    std = codes.std(0) if len(codes) > 1 else np.full(codes.shape[1], 0.01, np.float32)
    return (codes.mean(0) + rng.standard_normal(codes.shape[1]) * std).astype(np.float32)


def shape_label(i: int, entry: dict | None) -> str:
    """'3 s0-00004  m 59y  w.98 h.37' from a meta.yaml shape-code entry (identity, phenotypes, age)."""
    if not entry:
        return f"{i} shape {i}"
    ph = entry.get("phenotypes", {}) or {}
    sex = "" if "gender" not in ph else ("m" if ph["gender"] >= 0.5 else "f")
    age = f" {entry['age_years']:.0f}y" if "age_years" in entry else ""
    rest = " ".join(f"{k[0]}{ph[k]:.2f}".replace("0.", ".") for k in ("weight", "height", "muscle") if k in ph)
    return f"{i} {entry.get('identity', '')}  {sex}{age}  {rest}".rstrip()


def pose_label(i: int, entry: dict | None) -> str:
    if not entry:
        return f"{i} pose {i}"
    return f"{i} {entry.get('motion', '?')} #{entry.get('frame', '?')}"


def group_motions(entries: list) -> dict[str, list[int]]:
    """Pose-code rows grouped by motion name, each sorted by frame: {motion: [row, ...]}."""
    groups: dict[str, list[tuple]] = {}
    for i, e in enumerate(entries or []):
        groups.setdefault(str((e or {}).get("motion", "unlabelled")), []).append(((e or {}).get("frame", i), i))
    return {k: [i for _, i in sorted(v)] for k, v in sorted(groups.items())}


def push_recent(items: list, path: str, n: int = 8) -> list:
    """`path` first, no duplicates, at most n."""
    return ([path] + [p for p in items if p != path])[:n]


def advance(pos: float, dt: float, fps: float, speed: float, count: int) -> tuple[float, int]:
    """Playback: position in frames after dt seconds, wrapped to [0, count); and its frame index."""
    if count <= 0:
        return 0.0, 0
    pos = (pos + dt * fps * speed) % count
    return pos, int(pos) % count
