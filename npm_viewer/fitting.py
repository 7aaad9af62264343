"""Live fitting for the app: `npms fit` in a subprocess (FitRun) and what it has done so far, read
from the fit's per-frame progress log (layout.read_fit_progress) and its console progress bar.

Stop sends SIGTERM, which ends the process without writing a result (Ctrl-C / SIGINT would make
`npms fit` write the interrupted fit over --out). An earlier complete result in --out therefore
survives a stop; its progress log, which the new run starts afresh, is set aside at start and put
back unless the new run completes. LiveFrames turns tracked frames into scene data (posed
vertices in metres, depth points). Pure python and numpy: the UI polls this once per frame.
Must not: import polyscope or torch, draw, or block the UI (no waits but in stop()).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npm_core import layout
from npm_core.domain import DomainInfo

from .workers import TrainRun

_BAR = re.compile(r"fit \((\w+)\):[^\r\n]*?(\d+)/(\d+)[^\r\n]*?energy=([-+0-9.eE]+|nan|inf)")


@dataclass
class FitOptions:
    """What the Fit panel sends to `npms fit`."""

    checkpoint: str
    sequence: str
    out: str
    schedule: str = "fast"  # a name in npm_core.fit.SCHEDULES
    no_icp: bool = False
    no_temporal: bool = False
    no_segmentation: bool = False  # every depth pixel is the subject (no floor/background removal)
    resolution: int = 0  # output meshes, cells per axis; 0 = the schedule's
    frames: int = 0  # only the first N frames; 0 = all
    device: str = "cpu"
    threads: int = 0  # torch threads of the fit; 0 = all cores but one (the UI keeps one)

    def args(self) -> list[str]:
        """The arguments after `npms`."""
        a = ["fit", "--checkpoint", str(self.checkpoint), "--sequence", str(self.sequence), "--out", str(self.out)]
        a += ["--schedule", self.schedule, "--device", self.device, "--threads", str(self.threads or ui_threads())]
        a += ["--no-icp"] * self.no_icp + ["--no-temporal"] * self.no_temporal
        a += ["--no-segmentation"] * self.no_segmentation
        a += ["--resolution", str(self.resolution)] * (self.resolution > 0)
        a += ["--frames", str(self.frames)] * (self.frames > 0)
        return a


def ui_threads() -> int:
    """Threads for a fit started from the app: every core but one."""
    return max(1, (os.cpu_count() or 2) - 1)


class FitRun:
    """One `npms fit` subprocess (default `python -m npm_core.cli`; `prefix` replaces that, e.g. in
    tests) and its progress: tracked frames (events, newest per frame) and the energy curve."""

    def __init__(self, options: FitOptions, prefix: list | None = None):
        self.options = options
        self.out = Path(options.out)
        self.command = list(prefix or [sys.executable, "-m", "npm_core.cli"]) + options.args()
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.frames: dict[int, dict] = {}  # frame -> its progress-log line (FIT_PROGRESS_FIELDS)
        self.new: list[dict] = []  # lines read by the last poll(), for the caller to show
        self.total_frames = 0
        self.bar = (0, 0)  # (step, total) of the console bar
        self.curve: list[tuple[float, float]] = []  # (frame or iteration, energy)
        self.ended = False  # the process exited and the kept log was dealt with
        self._offset = self._log_offset = 0
        self._log_rest = ""
        self._next_poll = 0.0

    # ------------------------------------------------------------------ process
    def start(self) -> None:
        layout.set_aside_fit_progress(self.out)  # the earlier result's log, until this run completes
        fd, log = tempfile.mkstemp(prefix="npm-fit-", suffix=".log")
        self.log_path = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            self.proc = subprocess.Popen(self.command, stdout=fd, stderr=subprocess.STDOUT, env=env)
        except OSError:
            layout.end_set_aside_fit_progress(self.out, completed=False)
            raise
        finally:
            os.close(fd)

    def stop(self) -> None:
        """SIGTERM (a kill after 5 s): the fit ends without writing; --out keeps what it held before."""
        TrainRun.stop(self)
        self.poll()

    running = TrainRun.running  # the process is alive
    returncode = TrainRun.returncode  # None while running or never started
    log_tail = TrainRun.log_tail  # the console's last lines

    @property
    def finished(self) -> bool:
        """Exited 0 with a complete result in --out."""
        return self.returncode == 0 and layout.is_fit(self.out)

    def _end(self) -> None:
        """Once the process has exited: a completed run's log is the result's; else the earlier one returns."""
        self.ended = True
        layout.end_set_aside_fit_progress(self.out, completed=self.finished)

    # ------------------------------------------------------------------ progress
    def poll(self) -> list[dict]:
        """Read what the fit wrote since the last call: new tracked frames (returned, also in
        self.new) and the console bar; deal with the kept log once the process has exited."""
        exited = self.proc is not None and not self.running and not self.ended
        lines, self._offset = layout.read_fit_progress(self.out, self._offset) if not self.ended else ([], self._offset)
        self.new = [e for e in lines if isinstance(e.get("frame"), int)]
        for e in self.new:
            self.frames[e["frame"]] = e
            self.total_frames = int(e.get("frames") or self.total_frames)
            if isinstance(e.get("energy"), (int, float)):
                self.curve = [c for c in self.curve if c[0] != e["frame"]] + [(float(e["frame"]), float(e["energy"]))]
        self._read_console()
        if exited:
            self._end()
        return self.new

    def poll_every(self, seconds: float = 0.25) -> list[dict]:
        """poll() at most once per `seconds` while the process runs (called every UI frame)."""
        now = time.monotonic()
        if self.running and now < self._next_poll:
            self.new = []
            return []
        self._next_poll = now + seconds
        return self.poll()

    def _read_console(self) -> None:
        if self.log_path is None or not self.log_path.exists():
            return
        with open(self.log_path, "rb") as f:
            f.seek(self._log_offset)
            data = f.read()
        self._log_offset += len(data)
        text = self._log_rest + data.decode(errors="replace")
        cut = max(text.rfind("\r"), text.rfind("\n"))
        self._log_rest = text[cut + 1 :] if cut >= 0 else text
        for m in _BAR.finditer(text[: cut + 1] if cut >= 0 else ""):
            step, total, energy = int(m.group(2)), int(m.group(3)), float(m.group(4))
            self.bar = (step, total)
            if m.group(1) == "paper" and (not self.curve or self.curve[-1][0] != step):
                self.curve.append((float(step), energy))  # the paper schedule has no per-frame lines

    @property
    def fraction(self) -> float:
        step, total = self.bar
        if self.finished:
            return 1.0
        return min(1.0, step / total) if total else (len(self.frames) / self.total_frames if self.total_frames else 0.0)

    def status(self) -> str:
        if self.proc is None:
            return "not started"
        if self.running:
            n = f"{len(self.frames)}/{self.total_frames} frames tracked" if self.total_frames else "starting"
            return n + (f", step {self.bar[0]}/{self.bar[1]}" if self.bar[1] else "")
        if self.finished:
            return f"done: {self.out}"
        return "stopped" if self.returncode in (-15, -9) else f"failed (exit code {self.returncode})"


class LiveFrames:
    """Scene data of the frames tracked so far: each frame's posed body (the worker's canonical
    mesh posed by the frame's pose code, model units) placed by its rotation and translation, in
    metres as the checkpoint's `domain` says, and the frame's depth points (read on a background
    thread: file reads stay off the UI thread). Frames are shown in order; a frame not yet posed
    shows the previous one."""

    def __init__(self, sequence, domain: DomainInfo | None = None, max_points: int = 15000):
        self.sequence = Path(sequence)
        self.domain = domain or DomainInfo()
        self.max_points = max_points
        self.key = None  # topology of the meshes held (worker mesh key)
        self.faces = None
        self.posed: dict[int, np.ndarray] = {}  # frame -> [V, 3] metres
        self.points: dict[int, np.ndarray] = {}  # frame -> [M, 3] metres
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="npm-live-depth")
        self._reading: dict = {}  # frame -> Future of its points

    def add_mesh(self, event: dict, key, vertices: np.ndarray, faces: np.ndarray) -> None:
        """The worker's posed canonical mesh (vertices [V, 3] model units, before the frame's
        rotation and translation) for the progress-log line `event`."""
        if key != self.key:  # a new shape code: earlier frames' bodies are of the old one
            self.key, self.faces, self.posed = key, faces, {}
        rot = np.asarray(event.get("rotation") or np.eye(3), np.float32).reshape(3, 3)
        tau = np.asarray(event.get("translation") or np.zeros(3), np.float32).reshape(3)
        self.posed[int(event["frame"])] = self.domain.model_to_metres(vertices @ rot.T + tau).astype(np.float32)

    def read_points(self, frame: int) -> None:
        """Start reading frame's depth points; take_points() collects them."""
        self._reading[frame] = self._reader.submit(self._read, frame)

    def _read(self, frame: int) -> np.ndarray | None:
        from npm_core.data.depth import read_sequence

        try:
            return np.asarray(read_sequence(self.sequence, slice(frame, frame + 1)).points(0), np.float32)
        except (OSError, ValueError, IndexError):  # the frame is not there: shown without points
            return None

    def take_points(self) -> bool:
        """Collect the depth reads that finished; True when a frame's points arrived."""
        done = [t for t, f in self._reading.items() if f.done()]
        for t in done:
            p = self._reading.pop(t).result()
            if p is not None:
                self.points[t] = p
        return bool(done)

    def wait_points(self, timeout: float = 30.0) -> None:
        """Block until every started read is done (tests, scripts)."""
        for f in list(self._reading.values()):
            f.result(timeout)

    def mesh_frames(self) -> np.ndarray | None:
        """[T, V, 3] metres, T = last posed frame + 1 (gaps repeat the frame before), or None."""
        return _in_order(self.posed)

    def point_frames(self) -> np.ndarray | None:
        """[T, N, 3] metres with one N for all frames (loading.fixed_count), or None."""
        from .loading import fixed_count

        if not self.points:
            return None
        frames = list(_in_order(self.points, stack=False))
        return fixed_count(
            frames, self.max_points, np.concatenate(frames).mean(0) if any(len(p) for p in frames) else 0
        )

    @property
    def count(self) -> int:
        return max(self.posed, default=-1) + 1


def _in_order(by_frame: dict, stack: bool = True):
    if not by_frame:
        return None
    rows, last = [], by_frame[min(by_frame)]
    for t in range(max(by_frame) + 1):
        last = by_frame.get(t, last)
        rows.append(last)
    return np.stack(rows) if stack else rows
