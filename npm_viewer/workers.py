"""Background work for the viewer: the mesh process (extraction + posing) and training runs.

MeshWorker: one process started with `spawn` (Polyscope holds the GIL for a whole frame, and
fork would copy GL state), torch threads = cores - 1. Requests carry a job id and a channel
("main", "gallery"); the process drains its queue and keeps only the newest request per channel
(latest wins). Canonical meshes are cached in memory by (code, resolution), so a pose change only
moves vertices, and on disk (npm_core.mesh.cache, keyed by checkpoint content, code, resolution and
extractor settings), so a later start shows them without torch: torch and the decoders are loaded
only on a disk-cache miss or for posing. A full-resolution miss with coarse_first sends a coarse
mesh first (a MeshResult with partial=True, same job) and then the full one. Pose "preview" is npm_core.mesh.posing's anchor posing (weights built once per cached
mesh); "exact" poses every vertex. Results are numpy arrays in model units. The decoders live
here only: the UI process reads codes and labels, never builds a decoder.
TrainRun: `npms train` (or any command) as a subprocess, progress read from its JSON lines.
Must not: import polyscope, or draw.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VIEW_LIPSCHITZ = 1.0  # narrow band of the app's meshes: ~60% of the evaluations of npm_core's L=2 (a true
# SDF needs 1; the guard re-runs with 2L, then dense, if a mesh comes out open; on body-v1 the
# meshes were identical to L=2's), which keeps a 128^3 body near 1 s on 2 cores


@dataclass
class MeshRequest:
    job: int
    channel: str
    checkpoint: str
    items: list  # [(shape code [Ds] float32, pose code [Dp] float32 or None), ...]
    resolution: int
    pose_mode: str = "exact"  # "exact" | "preview"
    lipschitz: float | None = None  # narrow-band bound; None = VIEW_LIPSCHITZ
    coarse_first: int = 0  # > 0: on a disk-cache miss, send a mesh at this resolution first


@dataclass
class Mesh:
    key: tuple  # (code bytes hash, resolution): same key = same canonical mesh and faces
    vertices: np.ndarray  # [V, 3] float32, model units (posed if a pose code was given)
    faces: np.ndarray  # [F, 3] int32


@dataclass
class MeshResult:
    job: int
    channel: str
    meshes: list = field(default_factory=list)  # [Mesh]
    stats: dict = field(default_factory=dict)  # extract_s, pose_s, total_s, resolution, vertices, cached
    error: str | None = None
    partial: bool = False  # a coarse mesh sent first; the full one follows with the same job


def latest_per_channel(requests: list) -> list:
    """Newest request of each channel, oldest channel first (what the worker actually runs)."""
    latest = {}
    for r in requests:
        if r.channel not in latest or r.job > latest[r.channel].job:
            latest[r.channel] = r
    return sorted(latest.values(), key=lambda r: r.job)


class _Serve:
    """The worker process's state: loaded model, canonical-mesh cache, anchor weights."""

    def __init__(self, cache_size: int = 16):
        from npm_core.mesh.cache import MeshCache

        self.torch = None  # imported on the first disk-cache miss or pose (3-5 s on a busy CPU)
        self.path, self.model = None, None
        self.cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.disk = MeshCache()
        self.wanted: str | None = None  # checkpoint of the last request (preloaded when idle)

    def model_for(self, path: str):
        """The checkpoint at `path`, reloaded when its stage files change (a finished training run)."""
        from npm_core import layout

        files = [layout.checkpoint_stage_path(path, s) for s in layout.STAGES]
        stamp = (path, *[f.stat().st_mtime_ns if f.exists() else 0 for f in files])
        if stamp != self.path:
            if self.torch is None:
                import torch

                # leave one core to the UI process (on 2 cores: 1 thread, UI frames stay ~2 ms while it works)
                torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
                self.torch = torch
            from npm_core.models.checkpoint import load_model

            self.model, self.path = None, None
            self.model = load_model(path, meta=False)  # the labels in meta.yaml are the UI's, not needed here
            self.path = stamp
            self.cache.clear()
        return self.model

    def canonical(
        self, checkpoint: str, code: np.ndarray, resolution: int, stats: dict, lipschitz: float | None = None
    ):
        """(key, {"v", "f", "anchors"}) of the canonical mesh: memory, then disk cache, then extraction."""
        from npm_core.mesh.cache import key_for

        lipschitz = lipschitz or VIEW_LIPSCHITZ
        try:
            disk_key = key_for(checkpoint, code, resolution, lipschitz=lipschitz)
        except OSError:  # no shape stage: model_for names the missing file
            self.model_for(checkpoint)
            raise
        key = (disk_key, resolution)
        if key in self.cache:
            self.cache.move_to_end(key)
            stats["cached"] = True
            return key, self.cache[key]
        hit = self.disk.get(disk_key)
        if hit is not None:
            stats["disk_cache"] = True
            v, f = hit
        else:
            from npm_core.mesh.extract import extract

            model = self.model_for(checkpoint)
            t = time.perf_counter()
            res = extract(model.shape_decoder.sdf_fn(self.torch.from_numpy(code)), resolution, lipschitz=lipschitz)
            stats["extract_s"] = stats.get("extract_s", 0.0) + time.perf_counter() - t
            stats["method"] = res.method
            v, f = res.vertices.numpy().astype(np.float32), res.faces.numpy().astype(np.int32)
            self.disk.put(disk_key, v, f)
        entry = {"v": v, "f": f, "anchors": None}
        self.cache[key] = entry
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return key, entry

    def preload(self) -> None:
        """Load the last requested checkpoint's decoders if not loaded yet (errors are reported on use)."""
        if self.wanted and self.path is None:
            try:
                self.model_for(self.wanted)
            except Exception:
                pass
            finally:
                self.wanted = self.wanted if self.path else None

    def on_disk(self, checkpoint: str, code: np.ndarray, resolution: int, lipschitz: float | None) -> bool:
        from npm_core.mesh.cache import key_for

        try:
            return self.disk.path(key_for(checkpoint, code, resolution, lipschitz=lipschitz or VIEW_LIPSCHITZ)).exists()
        except OSError:
            return False

    def pose(self, entry: dict, shape_code: np.ndarray, pose_code: np.ndarray, mode: str) -> np.ndarray:
        torch = self.torch
        fn = self.model.pose_decoder.displacement_fn(torch.from_numpy(shape_code), torch.from_numpy(pose_code))
        v = entry["v"]
        with torch.inference_mode():
            from npm_core.mesh import posing

            if mode == "preview" and len(v) > posing.ANCHORS:
                if entry["anchors"] is None:
                    entry["anchors"] = posing.anchors(v)
                return posing.pose_with_anchors(v, entry["anchors"], lambda x: fn(torch.from_numpy(x)).numpy())
            from npm_core.mesh.extract import pose_mesh

            return pose_mesh(torch.from_numpy(v), fn).numpy()

    def run(self, req: MeshRequest, resolution: int | None = None) -> MeshResult:
        resolution = resolution or req.resolution
        out = MeshResult(req.job, req.channel, stats={"resolution": resolution, "extract_s": 0.0, "pose_s": 0.0})
        t0 = time.perf_counter()
        try:
            for shape_code, pose_code in req.items:
                shape_code = np.asarray(shape_code, np.float32)
                key, entry = self.canonical(req.checkpoint, shape_code, resolution, out.stats, req.lipschitz)
                v = entry["v"]
                model = self.model_for(req.checkpoint) if pose_code is not None else None
                if model is not None and model.pose_decoder is not None:
                    t = time.perf_counter()
                    v = self.pose(entry, shape_code, np.asarray(pose_code, np.float32), req.pose_mode)
                    out.stats["pose_s"] += time.perf_counter() - t
                out.meshes.append(Mesh(key, v.astype(np.float32), entry["f"]))
            out.stats["vertices"] = int(sum(len(m.vertices) for m in out.meshes))
        except Exception as e:  # a bad checkpoint, a decoder error: reported, the worker lives on
            out.error = f"{type(e).__name__}: {e}"
            out.meshes = []
        out.stats["total_s"] = time.perf_counter() - t0
        out.stats["pose_mode"] = req.pose_mode
        return out


