"""npm-viewer: the window, the main loop and the panel registry (Polyscope + ImGui).

Thin on purpose: panels (npm_viewer/panels/*) draw widgets and change the State through the Viewer
interface (interface.py) that App implements; meshes come back from the MeshWorker process (the
UI thread never waits on torch) and go into the scene (scene.py), which owns the Polyscope
structures, visibility, camera and the frame shown. Playback (playback.py) and the keyboard
(shortcuts.py) are polled once per frame. Every ps.*/psim.* call stays on this thread; the loop
is ours (ps.frame_tick), capped at ~30 fps when idle. Scene units are metres.
$NPM_VIEWER_TIMES=FILE: JSON lines {"event", "t"} (t: time.time()) when the first frame is drawn,
the first body and the full-resolution body are shown (benchmarks/bench_startup.py reads them).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from npm_core import layout
from npm_core.domain import DomainInfo

from . import playback as P
from . import selection
from . import state as S
from .loading import FitReplay, ModelInfo, read_domain
from .panels import common, export, pose, sequence, shape, train, transfer
from .panels import fit as fit_panel
from .render import save_png
from .scene import FACING_COLOR, GT_COLOR, REMOVED_COLOR, Scene, grid_offsets, sizes_for
from .shortcuts import Shortcuts, help_rows, pressed_keys

PANEL_MODULES = {
    "shape": shape,
    "pose": pose,
    "transfer": transfer,
    "sequence": sequence,
    "fit": fit_panel,
    "train": train,
    "export": export,
}
DEFAULT_CHECKPOINT = "checkpoints/body-v2"
DEFAULT_FIT = "assets/example_fit"
REPO_ROOT = Path(__file__).resolve().parents[1]  # where the shipped checkpoint and example live
PANEL_WIDTH = 470  # at most; a narrow window gets a narrower panel, and the user may resize it
STATUS_LINES = 2  # the fixed message area: progress line + last message (the rest in the log popup)


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
        self._after: list = []  # work that renders frames itself (video export): run after the frame
        self._frame_ms = deque(maxlen=120)
        self._last_t = None
        self.playback = P.Playback(0)
        self.clock = 0.0  # seconds of UI time (sum of frame dt): the playback clock
        self.keys = Shortcuts()
        self.progress = ""  # what the worker is doing for the body, shown in the fixed message area
        self._times = os.environ.get("NPM_VIEWER_TIMES")
        self._logged: set = set()
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
    def log_time(self, event: str) -> None:
        """Append {"event", "t"} to $NPM_VIEWER_TIMES once per event (start-up measurements)."""
        if self._times and event not in self._logged:
            self._logged.add(event)
            with open(self._times, "a") as f:
                f.write(json.dumps({"event": event, "t": time.time()}) + "\n")

    def open_checkpoint(self, path) -> bool:
        path = str(path).strip()
        try:
            m = ModelInfo.read(path)
        except (ValueError, OSError) as e:
            self.state.error(f"cannot open checkpoint: {e}")
            return False
        if self.model is None or m.domain != self.model.domain:  # shapes of another size: framed anew
            self.scene.sizes = sizes_for(m.domain)
            self.scene.reframe()
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
        self.request_mesh(coarse=True)
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
        st.info(f"reading fit {path} ({self.replay.frames} frames)")
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
    def request_mesh(self, preview: bool = False, coarse: bool = False) -> None:
        """coarse: on a mesh-cache miss the worker sends a preview-resolution body first (opening a checkpoint)."""
        st = self.state
        for r in selection.requests(st, self.model, preview):
            if r.channel == "main" and not preview:
                self._show_cached(r)
            first = st.preview_resolution if coarse and r.channel == "main" and not preview else 0
            self.worker.submit(r.channel, self.model.path, r.items, r.resolution, r.pose_mode, coarse_first=first)
            if r.channel == "main" and r.resolution >= st.full_resolution:
                self.progress = f"computing the body ({r.resolution}^3)"

    def _show_cached(self, r) -> None:
        """An unposed body already in the disk mesh cache goes on screen now, before the worker
        (started in parallel, still busy importing on a fresh start) answers with the same mesh."""
        if len(r.items) != 1 or r.items[0][1] is not None:
            return
        from npm_core.mesh.cache import MeshCache, key_for

        from .workers import VIEW_LIPSCHITZ

        try:
            key = key_for(self.model.path, r.items[0][0], r.resolution, lipschitz=VIEW_LIPSCHITZ)
            hit = MeshCache().get(key)
        except (OSError, ValueError):
            return
        if hit is not None:
            self.scene.set_mesh("body", "body", self.to_metres(hit[0]), hit[1], key=(key, r.resolution))
            self.log_time("first_body")
            if r.resolution >= self.state.full_resolution:
                self.log_time("full_body")
            self.scene.sync()

    def to_metres(self, vertices):
        """Model-unit vertices [..., 3] of the open checkpoint -> scene metres (its domain's units)."""
        return (self.model.domain if self.model is not None else DomainInfo()).model_to_metres(vertices)

    def timeline(self) -> tuple[int, float]:
        """(frames, fps) of what the current view plays (0 frames: a still view)."""
        return selection.timeline(self.state, self.model, self.replay)

    def set_frame(self, k: int) -> None:
        """Show frame k (wrapped); playback goes on from there if playing."""
        self._show_frame(k)
        self.playback.seek(self.state.frame, self.clock)

    def _show_frame(self, k: int) -> None:
        st = self.state
        count, _ = self.timeline()
        st.frame = int(k) % count if count else max(0, int(k))
        st.play_pos = float(st.frame)
        if st.view == "pose" and st.motion_on:
            # exact posing always; in real-time mode a frame due while the worker is busy is skipped
            if not (st.playing and self.worker.busy("main")):
                self.request_mesh()
        self.scene.sync()

    def toggle_play(self) -> None:
        """Space / Play: the pose view starts its selected motion when none is on."""
        st = self.state
        if st.view == "pose" and not st.motion_on and self.model is not None and self.model.motions:
            st.motion = st.motion if st.motion in self.model.motions else next(iter(self.model.motions))
            st.motion_on = True
            self.set_frame(0)
        st.playing = not st.playing
        if not st.playing and st.view == "pose":
            self.request_mesh()  # the paused frame, posed exactly

    def _sync_playback(self) -> int:
        """Bring the Playback clock in line with the State (clip length, fps, mode, play/pause); the frame count."""
        st, pb, now = self.state, self.playback, self.clock
        count, fps = self.timeline()
        if pb.n_frames != count:
            pb.set_n_frames(count, now)
        pb.recorded_fps = fps or None
        want = st.play_fps if st.play_fps != P.AS_RECORDED or fps else 30.0
        if pb.fps != want:
            pb.set_fps(want, now)
        if pb.mode != st.play_mode:
            pb.set_mode(st.play_mode, now)
        if st.playing and count and not pb.playing:
            pb.seek(st.frame, now)
            pb.play(now)
        elif pb.playing and pb.frame != st.frame:  # the State was changed directly: it wins
            pb.seek(st.frame, now)
        elif pb.playing and not (st.playing and count):
            pb.pause(now)
            pb.seek(st.frame, now)  # pause keeps the frame on screen
        return count

    def play(self, dt: float) -> None:
        """Advance the timeline by dt seconds while playing (sequence replay or motion playback).
        Every-frame mode waits for the worker's exact pose of each motion frame before the next."""
        st = self.state
        count = self._sync_playback()
        self.clock += dt
        if not st.playing or not count:
            return
        if st.play_mode == "every frame" and st.view == "pose" and self.worker.busy("main"):
            self.playback.seek(st.frame, self.clock)  # hold: the next frame is due 1/fps after this one arrives
            return
        frame = self.playback.advance(self.clock)
        if not self.playback.playing:
            st.playing = False  # the clip ended (no loop)
        if frame != st.frame:
            self._show_frame(frame)

    def select_panel(self, name: str) -> None:
        """Switch tab from code (tests, --panel, drag-and-drop)."""
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
            self.progress = ""
            return
        if r.channel == "main" and r.meshes:
            m = r.meshes[0]
            self.scene.set_mesh("body", "body", self.to_metres(m.vertices), m.faces, key=m.key)
            self.log_time("first_body")
            res = r.stats.get("resolution", 0)
            if r.partial:
                self.progress = f"coarse body ({res}^3) shown; computing {self.state.full_resolution}^3 ..."
            else:
                self.progress = ""
                if res >= self.state.full_resolution:
                    self.log_time("full_body")
        elif r.channel.startswith("fit:"):
            self._live_frame(r)
            return
        elif r.channel == "gallery":
            self.scene.remove_group("gallery")
            st = self.state
            offs = grid_offsets(len(st.gallery_shapes), len(st.gallery_poses), self.scene.sizes.gallery_spacing)
            for k, m in enumerate(r.meshes):
                self.scene.set_mesh(f"gallery_{k:02d}", "gallery", self.to_metres(m.vertices) + offs[k], m.faces)
            self.scene.reframe()
        self.scene.sync()

    # ------------------------------------------------------------------ Viewer: live fit
    def show_live_fit(self, run) -> None:
        from .fitting import LiveFrames

        self.replay = None
        for group in ("fit", "gt", "points"):
            self.scene.remove_group(group)
        self.live = LiveFrames(run.options.sequence, read_domain(run.options.checkpoint))
        self.state.view, self.state.frame, self.state.playing = "sequence", 0, False
        self.scene.reframe()

    def request_live_frames(self, events: list) -> None:
        """Depth points read off the UI thread, posed bodies from the worker (one channel per frame:
        none is dropped); called every frame while the fit runs, with the newly tracked frames."""
        run, live = self.fit_run, self.live
        if run is None or live is None or self.replay is not None:
            return
        for e in events:
            live.read_points(e["frame"])
            if e.get("shape_code") is not None and e.get("pose_code") is not None:
                items = [(np.asarray(e["shape_code"], np.float32), np.asarray(e["pose_code"], np.float32))]
                chan = f"fit:{id(live)}:{e['frame']}"
                self.worker.submit(chan, run.options.checkpoint, items, self.state.full_resolution, "preview")
        points = live.point_frames() if live.take_points() else None
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
        sc.remove_group("removed")
        if rp.removed is not None:
            sc.set_points("removed depth points", "removed", rp.removed, REMOVED_COLOR, sc.sizes.removed_radius)
        sc.set_mesh(
            "body orientation", "facing", rp.facing[0], rp.facing[1], key=("facing", id(rp)), color=FACING_COLOR
        )
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

    def handle_keys(self, keys) -> None:
        """Apply the shortcuts (shortcuts.py) for the keys pressed this frame."""
        count, _ = self.timeline()
        for cmd in self.keys.handle(keys, self.state.frame, count):
            if cmd.action == "toggle_play":
                self.toggle_play()
            elif cmd.action == "seek":
                if cmd.pause:
                    self.state.playing = False
                if self.state.view == "pose":
                    self.state.motion_on = True
                self.set_frame(cmd.frame)
            elif cmd.action == "close_popup":
                self._close_popups = True

    def draw(self) -> None:
        import polyscope as ps
        import polyscope.imgui as psim

        self.handle_keys(pressed_keys(psim))
        w, h = ps.get_window_size()
        width = min(PANEL_WIDTH, max(260, int(w * 0.42)))
        psim.SetNextWindowPos((8, 8), psim.ImGuiCond_FirstUseEver)
        psim.SetNextWindowSize((width, h - 16), psim.ImGuiCond_FirstUseEver)
        if not psim.Begin("NPM Explorer"):  # collapsed: the whole window is the 3D view
            self.scene.panel_width = 0
            psim.End()
            self.draw_help()
            return
        self.scene.panel_width = int(psim.GetWindowPos()[0] + psim.GetWindowWidth())
        if getattr(self, "_close_popups", False):  # Escape: opening a popup at this level closes the open ones
            self._close_popups = False
            psim.OpenPopup("##escape")
            if psim.BeginPopup("##escape"):
                psim.CloseCurrentPopup()
                psim.EndPopup()
        st = self.state
        psim.TextDisabled("checkpoint")
        common.path_picker(
            self, "checkpoint", "checkpoints", "checkpoint_text", "recent_checkpoints", self.open_checkpoint
        )
        self.draw_status()
        psim.Separator()
        style, room, used = psim.GetStyle(), psim.GetContentRegionAvail()[0], 0.0
        for k, (name, mod) in enumerate(PANEL_MODULES.items()):  # tabs as buttons: no close boxes, wrapped
            width = psim.CalcTextSize(mod.TITLE)[0] + 2 * style.FramePadding[0]
            if k and used + style.ItemSpacing[0] + width <= room:
                psim.SameLine()
                used += style.ItemSpacing[0] + width
            else:
                used = width
            active = st.panel == name
            if active:
                psim.PushStyleColor(psim.ImGuiCol_Button, (0.26, 0.46, 0.75, 1.0))
            if psim.Button(mod.TITLE):
                self._set_panel(name)
            if active:
                psim.PopStyleColor()
        psim.Separator()
        PANEL_MODULES[st.panel].draw(self)
        psim.End()
        self.draw_labels()
        self.draw_help()

    def draw_status(self) -> None:
        """The fixed message area: always STATUS_LINES lines (progress, last message), then a log popup."""
        import polyscope.imgui as psim

        st = self.state
        if self.keys.entry:
            psim.TextColored((1.0, 0.85, 0.3, 1.0), f"go to frame {self.keys.entry}_  (Enter: go, Esc: cancel)")
        elif self.progress or (self.replay is not None and not self.replay.done):
            text = self.progress or f"reading fit: {self.replay.status} ({self.replay.fraction * 100:.0f}%)"
            psim.TextColored((1.0, 0.85, 0.3, 1.0), text)
        else:
            ms = np.mean(self._frame_ms) if self._frame_ms else 0.0
            psim.TextDisabled(f"ready   frame {ms:.1f} ms   H: keyboard help")
        if psim.SmallButton(f"log ({len(st.messages)})"):
            psim.OpenPopup("message log")
        psim.SameLine()
        if st.messages:
            level, text = st.messages[-1]
            col = (1.0, 0.45, 0.4, 1.0) if level == "error" else (0.7, 0.85, 1.0, 1.0)
            psim.TextColored(col, text)  # one line, clipped by the panel; the log shows it whole
            if psim.IsItemHovered():
                psim.SetTooltip(text)
        else:
            psim.TextDisabled("no messages")
        if psim.BeginPopup("message log"):
            for level, text in st.messages:
                psim.PushTextWrapPos(PANEL_WIDTH * 1.5)
                psim.TextColored((1.0, 0.45, 0.4, 1.0) if level == "error" else (0.8, 0.9, 1.0, 1.0), text)
                psim.PopTextWrapPos()
            if st.messages and psim.SmallButton("clear"):
                st.messages = []
            psim.EndPopup()

    def scene_labels(self) -> list:
        """[(world position [3], text)]: the scene's labels, and each gallery cell's identity and pose."""
        out = self.scene.labels()
        st, m = self.state, self.model
        if st.view == "transfer" and st.gallery and m is not None and self.scene.group("gallery"):
            n = len(st.gallery_poses)
            sizes = self.scene.sizes
            offs = grid_offsets(len(st.gallery_shapes), n, sizes.gallery_spacing)
            for c, j in enumerate(st.gallery_poses):  # pose names over the columns
                pose = m.pose_labels[j].split(" ", 1)[-1] if m.pose_labels else "canonical"
                out.append((offs[c] + sizes.column_label, pose))
            for r, i in enumerate(st.gallery_shapes):  # identities left of the rows
                out.append((offs[r * n] + sizes.row_label, m.shape_labels[i].split("  ")[0]))
        return out

    def draw_labels(self) -> None:
        """Write scene_labels() over the 3D view at their projected positions (Polyscope draws no 3D text)."""
        import polyscope as ps
        import polyscope.imgui as psim

        labels = self.scene_labels()
        if not labels:
            return
        w, h = ps.get_window_size()
        view = np.asarray(ps.get_camera_view_matrix(), np.float64)
        f = 1.0 / np.tan(np.deg2rad(ps.get_vertical_fov_degrees()) / 2)
        dl = psim.GetBackgroundDrawList()
        for pos, text in labels:
            x, y, z, _ = view @ np.append(np.asarray(pos, np.float64), 1.0)
            if z >= 0:  # behind the camera
                continue
            sx = (1 + f * x / -z * h / w) * w / 2
            sy = (1 - f * y / -z) * h / 2
            tw, th = psim.CalcTextSize(text)
            dl.AddRectFilled(
                (sx - tw / 2 - 4, sy - th - 2),
                (sx + tw / 2 + 4, sy + 2),
                psim.ColorConvertFloat4ToU32((1.0, 1.0, 1.0, 0.8)),
            )
            dl.AddText((sx - tw / 2, sy - th), psim.ColorConvertFloat4ToU32((0.1, 0.1, 0.15, 1.0)), text)

    def draw_help(self) -> None:
        """The keyboard help overlay (H / F1), made from shortcuts.SHORTCUTS."""
        import polyscope as ps
        import polyscope.imgui as psim

        if not self.keys.help_visible:
            return
        w, h = ps.get_window_size()
        psim.SetNextWindowPos((w * 0.5, h * 0.5), psim.ImGuiCond_Always, (0.5, 0.5))
        psim.SetNextWindowBgAlpha(0.92)
        psim.Begin(
            "Keyboard shortcuts",
            psim.ImGuiWindowFlags_AlwaysAutoResize
            | psim.ImGuiWindowFlags_NoCollapse
            | psim.ImGuiWindowFlags_NoSavedSettings,
        )
        psim.TextDisabled("on the Sequence and Pose timelines (frames count from 0)")
        psim.Separator()
        if psim.BeginTable("keys", 2, psim.ImGuiTableFlags_RowBg):
            for keys, what in help_rows():
                psim.TableNextRow()
                psim.TableSetColumnIndex(0)
                psim.TextColored((1.0, 0.85, 0.3, 1.0), keys)
                psim.TableSetColumnIndex(1)
                psim.Text(what)
            psim.EndTable()
        psim.Separator()
        psim.TextDisabled("mouse: left drag rotate, right drag pan, wheel zoom")
        if psim.Button("Close (H)"):
            self.keys.help_visible = False
        psim.End()

    def tick(self) -> None:
        """One frame: callbacks + render; then screenshots asked for during the frame, and the recorder."""
        import polyscope as ps

        t = time.perf_counter()
        ps.frame_tick()
        self._frame_ms.append((time.perf_counter() - t) * 1000)
        self.log_time("first_frame")
        while self._shots:
            path, ui = self._shots.pop(0)
            save_png(path, self.capture(ui))
        while self._after:
            self._after.pop(0)()
        if self.recorder is not None:
            self.recorder.after_frame(self)

    def capture(self, include_ui: bool = True) -> np.ndarray:
        """RGBA [H, W, 4] of the window."""
        import polyscope as ps

        return ps.screenshot_to_buffer(transparent_bg=False, include_UI=include_ui)

    def screenshot(self, path, include_ui: bool = True) -> None:
        self._shots.append((str(path), include_ui))

    def defer(self, fn) -> None:
        self._after.append(fn)

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
    p.add_argument(
        "--render-video",
        metavar="OUT",
        help="render headless and write a video (.mp4, or .gif): the panel's timeline (the fit with --panel "
        "sequence, the default when a fit is given; a motion with --panel pose --set motion_on=true), "
        "or a turntable with --turntable",
    )
    p.add_argument("--turntable", type=int, default=0, metavar="N", help="--render-video: N views of one turn")
    p.add_argument("--show-help", action="store_true", help="open the keyboard help overlay (screenshots)")
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

    from .panels.export import timeline_video, turntable_video
    from .workers import MeshWorker

    headless = args.screenshot or args.render_video
    if args.render_video and not args.turntable and args.panel == "shape" and args.fit:
        args.panel = "sequence"
    worker = MeshWorker()  # starts (imports) while the window opens
    size = tuple(int(x) for x in args.size.lower().split("x"))
    backend = init_polyscope(args.backend, size)
    if backend == "openGL3_egl" and not headless:
        worker.close()
        print(
            "npm-viewer: no display (DISPLAY unset): nothing to show a window on. "
            "Use --screenshot OUT.png or --render-video OUT.mp4 to render headless.",
            file=sys.stderr,
        )
        return 2
    if headless:
        ps.set_frame_tick_limit_fps_mode("ignore_limits")
    app = App(None, None, worker=worker)
    app.attach()
    try:
        app.state.info(f"opening {args.checkpoint} ...")
        app.tick()  # the window shows before the checkpoint is read (seconds on a cold start)
        if not args.checkpoint:
            pass
        elif Path(args.checkpoint).exists():
            app.open_checkpoint(args.checkpoint)
        else:
            app.state.info(f"no checkpoint at {args.checkpoint} yet: open one above")
        if args.fit and Path(args.fit).exists():
            app.open_fit(args.fit)
        elif args.fit:
            app.state.info(f"no fit result at {args.fit}: open one in the Sequence panel")
        app.select_panel(args.panel)
        apply_overrides(app, args.set)
        app.keys.help_visible = args.show_help
        app.tick()
        if headless:
            app.settle()
            if args.frame:
                app.set_frame(args.frame)
            app.settle(frames=4)
        if args.screenshot:
            save_png(args.screenshot, app.capture(True))
            print(f"wrote {args.screenshot}")
        if args.render_video:
            try:
                if args.turntable:
                    out = turntable_video(app, args.render_video, args.turntable, size)
                else:
                    out = timeline_video(app, args.render_video, size)
            except (ValueError, RuntimeError) as e:
                print(f"npm-viewer: error: {e}", file=sys.stderr)
                return 2
            print(f"wrote {out}")
        if not headless:
            app.run()
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
