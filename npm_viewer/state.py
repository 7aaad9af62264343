"""Explorer state: everything the UI has selected, typed or toggled, in one dataclass, and the small
pure functions panels share (labels, recent lists, playback).

Pure python: no polyscope, no torch, no files. Panels change a State; the app turns it into
worker requests, and the scene (scene.py) reads it to decide what is shown and at which frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PANELS = ("shape", "pose", "transfer", "sequence", "fit", "train", "export")
VIEW_PANELS = ("shape", "pose", "transfer", "sequence")  # panels that own the 3D view
TRAIN_STAGES = ("shape", "pose")
EXPORT_SOURCES = ("sequence replay", "shape interpolation A->B", "pose interpolation A->B")


@dataclass
class State:
    panel: str = "shape"
    view: str = "shape"  # the last panel that owned the 3D view (train/export keep showing it)
    # shape panel
    shape_a: int = 0
    shape_b: int = 1
    alpha: float = 0.0
    sampled: list | None = None  # a code drawn from the prior; replaces A while set
    prior_draws: int = 0  # samples drawn so far (the seed of the next one)
    phenotype_delta: list = field(default_factory=list)  # [A] semantic shift of the attributes (Anny: phenotypes)
    shape_pca: list = field(default_factory=list)  # [K] offsets along the shape-code PCA (std units)
    # pose panel
    pose_a: int = 0
    pose_b: int = 1
    beta: float = 0.0
    angle_delta: list = field(default_factory=list)  # [J] semantic shift of the joint angles (deg)
    pose_pca: list = field(default_factory=list)  # [K] offsets along the pose-code PCA (std units)
    motion: str = ""
    motion_on: bool = False  # the pose view shows `motion` at `frame` (instead of A blended to B)
    motion_fps: float = 15.0
    # transfer panel
    transfer_shape: int = 0
    transfer_pose: int = 0
    gallery: bool = False
    gallery_shapes: list = field(default_factory=lambda: [0, 1, 2])
    gallery_poses: list = field(default_factory=lambda: [0, 1, 2, 3])
    # the one timeline: sequence replay and motion playback both read `frame`
    frame: int = 0
    play_pos: float = 0.0  # position in frames (fractional while playing)
    playing: bool = False
    play_mode: str = "every frame"  # playback.MODES: "every frame" shows each frame, "real-time" may skip
    play_fps: float | str = "as recorded"  # one of playback.FPS_PRESETS
    compare: bool = False  # sequence view: fit and truth side by side (offset copies), not overlaid
    # sequence panel
    show_points: bool = True
    show_fit: bool = True
    show_gt: bool = False
    show_removed: bool = True  # depth points the fit's segmentation removed (grey)
    show_facing: bool = True  # the fitted body orientation as an arrow
    color_error: bool = True
    plot_metric: str = ""  # the metric the sequence plot shows (one at a time, in its own unit)
    # resolutions (cells per axis)
    preview_resolution: int = 48
    full_resolution: int = 128
    # paths typed in the UI and recently opened
    checkpoint_text: str = ""
    fit_text: str = ""
    recent_checkpoints: list = field(default_factory=list)
    recent_fits: list = field(default_factory=list)
    # train panel
    train_config: str = "configs/train_fast.yaml"
    train_out: str = "checkpoints/my-run"
    train_data: str = ""  # an imported dataset (`npms data import`) instead of the config's Anny data
    train_stage: str = "shape"
    # fit panel (npms fit from the app)
    fit_sequence: str = "assets/example_sequence"
    fit_out: str = "fits/my-fit"
    fit_schedule: str = "fast"
    fit_no_icp: bool = False
    fit_no_temporal: bool = False
    fit_no_segmentation: bool = False
    fit_resolution: int = 0  # output meshes; 0 = the schedule's
    fit_frames: int = 0  # only the first N frames; 0 = all
    fit_device: str = "cpu"
    # export panel
    export_dir: str = "exports"
    export_source: str = EXPORT_SOURCES[0]
    export_frames: int = 30
    export_gif: bool = True
    export_mp4: bool = True
    export_ui: bool = False
    export_camera: str = "exports/camera.json"
    export_turntable: int = 120  # views in one turn
    messages: list = field(default_factory=list)  # (level, text), newest last
    identity_filter: str = ""  # text typed to filter the identity lists

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
        has_angles = sem is not None and sem.angles_to_pose is not None
        self.angle_delta = [0.0] * len(sem.angle_range[0]) if has_angles else []
        self.pose_pca = [0.0] * len(sem.pose_pca.std) if sem is not None and sem.pose_pca is not None else []

    def zero(self, *names: str) -> None:
        """Set the named list fields (slider offsets) back to zeros."""
        for name in names:
            setattr(self, name, [0.0] * len(getattr(self, name)))

    def error(self, text: str) -> None:
        self.messages = (self.messages + [("error", text)])[-50:]

    def info(self, text: str) -> None:
        self.messages = (self.messages + [("info", text)])[-50:]


def shape_label(i: int, label=None) -> str:
    """'3 s0-00004  m 59y  w.98 h.37' from a shape code's label (identity, phenotypes, age; any
    object with those attributes, e.g. layout.ShapeCodeLabel); an imported domain's identity:
    '3 hand07  length_mm 182  width_mm 84.5' (identity, attributes)."""
    attributes = getattr(label, "attributes", None) or {}
    if label is None or (label.identity is None and not label.phenotypes and not attributes):
        return f"{i} shape {i}"
    if not label.phenotypes and attributes:
        values = "  ".join(f"{k} {v:.3g}" for k, v in sorted(attributes.items()))
        return f"{i} {label.identity or ''}  {values}".rstrip()
    ph = label.phenotypes or {}
    sex = "" if "gender" not in ph else ("m" if ph["gender"] >= 0.5 else "f")
    age = f" {label.age_years:.0f}y" if label.age_years is not None else ""
    rest = " ".join(f"{k[0]}{ph[k]:.2f}".replace("0.", ".") for k in ("weight", "height", "muscle") if k in ph)
    return f"{i} {label.identity or ''}  {sex}{age}  {rest}".rstrip()


def pose_label(i: int, label=None) -> str:
    """'0 walk #3' from a pose code's label (motion, frame)."""
    if label is None or label.motion is None:
        return f"{i} pose {i}"
    return f"{i} {label.motion} #{'?' if label.frame is None else label.frame}"


def push_recent(items: list, path: str, n: int = 8) -> list:
    """`path` first, no duplicates, at most n."""
    return ([path] + [p for p in items if p != path])[:n]


def filter_items(labels: list, text: str) -> list[int]:
    """Indices of the labels containing every word of `text` (case-insensitive); all when empty."""
    words = text.lower().split()
    return [i for i, label in enumerate(labels) if all(w in label.lower() for w in words)]