def serve(requests, results, stop, paused) -> None:
    """Worker process main loop: block for a request, drain the queue, run the newest per channel.
    While idle, the decoders of the last request's checkpoint are loaded (a cached body needs none,
    so the first request is not kept waiting for them)."""
    server = _Serve()
    while not stop.is_set():
        if paused.is_set():
            time.sleep(0.01)
            continue
        try:
            pending = [requests.get(timeout=0.1)]
        except queue.Empty:
            server.preload()  # idle: load the decoders a cached mesh did not need, before they are asked for
            continue
        while paused.is_set() and not stop.is_set():  # requests pile up; the newest will win
            time.sleep(0.01)
        while True:
            try:
                pending.append(requests.get_nowait())
            except queue.Empty:
                break
        if any(r is None for r in pending):
            return
        for req in latest_per_channel(pending):
            server.wanted = req.checkpoint
            if 0 < req.coarse_first < req.resolution and not all(
                server.on_disk(req.checkpoint, np.asarray(s, np.float32), req.resolution, req.lipschitz)
                for s, _ in req.items
            ):
                first = server.run(req, req.coarse_first)
                first.partial = first.error is None
                results.put(first)
            results.put(server.run(req))


class MeshWorker:
    """Main-process handle: submit() returns a job id; poll() returns results newer than the
    last one handed out for their channel; busy() tells whether a channel waits for a result."""

    def __init__(self):
        ctx = mp.get_context("spawn")
        self.requests, self.results = ctx.Queue(), ctx.Queue()
        self.stop_event, self.paused = ctx.Event(), ctx.Event()
        self.proc = ctx.Process(
            target=serve,
            args=(self.requests, self.results, self.stop_event, self.paused),
            daemon=True,
            name="npm-viewer-mesh",
        )
        self.proc.start()
        self.job = 0
        self.submitted: dict[str, int] = {}
        self.answered: dict[str, int] = {}
        self.last_stats: dict[str, dict] = {}

    def submit(
        self,
        channel: str,
        checkpoint,
        items,
        resolution: int,
        pose_mode: str = "exact",
        lipschitz: float | None = None,
        coarse_first: int = 0,
    ) -> int:
        self.job += 1
        self.submitted[channel] = self.job
        self.requests.put(
            MeshRequest(
                self.job, channel, str(checkpoint), list(items), int(resolution), pose_mode, lipschitz, coarse_first
            )
        )
        return self.job

    def poll(self) -> list[MeshResult]:
        out = []
        while True:
            try:
                r = self.results.get_nowait()
            except queue.Empty:
                break
            if r.job > self.answered.get(r.channel, 0):
                if r.partial:  # shown, but the channel still waits for the full mesh of this job
                    if r.job == self.submitted.get(r.channel):
                        out.append(r)
                    continue
                self.answered[r.channel] = r.job
                self.last_stats[r.channel] = r.stats
                out.append(r)
        return out

    def busy(self, channel: str | None = None) -> bool:
        chans = [channel] if channel else list(self.submitted)
        return any(self.submitted.get(c, 0) > self.answered.get(c, 0) for c in chans)

    def wait(self, timeout: float = 60.0) -> list[MeshResult]:
        """Block until every channel is answered (scripts, tests, screenshot mode)."""
        out, t = [], time.time()
        while self.busy() and time.time() - t < timeout:
            out += self.poll()
            if self.busy():
                time.sleep(0.005)
        return out

    def close(self) -> None:
        if self.proc.is_alive():
            self.stop_event.set()
            self.requests.put(None)
            self.proc.join(3)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(2)


