"""Test-time optimisation of NPM codes to a monocular depth sequence (NPMs section 3.4).

One shape code, and a pose code, translation and (optionally) rotation of the whole body per
frame, fitted to the partial SDFs of the depth frames with the decoders frozen. A capture is
segmented and centred first (data/capture.py); noisy frames are detected and smoothed
(data/sensor.py). Two schedules of the same energy: `paper` (the reference's joint optimisation
over all frame pairs, translation only) and `fast` (frame-by-frame tracking, then a joint
refinement). Modules, one job each:
  config.py     FitConfig and the schedules' settings (fast_config, paper_config)
  problem.py    observations (PartialSDF), rotations, the energy terms, canonical samples, initial codes
  schedules.py  the paper and fast schedules and their registry SCHEDULES
  run.py        fit(): capture preparation + problem + initial codes + schedule -> FitResult
  results.py    a FitResult written as a fit-result directory (layout.py names its files)
Model units throughout; depth files and output meshes are in metres (space.py).
"""

from .config import FitConfig, FitError, fast_config, for_domain, paper_config
from .problem import PartialSDF, Problem, reconstruction_loss
from .results import LoadedFit, earlier_log_kept, frame_log, read_result, write_result
from .run import FitResult, fit
from .schedules import SCHEDULES, Codes, FrameUpdate, Reporter, Schedule

__all__ = [
    "SCHEDULES",
    "Codes",
    "FitConfig",
    "FitError",
    "FitResult",
    "FrameUpdate",
    "LoadedFit",
    "PartialSDF",
    "Problem",
    "Reporter",
    "Schedule",
    "earlier_log_kept",
    "fast_config",
    "fit",
    "for_domain",
    "frame_log",
    "paper_config",
    "read_result",
    "reconstruction_loss",
    "write_result",
]
