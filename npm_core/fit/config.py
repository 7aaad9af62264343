"""Settings of a fit: the energy's weights, the sample counts and both schedules' parameters.

Must not: fit anything or read files.
"""

from __future__ import annotations

from dataclasses import dataclass


class FitError(ValueError):
    """Input a fit cannot use (names the frame or file)."""


@dataclass
class FitConfig:
    schedule: str = "fast"  # a name in schedules.SCHEDULES: "fast" | "paper"
    # energy (reference weights)
    w_temporal: float = 100.0
    w_icp: float = 1e-3
    w_shape_prior: float = 0.1
    w_pose_prior: float = 1e-4
    truncation: float = 0.01  # model units behind the observed surface still observed
    clamp: float = 0.1
    use_temporal: bool = True
    use_icp: bool = True
    use_translation: bool = True
    # rigid motion of the whole body per frame: posed = R_t (x + f_p(s, p_t, x)) + tau_t
    use_rotation: bool = True  # R_t = yaw about the vertical (any angle) times a tilt of at most max_tilt_deg;
    # for_domain() turns it off for domains that declare no upright axis
    max_tilt_deg: float = 30.0
    yaw_candidates: int = 12  # the first frame's starting yaw: the best of this many round the circle
    yaw_step_deg: float = 20.0  # tracking also tries the previous frame's yaw +- this
    yaw_trial_iters: int = 40  # fast: the first frame's yaw and yaw + 180 degrees each tried this many steps
    w_tilt_prior: float = 0.01  # on the tilt angles (radians^2)
    lr_rotation: float = 1e-3  # radians per step (paper schedule, refinement)
    lr_fast_rotation: float = 1e-2  # radians per step (tracking)
    # captures
    use_segmentation: bool = True  # keep only the subject and centre it first (data/capture.py)
    # sensor noise: frames whose estimated noise (data/sensor.py) exceeds noise_floor_m and
    # noise_floor_px pixel footprints (a clean render's curvature alone reads as ~0.1 of one) get
    noise_floor_m: float = 0.002
    noise_floor_px: float = 0.25
    noise_fill: bool = True  # the one-pixel ring a sensor drops at the silhouette put back
    noise_smooth: bool = True  # edge-aware smoothing of the depth
    noise_truncation: float = 3.0  # truncation at least this many sigma
    noise_huber: bool = False  # L_r quadratic within sigma of the data (Huber), linear beyond
    noise_edges: bool = False  # depth discontinuities and the pixels just off the silhouette: unobserved
    # canonical samples
    canonical_samples: int = 100_000
    canonical_noise: float = 0.015
    init_resolution: int = 128
    final_resolution: int = 256
    # optimisation
    points_per_frame: int = 4000
    icp_points: int = 1500
    lr_shape: float = 5e-4
    lr_pose: float = 1e-3
    lr_translation: float = 1e-3
    init_candidates: int = 32  # random training pose codes ranked on the first frame
    init_shape_candidates: int = 1024  # training shape codes ranked there (every one when fewer)
    # paper schedule
    iterations: int = 500
    batch_pairs: int = 3
    keep_iteration: int = 400
    # fast schedule
    first_frame_iters: int = 150
    frame_iters: int = 30
    refine_steps: int = 150  # joint steps over all frames at once after tracking (0: none)
    refine_points: int = 1000  # canonical points per frame in a refinement step
    refine_lr_shape: float = 5e-4
    refine_shape_prior: float = 0.1
    silhouette_bound: bool = False  # in the refinement, off-silhouette partial SDF as an upper bound only
    lr_fast_pose: float = 3e-3
    lr_fast_translation: float = 2e-3
    extrapolate: bool = True  # also try a constant-velocity start per frame
    track_bank: bool = False  # also try every earlier frame's code as frame t's start
    bank_points: int = 500  # canonical points that rank those codes
    seed: int = 0
    device: str = "cpu"


def paper_config(**kw) -> FitConfig:
    """The reference's settings: 500 iterations over all frame pairs, 20k points per frame, and
    the reference's unknowns (translation, no rotation). Segmentation and the noise handling only
    change captures that need them (clean, segmented frames reach the energy unchanged)."""
    return FitConfig(
        **{
            "schedule": "paper",
            "canonical_samples": 500_000,
            "init_resolution": 256,
            "final_resolution": 512,
            "points_per_frame": 20_000,
            "use_rotation": False,
            **kw,
        }
    )


def fast_config(**kw) -> FitConfig:
    """Ours: frame-by-frame tracking, then a short joint refinement over all frames.

    Where it departs from the reference weights, and why:
    - L_icp 3 (not 1e-3) and L_c 3 (not 100): without encoders to start each frame near its pose,
      the observed points must pull fast limbs along, and a strong L_c drags them back.
    - pose prior 5e-3 (not 1e-4): with the reference weight, tracked codes drift out of the
      training distribution, where the decoder guesses.
    - shape prior 0.01 (not 0.1), on the first frame and in the refinement (which also uses the
      silhouette bound): the reference's 0.1 shrinks the shape code towards the mean body, so
      tall, heavy or thin people came out shorter and closer to average (a 2.0 m man's code
      at 0.8x the training codes' mean norm).
    - track_bank: a frame may start from any earlier frame's code, so a limb caught in a wrong
      basin recovers when the pose comes round again.
    - the first frame decides the shape every later frame is tracked with, so it gets 4x the
      initial pose candidates (128) and twice the iterations (300); the refinement uses 800 points.
    - 60 steps per later frame (not 30): with 30, a fast limb (a jumping jack's arms on their way
      up) falls behind for several frames; tracking is step-bound, not stuck in a wrong basin.
    The measured effect of each choice is in benchmarks/ (bench_fit.py and its results)."""
    return FitConfig(
        **{
            "schedule": "fast",
            "w_icp": 3.0,
            "w_temporal": 3.0,
            "w_pose_prior": 5e-3,
            "w_shape_prior": 0.01,
            "silhouette_bound": True,
            "refine_shape_prior": 0.01,
            "refine_lr_shape": 2e-3,
            "track_bank": True,
            "init_candidates": 128,
            "first_frame_iters": 300,
            "refine_points": 800,
            "frame_iters": 60,
            **kw,
        }
    )


def for_domain(cfg: FitConfig, domain) -> FitConfig:
    """cfg for a checkpoint's domain (domain.DomainInfo): the yaw search assumes a subject that
    stands upright along +y, so domains whose captures keep the canonical orientation
    (capture_rotation "none", the default for imported mesh folders) are fitted with the
    translation only. Returns a copy; cfg is not changed."""
    from dataclasses import replace

    return replace(cfg, use_rotation=cfg.use_rotation and domain.capture_rotation == "yaw")
