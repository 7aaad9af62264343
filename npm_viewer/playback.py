"""Playback clock of a clip: which frame to show at time `now`.

Modes:
  "real-time"    the frame due at (now - start) * fps: the clip takes its real duration, and frames
                 are skipped when the UI ticks more slowly than fps.
  "every frame"  each tick moves at most one frame, once 1/fps has passed since the last step:
                 every frame is shown, in order, and the clip plays slower when ticks are slower
                 than fps (a late tick does not make the next ones hurry).
fps is one of FPS_PRESETS or any number in (0, 1000]; "as recorded" is the clip's own rate.
At the end the clip loops, or stops on its last frame (play() then starts it again). Pause
keeps the frame on screen. Time is passed in (seconds on any monotonic clock), so the clock is
deterministic and testable.

Must not: read a clock, or know what a frame shows.
"""

from __future__ import annotations

import math

MODES = ("real-time", "every frame")
AS_RECORDED = "as recorded"
FPS_PRESETS = (10, 24, 25, 30, 60, AS_RECORDED)
_EPS = 1e-9  # seconds / frames of float slack (0.7 s * 30 fps is 20.999... in binary)


class Playback:
    """Frame index of a clip of n_frames over time; call advance(now) once per UI tick."""

    def __init__(
        self,
        n_frames: int,
        fps: float | str = 30.0,
        mode: str = "real-time",
        loop: bool = True,
        recorded_fps: float | None = None,
    ):
        self.n_frames = max(0, int(n_frames))
        self.recorded_fps = recorded_fps
        self.loop = loop
        self.frame = 0
        self.playing = False
        self.mode = "real-time"
        self.fps: float | str = 30.0
        self._anchor = (0.0, 0)  # real-time: (time, frame) playback started from
        self._due = 0.0  # every frame: time of the next step
        self.set_mode(mode, 0.0)
        self.set_fps(fps, 0.0)

    @property
    def rate(self) -> float:
        """Frames per second in use (fps, or the recorded rate for "as recorded")."""
        return float(self.recorded_fps if self.fps == AS_RECORDED else self.fps)

    def set_fps(self, fps: float | str, now: float) -> None:
        if fps == AS_RECORDED:
            if not (self.recorded_fps and 0 < self.recorded_fps <= 1000):
                raise ValueError(f"fps {AS_RECORDED!r}: this clip has no recorded rate (got {self.recorded_fps})")
        elif isinstance(fps, str) or not 0 < fps <= 1000:
            raise ValueError(f"fps must be one of {FPS_PRESETS} or a number in (0, 1000], got {fps!r}")
        self.advance(now)
        self.fps = fps
        self._restart(now)

    def set_mode(self, mode: str, now: float) -> None:
        if mode not in MODES:
            raise ValueError(f"playback mode must be one of {MODES}, got {mode!r}")
        self.advance(now)
        self.mode = mode
        self._restart(now)

    def set_n_frames(self, n_frames: int, now: float) -> None:
        """A new clip length: the frame is kept if it still exists, else the last one is shown."""
        self.advance(now)
        self.n_frames = max(0, int(n_frames))
        self.frame = min(self.frame, max(0, self.n_frames - 1))
        if self.n_frames == 0:
            self.playing = False
        self._restart(now)

    def play(self, now: float) -> None:
        if self.n_frames == 0:
            return
        if not self.loop and self.frame >= self.n_frames - 1:
            self.frame = 0  # stopped at the end: play again from the start
        self.playing = True
        self._restart(now)

    def pause(self, now: float) -> None:
        """Stop on the frame that is due now."""
        self.advance(now)
        self.playing = False

    def toggle(self, now: float) -> None:
        if self.playing:
            self.pause(now)
        else:
            self.play(now)

    def seek(self, frame: int, now: float) -> None:
        """Show `frame` (clamped to the clip); playing continues from there."""
        self.frame = min(max(int(frame), 0), max(0, self.n_frames - 1))
        self._restart(now)

    def advance(self, now: float) -> int:
        """The frame to show at `now` (moves the clock; call once per UI tick)."""
        if not self.playing or self.n_frames == 0:
            return self.frame
        period = 1.0 / self.rate
        if self.mode == "real-time":
            t0, f0 = self._anchor
            target = f0 + math.floor((now - t0) * self.rate + _EPS)
        elif now + _EPS >= self._due:
            target = self.frame + 1
            self._due = now + period if now - self._due > period else self._due + period
        else:
            return self.frame
        if target <= self.n_frames - 1:
            self.frame = target
        elif self.loop:
            self.frame = target % self.n_frames
        else:
            self.frame, self.playing = self.n_frames - 1, False
        return self.frame

    def _restart(self, now: float) -> None:
        """Time playback from `now` on the current frame."""
        self._anchor = (now, self.frame)
        self._due = now + 1.0 / self.rate