class TrainRun:
    """A training stage in a subprocess (default `python -m npm_core.cli train STAGE`), or, with
    no command started, a watcher of a checkpoint's progress file. Events of `stage` only."""

    def __init__(
        self, out_dir, stage: str, config: str | None = None, command: list | None = None, data: str | None = None
    ):
        """data: an imported dataset (`npms data import`) to train the shape stage on; the pose stage
        takes the dataset the checkpoint recorded."""
        from npm_core import layout

        self.out_dir, self.stage, self.config = Path(out_dir), stage, config
        self.progress_file = layout.checkpoint_progress_path(self.out_dir)
        self.command = command or (
            [sys.executable, "-m", "npm_core.cli", "train", stage, "--out", str(self.out_dir)]
            + (["--config", config] if config else [])
            + (["--data", data] if data and stage == "shape" else [])
        )
        self.proc: subprocess.Popen | None = None
        self.offset, self.events = 0, []
        self.log_path: Path | None = None
        self.started = 0.0
        self.reported = False  # the end of the run was told to the user
        self._next_poll = 0.0

    def start(self) -> None:
        if self.running:
            return
        fd, log = tempfile.mkstemp(prefix=f"npm-train-{self.stage}-", suffix=".log")
        self.log_path = Path(log)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(self.command, stdout=fd, stderr=subprocess.STDOUT, env=env)
        os.close(fd)
        self.started = time.time()

    def stop(self) -> None:
        """SIGTERM (training keeps its per-epoch resumable state; start again to resume)."""
        if self.running:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def returncode(self):
        return None if self.proc is None else self.proc.poll()

    def poll(self) -> list:
        from npm_core.progress import read_events

        new, self.offset = read_events(self.progress_file, self.offset)
        new = [e for e in new if e.stage == self.stage]
        self.events += new
        return new

    def poll_every(self, seconds: float = 0.5) -> list:
        """poll() at most once per `seconds` while the process runs (called every UI frame)."""
        now = time.monotonic()
        if self.running and now < self._next_poll:
            return []
        self._next_poll = now + seconds
        return self.poll()

    @property
    def last(self):
        return self.events[-1] if self.events else None

    @property
    def fraction(self) -> float:
        e = self.last
        if e is None or not e.total_epochs:
            return 0.0
        return 1.0 if e.done else min(1.0, e.epoch / e.total_epochs)

    @property
    def finished(self) -> bool:
        """The subprocess exited 0 or the log says done."""
        return (self.proc is not None and self.returncode == 0) or bool(self.last and self.last.done)

    def loss_curve(self, key: str = "total") -> tuple[np.ndarray, np.ndarray]:
        pts = [(e.step, e.losses[key]) for e in self.events if key in e.losses and e.losses[key] > 0]
        if not pts:
            return np.zeros(0), np.zeros(0)
        a = np.asarray(pts, np.float64)
        return a[:, 0], a[:, 1]

    def log_tail(self, n: int = 3) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace").replace("\r", "\n")
        return "\n".join([ln for ln in text.splitlines() if ln.strip()][-n:])
