"""What a panel may ask of the app: the Viewer protocol (App implements it; tests may fake it).

Panels (npm_viewer/panels/*) draw widgets, change the State and call these methods; they never
touch the app's worker, scene or window directly. Must not: import the app or polyscope.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from .loading import FitReplay, ModelInfo
from .state import State


class Viewer(Protocol):
    state: State  # everything selected, typed or toggled
    model: ModelInfo | None  # the open checkpoint's codes and labels (no decoders)
    replay: FitReplay | None  # the open fit result, loading or loaded
    recorder: object | None  # the frame recorder in progress (export panel), stepped after each rendered frame
    train_run: object | None  # the training run started or watched (train panel; workers.TrainRun)
    fit_run: object | None  # the fit started from the fit panel (fitting.FitRun)

    def request_mesh(self, preview: bool = False) -> None:
        """Ask the worker for what the current view shows (preview: coarse / anchor-posed, while dragging)."""

    def set_frame(self, k: int) -> None:
        """Show frame k of the current timeline (wrapped): every view reads this one index."""

    def toggle_play(self) -> None:
        """Play or pause the timeline (the pose view starts its motion if none is on)."""

    def select_panel(self, name: str) -> None:
        """Switch tab from code."""

    def open_checkpoint(self, path) -> bool:
        """Open a checkpoint (errors go to the messages; False then)."""

    def open_fit(self, path) -> bool:
        """Open a fit result for replay (loaded over the next frames)."""

    def show_live_fit(self, run) -> None:
        """Empty the sequence view (no replay) and show `run`'s frames there as they are tracked."""

    def request_live_frames(self, events: list) -> None:
        """Show newly tracked frames (progress-log lines of the live fit): depth points, posed bodies."""

    def browse(self, kind: str, title: str, start: str, on_done: Callable[[str], object]) -> None:
        """Open a folder dialog without blocking; on_done(path) when the user picks one."""

    def worker_status(self, channel: str = "main") -> tuple[bool, dict]:
        """(busy, stats of the last result) of a worker channel."""

    def mesh_on_screen(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(vertices [V, 3] metres, faces) of the body or fitted mesh shown now."""

    def capture(self, include_ui: bool = True) -> np.ndarray:
        """RGBA [H, W, 4] of the window as last rendered."""

    def timeline(self) -> tuple[int, float]:
        """(frames, fps) of what the current view plays; (0, 0.0) for a still view."""

    def settle(self, timeout: float = 120.0, frames: int = 3) -> None:
        """Run frames until the worker and loaders are idle (exports, scripts)."""

    def defer(self, fn: Callable[[], object]) -> None:
        """Run fn() after the current frame is rendered, outside the UI callback (work that renders frames)."""

    def screenshot(self, path, include_ui: bool = True) -> None:
        """Save a PNG of the window after the current frame is rendered."""
