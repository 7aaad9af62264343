"""npm-viewer: the window, the main loop and the panel registry (Polyscope + ImGui).

Thin on purpose: panels (npm_viewer/panels/*) draw widgets and change the State through the Viewer
interface (interface.py) that App implements; meshes come back from the MeshWorker process (the
UI thread never waits on torch) and go into the scene (scene.py), which owns the Polyscope
structures, visibility, camera and the frame shown. Every ps.*/psim.* call stays on this thread;
the loop is ours (ps.frame_tick), capped at ~30 fps when idle. Scene units are metres.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from npm_core import layout, space

from . import selection
from . import state as S
from .loading import FitReplay, ModelInfo
from .panels import common, export, pose, sequence, shape, train, transfer
from .panels import fit as fit_panel
from .render import save_png
from .scene import GT_COLOR, Scene, grid_offsets

PANEL_MODULES = {
    "shape": shape,
    "pose": pose,
    "transfer": transfer,
    "sequence": sequence,
    "fit": fit_panel,
    "train": train,
    "export": export,
}
DEFAULT_CHECKPOINT = "checkpoints/body-v1"
DEFAULT_FIT = "assets/example_fit"
REPO_ROOT = Path(__file__).resolve().parents[1]  # where the shipped checkpoint and example live
PANEL_WIDTH = 470


def shipped(path: str) -> str:
    """A default path as given if it exists here, else inside the repository (the app then opens
    the shipped checkpoint and example from any working directory)."""
    return path if Path(path).exists() or not (REPO_ROOT / path).exists() else str(REPO_ROOT / path)


def init_polyscope(backend: str | None = None, size=(1280, 800)) -> str:
    """Initialise Polyscope for the app; no DISPLAY -> the headless EGL backend."""
    import polyscope as ps

    from .render import start_polyscope

    backend = start_polyscope(backend)
    ps.set_program_name("NPM Explorer")
    ps.set_build_default_gui_panels(False)
    ps.set_open_imgui_window_for_user_callback(False)
    ps.set_window_size(*size)
    ps.set_up_dir("y_up")
    ps.set_front_dir("z_front")
    ps.set_ground_plane_mode("shadow_only")
    ps.set_transparency_mode("simple")  # one blended pass; "pretty" depth peeling was 7x slower per frame
    ps.set_automatically_compute_scene_extents(False)
    return backend


class App:
    """The explorer: State + scene + mesh worker + panels. Implements interface.Viewer."""

    def __init__(self, checkpoint: str | None = None, fit: str | None = None, worker=None):
        from .workers import MeshWorker

        self.scene = Scene(S.State(), PANEL_WIDTH)
        self.state.recent_checkpoints = [str(p) for p in layout.list_checkpoints("checkpoints")]
        self.model: ModelInfo | None = None
        self.replay: FitReplay | None = None
        self.worker = worker if worker is not None else MeshWorker()
        self.recorder = None
        self.train_run = None
        self.fit_run = None  # fitting.FitRun started from the Fit panel
        self.live = None  # fitting.LiveFrames of that fit, shown in the sequence view while it runs
        self.dialogs: dict = {}  # kind -> (FolderDialog, on_done)
        self._shots: list = []  # (path, include_ui) saved after the frame
        self._frame_ms = deque(maxlen=120)
        self._last_t = None
        self._tab_forced: str | None = None  # a tab chosen from code, held until ImGui shows it
        if checkpoint:
            if Path(checkpoint).exists():
                self.open_checkpoint(checkpoint)
            else:
                self.state.info(f"no checkpoint at {checkpoint} yet: open one above")
        if fit:
            if Path(fit).exists():
                self.open_fit(fit)
            else:
                self.state.info(f"no fit result at {fit}: open one in the Sequence panel")

    @property
    def state(self) -> S.State:
        return self.scene.state

    @state.setter
    def state(self, value: S.State) -> None:
        self.scene.state = value  # the scene reads the one State

    # ------------------------------------------------------------------ Viewer: opening things
    def open_checkpoint(self, path) -> bool:
        path = str(path).strip()
        try:
            m = ModelInfo.read(path)
        except (ValueError, OSError) as e:
            self.state.error(f"cannot open checkpoint: {e}")
            return False
        self.model = m
        st = self.state
        n = len(m.shape_codes)
        st.shape_a, st.shape_b, st.sampled = 0, min(1, n - 1), None
        st.reset_semantics(m.semantics)
        st.transfer_shape = 0
        st.gallery_shapes = list(range(min(3, n)))
        if m.pose_codes is not None:
            k = len(m.pose_codes)
            st.pose_a, st.pose_b, st.transfer_pose = 0, min(1, k - 1), 0
            st.motion, st.motion_on = next(iter(m.motions), ""), False
            st.gallery_poses = [rows[len(rows) // 2] for rows in list(m.motions.values())[:4]] or list(range(min(4, k)))
        st.checkpoint_text = path
        st.recent_checkpoints = S.push_recent(st.recent_checkpoints, path)
        st.info(
            f"opened {path}: {n} shape codes, "
            + (f"{len(m.pose_codes)} pose codes" if m.pose_codes is not None else "no pose stage")
        )
        if m.note:
            st.info(m.note)
        self.request_mesh()
        return True

    def open_fit(self, path) -> bool:
        path = str(path).strip()
        try:
            self.replay = FitReplay(path)
        except (ValueError, OSError) as e:
            self.state.error(f"cannot open fit result: {e}")
            return False
        for group in ("fit", "gt", "points"):
            self.scene.remove_group(group)
        st = self.state
        st.fit_text = path
        st.recent_fits = S.push_recent(st.recent_fits, path)
        st.frame, st.play_pos, st.playing = 0, 0.0, False
        st.info(f"loading fit {path} ({self.replay.frames} frames)")
        return True

    def files_dropped(self, paths) -> None:
        for p in paths:
            p = Path(p)
            p = p if p.is_dir() else p.parent
            if layout.is_fit(p):
                self.open_fit(p)
                self.select_panel("sequence")
            else:
                self.open_checkpoint(p)

    def browse(self, kind: str, title: str, start: str, on_done) -> None:
        try:
            self.dialogs[kind] = (common.FolderDialog(title, start or "."), on_done)
        except Exception as e:  # no dialog backend at all
            self.state.error(f"file dialog unavailable ({e}); type a path instead")

    # ------------------------------------------------------------------ Viewer: view and timeline
    def request_mesh(self, preview: bool = False) -> None:
        for r in selection.requests(self.state, self.model, preview):
            self.worker.submit(r.channel, self.model.path, r.items, r.resolution, r.pose_mode)

    def timeline(self) -> tuple[int, float]:
        """(frames, fps) of what the current view plays (0 frames: a still view)."""
        return selection.timeline(self.state, self.model, self.replay)

    def set_frame(self, k: int) -> None:
        st = self.state
        count, _ = self.timeline()
        st.frame = int(k) % count if count else max(0, int(k))
        st.play_pos = float(st.frame)
        if st.view == "pose" and st.motion_on:
            if not (st.playing and self.worker.busy("main")):  # while playing, a late frame is skipped
                self.request_mesh(preview=st.playing)
        self.scene.sync()

    def play(self, dt: float) -> None:
        """Advance the timeline by dt seconds while playing (sequence replay or motion playback)."""
        st = self.state
        count, fps = self.timeline()
        if not st.playing or not count:
            return
        old = st.frame
        st.play_pos, frame = S.advance(st.play_pos, dt, fps, st.speed, count)
        if frame != old:
            pos = st.play_pos
            self.set_frame(frame)
            st.play_pos = pos

    def select_panel(self, name: str) -> None:
        """Switch tab from code (tests, --panel, drag-and-drop)."""
        self._tab_forced = name
        self._set_panel(name)

    def _set_panel(self, name: str) -> None:
        old_view = self.state.view
        self.state.set_panel(name)
        if self.state.view != old_view:
            count, _ = self.timeline()
            if count:
                self.state.frame %= count
            self.request_mesh()
            self.scene.sync()

    def worker_status(self, channel: str = "main") -> tuple[bool, dict]:
        return self.worker.busy(channel), self.worker.last_stats.get(channel) or {}

    def mesh_on_screen(self):
        return self.scene.mesh_on_screen()

    def busy(self) -> bool:
        return self.worker.busy() or (self.replay is not None and not self.replay.done)

    # ------------------------------------------------------------------ results into the scene
    def apply_result(self, r) -> None:
        if r.error:
            self.state.error(f"mesh worker: {r.error}")
            return
        if r.channel == "main" and r.meshes:
            m = r.meshes[0]
            self.scene.set_mesh("body", "body", space.model_to_metres(m.vertices), m.faces, key=m.key)
        elif r.channel.startswith("fit:"):
            self._live_frame(r)
            return
        elif r.channel == "gallery":
            self.scene.remove_group("gallery")
            st = self.state
            offs = grid_offsets(len(st.gallery_shapes), len(st.gallery_poses), selection.GALLERY_SPACING)
            for k, m in enumerate(r.meshes):
                self.scene.set_mesh(f"gallery_{k:02d}", "gallery", space.model_to_metres(m.vertices) + offs[k], m.faces)
            self.scene.reframe()
        self.scene.sync()

    # ------------------------------------------------------------------ Viewer: live fit
    def show_live_fit(self, run) -> None:
        from .fitting import LiveFrames

        self.replay = None
        for group in ("fit", "gt", "points"):
            self.scene.remove_group(group)
        self.live = LiveFrames(run.options.sequence)
        self.state.view, self.state.frame, self.state.playing = "sequence", 0, False
        self.scene.reframe()

    def request_live_frames(self, events: list) -> None:
        """Depth points now, posed bodies from the worker (one channel per frame: none is dropped)."""
        run, live = self.fit_run, self.live
        if run is None or live is None:
            return
        for e in events:
            live.read_points(e["frame"])
            if e.get("shape_code") is not None and e.get("pose_code") is not None:
                items = [(np.asarray(e["shape_code"], np.float32), np.asarray(e["pose_code"], np.float32))]
                chan = f"fit:{id(live)}:{e['frame']}"
                self.worker.submit(chan, run.options.checkpoint, items, self.state.full_resolution, "preview")
        points = live.point_frames()
        if points is not None:
            self.scene.set_points("depth points", "points", points)
            if self.scene.get("fit") is None:
                self.scene.reframe()
                self.set_frame(len(points) - 1)

    def _live_frame(self, r) -> None:
        live, run = self.live, self.fit_run
        _, owner, frame = r.channel.split(":")
        if live is None or run is None or owner != str(id(live)) or not r.meshes or self.replay is not None:
            return  # a frame of an earlier fit, or the result is open already
        m = r.meshes[0]
        live.add_mesh(run.frames[int(frame)], m.key, m.vertices, m.faces)
        first = self.scene.get("fit") is None
        self.scene.set_mesh("fit", "fit", live.mesh_frames(), live.faces, key=("live", id(live), m.key))
        if first:
            self.scene.reframe()
        self.set_frame(live.count - 1)

    def load_replay(self) -> None:
        """Advance the fit being loaded; once loaded, its nodes go into the scene (all frames)."""
        rp = self.replay
        if rp is None or rp.done:
            return
        try:
            rp.load_step()
        except Exception as e:  # unreadable meshes or depth: report, drop the fit, keep running
            self.state.error(f"cannot load fit {rp.path}: {type(e).__name__}: {e}")
            self.replay = None
            return
        if not rp.done:
            return
        if rp.warning:
            self.state.info(rp.warning)
        self.state.info(f"loaded fit {rp.path.name}: {rp.frames} frames")
        sc = self.scene
        sc.set_mesh(
            "fit",
            "fit",
            rp.posed,
            rp.faces,
            key=("fit", id(rp)),
            scalars=rp.errors,
            scalar_range=(0.0, rp.error_range()),
        )
        if rp.gt is not None:
            sc.set_mesh("gt", "gt", rp.gt, rp.gt_faces, key=("gt", id(rp)), color=GT_COLOR, transparency=0.5)
        if rp.points is not None:
            sc.set_points("depth points", "points", rp.points)
        sc.reframe()
        self.set_frame(self.state.frame)

    # ------------------------------------------------------------------ frame
    def update(self, dt: float) -> None:
        """Everything but widgets: worker results, dialogs, loading, playback, panel updates."""
        for r in self.worker.poll():
            self.apply_result(r)
        self._poll_dialogs()
        self.load_replay()
        self.play(dt)
        for mod in PANEL_MODULES.values():
            if hasattr(mod, "update"):
                mod.update(self, dt)
        self.scene.sync()

    def _poll_dialogs(self) -> None:
        for kind, (dlg, on_done) in list(self.dialogs.items()):
            res = dlg.poll()
            if res is None:
                continue
            del self.dialogs[kind]
            if res:
                on_done(res)
            else:
                self.state.info("no folder chosen (is zenity or kdialog installed?); type the path and press Open")

    def callback(self) -> None:
        t = time.perf_counter()
        dt = 0.0 if self._last_t is None else min(t - self._last_t, 0.25)
        self._last_t = t
        self.update(dt)
        self.draw()

    def draw(self) -> None:
        import polyscope as ps
        import polyscope.imgui as psim

        _, h = ps.get_window_size()
        psim.SetNextWindowPos((8, 8))
        psim.SetNextWindowSize((PANEL_WIDTH, h - 16))
        psim.Begin(
            "NPM Explorer",
            True,
            psim.ImGuiWindowFlags_NoMove | psim.ImGuiWindowFlags_NoResize | psim.ImGuiWindowFlags_NoCollapse,
        )
        st = self.state
        psim.TextDisabled("checkpoint")
        common.path_picker(
            self, "checkpoint", "checkpoints", "checkpoint_text", "recent_checkpoints", self.open_checkpoint
        )
        for level, text in st.messages[-3:]:
            col = (1.0, 0.45, 0.4, 1.0) if level == "error" else (0.7, 0.85, 1.0, 1.0)
            psim.PushTextWrapPos(PANEL_WIDTH - 20)
            psim.TextColored(col, text)
            psim.PopTextWrapPos()
        if st.messages and psim.SmallButton("clear messages"):
            st.messages = []
        psim.Separator()
        if psim.BeginTabBar("panels", psim.ImGuiTabBarFlags_FittingPolicyResizeDown):
            for name, mod in PANEL_MODULES.items():
                flags = psim.ImGuiTabItemFlags_SetSelected if self._tab_forced == name else 0
                selected, _ = psim.BeginTabItem(mod.TITLE, True, flags)
                if selected and self._tab_forced == name:
                    self._tab_forced = None
                if selected:
                    if st.panel != name and self._tab_forced is None:
                        self._set_panel(name)
                    mod.draw(self)
                    psim.EndTabItem()
            psim.EndTabBar()
        ms = np.mean(self._frame_ms) if self._frame_ms else 0.0
        psim.Separator()
        psim.TextDisabled(f"frame {ms:.1f} ms" + ("   worker busy" if self.worker.busy() else ""))
        psim.End()

    def tick(self) -> None:
        """One frame: callbacks + render; then screenshots asked for during the frame, and the recorder."""
        import polyscope as ps

        t = time.perf_counter()
        ps.frame_tick()
        self._frame_ms.append((time.perf_counter() - t) * 1000)
        while self._shots:
            path, ui = self._shots.pop(0)
            save_png(path, self.capture(ui))
        if self.recorder is not None:
            self.recorder.after_frame(self)

    def capture(self, include_ui: bool = True) -> np.ndarray:
        """RGBA [H, W, 4] of the window. Polyscope re-runs the callback for a UI screenshot and
        ImGui then reports the first tab as selected: hold the current one while it does."""
        import polyscope as ps

        self._tab_forced = self.state.panel
        try:
            return ps.screenshot_to_buffer(transparent_bg=False, include_UI=include_ui)
        finally:
            self._tab_forced = None

    def screenshot(self, path, include_ui: bool = True) -> None:
        self._shots.append((str(path), include_ui))

    def attach(self) -> None:
        import polyscope as ps

        ps.set_user_callback(self.callback)
        ps.set_files_dropped_callback(self.files_dropped)

    def run(self, fps: float = 30.0) -> None:
        import polyscope as ps

        while not ps.window_requests_close():
            t = time.perf_counter()
            self.tick()
            time.sleep(max(0.0, 1.0 / fps - (time.perf_counter() - t)))

    def settle(self, timeout: float = 120.0, frames: int = 3) -> None:
        """Tick until the worker and loaders are idle (scripts, tests, screenshot mode)."""
        t = time.time()
        while self.busy() and time.time() - t < timeout:
            self.tick()
            time.sleep(0.01)
        for _ in range(frames):
            self.tick()

    def close(self) -> None:
        if self.train_run is not None:
            self.train_run.stop()
        if self.fit_run is not None:
            self.fit_run.stop()
        self.worker.close()


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        prog="npm-viewer", description="NPM Explorer: latent-space explorer for NPM body models"
    )
    p.add_argument(
        "--checkpoint", default=shipped(DEFAULT_CHECKPOINT), help=f"checkpoint directory (default {DEFAULT_CHECKPOINT})"
    )
    p.add_argument("--fit", default=shipped(DEFAULT_FIT), help=f"fit-result directory (default {DEFAULT_FIT})")
    p.add_argument("--panel", default="shape", choices=S.PANELS)
    p.add_argument("--frame", type=int, default=0, help="frame of the timeline to show (sequence, motion)")
    p.add_argument("--screenshot", help="render this state, write the screenshot (with UI) here and exit")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="state field before the screenshot, e.g. --set alpha=0.5 --set shape_b=4 --set gallery=true",
    )
    p.add_argument("--backend", help="polyscope backend (default: openGL3_egl when there is no display)")
    p.add_argument("--size", default="1280x800", help="window size WxH")
    return p.parse_args(argv)


def apply_overrides(app: App, pairs: list) -> None:
    """--set KEY=VALUE: YAML-typed values for State fields; then the view is asked for again."""
    import yaml

    for pair in pairs:
        key, _, value = pair.partition("=")
        if not hasattr(app.state, key):
            raise SystemExit(f"npm-viewer: unknown state field {key!r} in --set")
        setattr(app.state, key, yaml.safe_load(value))
    if pairs:
        app.request_mesh()
        app.scene.sync()


def main(argv=None) -> int:
    args = parse_args(argv)
    import polyscope as ps

    size = tuple(int(x) for x in args.size.lower().split("x"))
    backend = init_polyscope(args.backend, size)
    if backend == "openGL3_egl" and not args.screenshot:
        print(
            "npm-viewer: no display (DISPLAY unset): nothing to show a window on. "
            "Use --screenshot OUT.png to render headless.",
            file=sys.stderr,
        )
        return 2
    if args.screenshot:
        ps.set_frame_tick_limit_fps_mode("ignore_limits")
    app = App(args.checkpoint, args.fit)
    app.attach()
    try:
        app.select_panel(args.panel)
        apply_overrides(app, args.set)
        app.tick()
        if args.screenshot:
            app.settle()
            if args.frame:
                app.set_frame(args.frame)
            app.settle(frames=4)
            save_png(args.screenshot, app.capture(True))
            print(f"wrote {args.screenshot}")
        else:
            app.run()
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
