"""npm-viewer: the window, the main loop and the panel registry (Polyscope + ImGui).

Thin on purpose: panels (npm_viewer/panels/*) draw widgets and change the State; meshes come
back from the MeshWorker process; the UI thread never waits on torch. Every ps.*/psim.* call
stays on this thread; the loop is ours (ps.frame_tick), capped at ~30 fps when idle.
Scene units are metres (space.model_to_metres on everything the worker returns).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from npm_core import bodies, space

from . import state as S
from .panels import common, export, pose, sequence, shape, train, transfer

PANEL_MODULES = {"shape": shape, "pose": pose, "transfer": transfer, "sequence": sequence, "train": train,
                 "export": export}
DEFAULT_CHECKPOINT = "checkpoints/body-v1"
DEFAULT_FIT = "assets/example_fit"
REPO_ROOT = Path(__file__).resolve().parents[1]  # where the shipped checkpoint and example live
BODY_COLOR = (0.86, 0.72, 0.62)
PANEL_WIDTH = 470


def shipped(path: str) -> str:
    """A default path as given if it exists here, else inside the repository (the app then opens
    the shipped checkpoint and example from any working directory)."""
    return path if Path(path).exists() or not (REPO_ROOT / path).exists() else str(REPO_ROOT / path)


@dataclass
class ModelInfo:
    """What the UI process knows of a checkpoint: codes and labels (the decoders live in the worker)."""

    path: Path
    shape_codes: np.ndarray  # [I, Ds]
    pose_codes: np.ndarray | None  # [T, Dp]
    shape_labels: list
    pose_labels: list
    motions: dict  # motion -> [pose rows sorted by frame]
    meta: dict
    semantics: object | None = None  # npm_core.semantics.Semantics when semantics.npz is there
    phenotypes: np.ndarray | None = None  # [I, 6] of each shape code's identity (meta.yaml)
    angles: np.ndarray | None = None  # [T, J] joint angles of each pose code's frame (meta.yaml)
    note: str = ""  # why the semantic sliders are missing, if they are

    @staticmethod
    def read(path) -> ModelInfo:
        from npm_core.models.checkpoint import (
            load_model,  # raises CheckpointError (a ValueError)
        )

        m = load_model(path)
        meta = m.meta or {}
        sl = (meta.get("shape") or {}).get("codes") or []
        pl = (meta.get("pose") or {}).get("codes") or [] if m.pose_codes is not None else []
        shape_labels = [S.shape_label(i, sl[i] if i < len(sl) else None) for i in range(len(m.shape_codes))]
        pose_codes = None if m.pose_codes is None else m.pose_codes.numpy()
        pose_labels = [] if pose_codes is None else [S.pose_label(i, pl[i] if i < len(pl) else None)
                                                     for i in range(len(pose_codes))]
        motions = {} if pose_codes is None else S.group_motions(pl if len(pl) == len(pose_codes) else [{}] * len(pose_codes))
        info = ModelInfo(Path(path), m.shape_codes.numpy(), pose_codes, shape_labels, pose_labels, motions, meta)
        info.semantics, info.note = ModelInfo._read_semantics(path)
        if len(sl) == len(info.shape_codes) and all("phenotypes" in e for e in sl):
            info.phenotypes = np.concatenate([bodies.check_phenotypes(e["phenotypes"]) for e in sl])
        if pose_codes is not None and len(pl) == len(pose_codes) and all("angles" in e for e in pl):
            info.angles = np.array([e["angles"] for e in pl], np.float64)
        return info

    @staticmethod
    def _read_semantics(path):
        from npm_core import semantics
        from npm_core.models.checkpoint import semantics_path

        f = semantics_path(path)
        if not f.exists():
            return None, f"no {f.name}: run `npms semantics --checkpoint {path}` for semantic sliders"
        try:
            return semantics.load(f), ""
        except (OSError, ValueError, KeyError, TypeError) as e:
            return None, f"{f}: unreadable ({e}); rerun `npms semantics --checkpoint {path}`"


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


def discover_checkpoints(root: str = "checkpoints") -> list:
    p = Path(root)
    return sorted(str(d) for d in p.glob("*") if (d / "config.yaml").is_file()) if p.is_dir() else []


class App:
    def __init__(self, checkpoint: str | None = None, fit: str | None = None, worker=None):
        from .workers import MeshWorker

        self.state = S.State()
        self.state.recent_checkpoints = discover_checkpoints()
        self.model: ModelInfo | None = None
        self.worker = worker if worker is not None else MeshWorker()
        self.rng = np.random.default_rng(0)
        self.dialogs: dict = {}
        self.shown: dict = {}  # structure name -> mesh key currently registered
        self.current: dict = {}  # structure name -> (vertices m, faces) last shown
        self.seq: sequence.SequenceData | None = None
        self.train_run = None
        self.recorder = None
        self.pending_shots: list = []  # (path, include_UI) taken after the frame
        self.frame_ms = deque(maxlen=120)
        self._last_t = None
        self._tab_forced: str | None = None  # a tab chosen from code, held until ImGui shows it
        self._camera_key: str | None = None  # the view the camera was last framed for
        self.stats = {}
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

    # ------------------------------------------------------------------ opening things
    def open_checkpoint(self, path) -> bool:
        path = str(path).strip()
        try:
            info = ModelInfo.read(path)
        except (ValueError, OSError) as e:
            self.state.error(f"cannot open checkpoint: {e}")
            return False
        self.model = info
        st = self.state
        n = len(info.shape_codes)
        st.shape_a, st.shape_b, st.sampled = 0, min(1, n - 1), None
        st.reset_semantics(info.semantics)
        st.transfer_shape = 0
        st.gallery_shapes = list(range(min(3, n)))
        if info.pose_codes is not None:
            k = len(info.pose_codes)
            st.pose_a, st.pose_b, st.transfer_pose = 0, min(1, k - 1), 0
            st.motion = next(iter(info.motions), "")
            st.gallery_poses = [rows[len(rows) // 2] for rows in list(info.motions.values())[:4]] or list(range(min(4, k)))
        st.checkpoint_text = path
        st.recent_checkpoints = S.push_recent(st.recent_checkpoints, path)
        st.info(f"opened {path}: {n} shape codes, "
                + (f"{len(info.pose_codes)} pose codes" if info.pose_codes is not None else "no pose stage"))
        if info.note:
            st.info(info.note)
        self.request_view()
        return True

    def open_fit(self, path) -> bool:
        path = str(path).strip()
        try:
            self.seq = sequence.SequenceData(path)
        except (ValueError, OSError) as e:
            self.state.error(f"cannot open fit result: {e}")
            return False
        st = self.state
        st.fit_text = path
        st.recent_fits = S.push_recent(st.recent_fits, path)
        st.frame, st.play_pos, st.playing = 0, 0.0, False
        st.info(f"loading fit {path} ({self.seq.frames} frames)")
        return True

    def files_dropped(self, paths) -> None:
        for p in paths:
            p = Path(p)
            p = p if p.is_dir() else p.parent
            if (p / "fit.yaml").exists():
                self.open_fit(p)
                self.select_panel("sequence")
            else:
                self.open_checkpoint(p)

    # ------------------------------------------------------------------ codes and requests
    def base_shape_code(self) -> np.ndarray:
        """A (or the prior sample) blended towards B: the code before semantic sliders."""
        st, m = self.state, self.model
        a = np.asarray(st.sampled, np.float32) if st.sampled is not None else m.shape_codes[st.shape_a]
        return S.mix(a, m.shape_codes[st.shape_b], st.alpha) if st.alpha > 0 else a.astype(np.float32)

    def shape_code(self) -> np.ndarray:
        sem, st = self.model.semantics, self.state
        code = self.base_shape_code()
        if sem is not None and st.phenotype_delta:
            code = sem.move_shape(code, self.base_phenotypes(), st.phenotype_delta) + sem.shape_pca.offset(st.shape_pca)
        return code.astype(np.float32)

    def base_phenotypes(self) -> np.ndarray | None:
        """[6] phenotypes of the base code: the identities' own (blended), or the map's estimate."""
        st, m = self.state, self.model
        if m.phenotypes is not None and st.sampled is None:
            return S.mix(m.phenotypes[st.shape_a], m.phenotypes[st.shape_b], st.alpha).astype(np.float64)
        return None if m.semantics is None else m.semantics.shape_to_phenotype(self.base_shape_code())

    def current_pose_row(self, table: np.ndarray) -> np.ndarray:
        """The row of a per-pose-code table (codes, angles) the view shows: the playing motion's
        frame, else A blended towards B."""
        st, m = self.state, self.model
        if st.motion_playing and st.motion in m.motions:
            rows = m.motions[st.motion]
            return table[rows[int(st.motion_pos) % len(rows)]]
        return S.mix(table[st.pose_a], table[st.pose_b], st.beta)

    def base_pose_code(self) -> np.ndarray | None:
        m = self.model
        return None if m is None or m.pose_codes is None else self.current_pose_row(m.pose_codes)

    def pose_code(self) -> np.ndarray | None:
        sem, st = self.model.semantics if self.model else None, self.state
        code = self.base_pose_code()
        if code is not None and sem is not None and sem.angles_to_pose is not None and st.angle_delta:
            code = sem.move_pose(code, self.base_angles(), st.angle_delta) + sem.pose_pca.offset(st.pose_pca)
        return None if code is None else code.astype(np.float32)

    def base_angles(self) -> np.ndarray:
        """[J] joint angles (deg) of the base pose (blended labels of A and B); zeros if unknown."""
        m = self.model
        if m.angles is None:
            return np.zeros(len(bodies.JOINT_NAMES))
        return self.current_pose_row(m.angles).astype(np.float64)

    def request_view(self, preview: bool = False) -> None:
        """Ask the worker for the meshes the current view shows. preview: a shape slider is being
        dragged (coarse grid) or a pose slider (anchor posing); else full resolution, exact."""
        st, m = self.state, self.model
        if m is None or st.view == "sequence":
            return
        res = st.preview_resolution if preview else st.full_resolution
        if st.view == "shape":
            self.worker.submit("main", m.path, [(self.shape_code(), None)], res, "exact")
        elif st.view == "pose":
            # pose sliders never re-extract: the canonical mesh stays at full resolution (cached)
            self.worker.submit("main", m.path, [(self.shape_code(), self.pose_code())], st.full_resolution,
                               "preview" if preview else "exact")
        elif st.view == "transfer" and not st.gallery:
            pc = None if m.pose_codes is None else m.pose_codes[st.transfer_pose]
            self.worker.submit("main", m.path, [(m.shape_codes[st.transfer_shape], pc)], st.full_resolution,
                               "preview" if preview else "exact")
        elif st.view == "transfer":
            items = [(m.shape_codes[i], None if m.pose_codes is None else m.pose_codes[j])
                     for i in st.gallery_shapes for j in st.gallery_poses]
            self.worker.submit("gallery", m.path, items, transfer.GALLERY_RESOLUTION)

    def busy(self) -> bool:
        return self.worker.busy() or (self.seq is not None and not self.seq.done)

    def select_panel(self, name: str) -> None:
        """Switch tab from code (tests, --panel, drag-and-drop)."""
        old_view = self.state.view
        self.state.set_panel(name)
        self._tab_forced = name
        if self.state.view != old_view:
            self.request_view()
            self.update_visibility()

    # ------------------------------------------------------------------ drawing meshes
    def show_mesh(self, name: str, key, vertices_m: np.ndarray, faces: np.ndarray, color=BODY_COLOR):
        import polyscope as ps

        if key is not None and name in self.shown and self.shown[name] == key and ps.has_surface_mesh(name):
            h = ps.get_surface_mesh(name)
            h.update_vertex_positions(vertices_m)
        else:
            h = ps.register_surface_mesh(name, vertices_m, faces, smooth_shade=True, color=color,
                                         material="clay", edge_width=0.0)
            self.shown[name] = key
        self.current[name] = (vertices_m, faces)
        return h

    def remove(self, prefix: str) -> None:
        import polyscope as ps

        for name in [n for n in self.shown if n.startswith(prefix)]:
            if ps.has_surface_mesh(name):
                ps.remove_surface_mesh(name)
            self.shown.pop(name, None)
            self.current.pop(name, None)

    def apply_result(self, r) -> None:
        if r.error:
            self.state.error(f"mesh worker: {r.error}")
            return
        self.stats = r.stats
        if r.channel == "main" and r.meshes:
            m = r.meshes[0]
            self.show_mesh("body", m.key, space.model_to_metres(m.vertices), m.faces)
        elif r.channel == "gallery":
            self.remove("gallery")
            offs = transfer.gallery_offsets(len(self.state.gallery_shapes), len(self.state.gallery_poses))
            for k, m in enumerate(r.meshes):
                self.show_mesh(f"gallery_{k:02d}", None, space.model_to_metres(m.vertices) + offs[k], m.faces)
        self.update_visibility()

    def update_visibility(self) -> None:
        import polyscope as ps

        st = self.state
        body = st.view in ("shape", "pose") or (st.view == "transfer" and not st.gallery)
        for name in self.shown:
            if not ps.has_surface_mesh(name):
                continue
            on = body if name == "body" else (st.view == "transfer" and st.gallery) if name.startswith("gallery") else None
            if on is not None:
                ps.get_surface_mesh(name).set_enabled(on)
        sequence.update_visibility(self)
        # replay redraws every frame: the shadow pass costs ~3x a frame in software GL (measured
        # 20 vs 6 fps on llvmpipe), so the sequence view goes without it
        ps.set_ground_plane_mode("none" if st.view == "sequence" else "shadow_only")
        self.place_camera()

    def place_camera(self) -> None:
        """Front view of what the current view shows, when the view changes (then the user's camera)."""
        import polyscope as ps

        st = self.state
        key = st.view + ("-gallery" if st.view == "transfer" and st.gallery else "")
        if key == self._camera_key:
            return
        gallery = [v for n, (v, _) in self.current.items() if n.startswith("gallery")]
        if key == "sequence" and self.seq is not None and self.seq.done:
            lo, hi = self.seq.bounds()
        elif key == "transfer-gallery" and gallery:
            lo, hi = np.concatenate(gallery).min(0), np.concatenate(gallery).max(0)
        elif key in ("shape", "pose", "transfer") and "body" in self.current:
            lo, hi = np.array([-0.5, -1.0, -0.2]), np.array([0.5, 0.8, 0.2])
        else:
            return
        self._camera_key = key
        w, h = ps.get_window_size()
        c = (lo + hi) / 2
        half = max((hi[1] - lo[1]) / 2, (hi[0] - lo[0]) / 2 * h / max(1, w - PANEL_WIDTH)) * 1.15
        dist = half / np.tan(np.deg2rad(45.0) / 2) + hi[2]
        shift = -half * (PANEL_WIDTH / max(1, w)) * 2.0 * (w / h) / 2  # keep the body right of the panel
        ps.look_at((c[0] + shift, c[1] + 0.05 * half, c[2] + dist), (c[0] + shift, c[1], c[2]))

    # ------------------------------------------------------------------ frame
    def update(self, dt: float) -> None:
        """Everything but widgets: worker results, dialogs, loaders, playback, training."""
        for r in self.worker.poll():
            self.apply_result(r)
        common.poll_dialogs(self)
        for mod in PANEL_MODULES.values():
            if hasattr(mod, "update"):
                mod.update(self, dt)

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
        psim.Begin("NPM Explorer", True, psim.ImGuiWindowFlags_NoMove | psim.ImGuiWindowFlags_NoResize
                   | psim.ImGuiWindowFlags_NoCollapse)
        st = self.state
        psim.TextDisabled("checkpoint")
        common.path_picker(self, "checkpoint", "checkpoints", "checkpoint_text", "recent_checkpoints", self.open_checkpoint)
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
                        old = st.view
                        st.set_panel(name)
                        if st.view != old:
                            self.request_view()
                            self.update_visibility()
                    mod.draw(self)
                    psim.EndTabItem()
            psim.EndTabBar()
        ms = np.mean(self.frame_ms) if self.frame_ms else 0.0
        psim.Separator()
        psim.TextDisabled(f"frame {ms:.1f} ms" + ("   worker busy" if self.worker.busy() else ""))
        psim.End()

    def tick(self) -> None:
        """One frame: callbacks + render; then screenshots asked for during the frame."""
        import polyscope as ps

        t = time.perf_counter()
        ps.frame_tick()
        self.frame_ms.append((time.perf_counter() - t) * 1000)
        while self.pending_shots:
            path, ui = self.pending_shots.pop(0)
            save_png(path, self.screenshot(ui))
        if self.recorder is not None:
            self.recorder.after_frame(self)

    def screenshot(self, include_ui: bool = True) -> np.ndarray:
        """RGBA [H, W, 4] of the window. Polyscope re-runs the callback for a UI screenshot and
        ImGui then reports the first tab as selected: hold the current one while it does."""
        import polyscope as ps

        self._tab_forced = self.state.panel
        try:
            return ps.screenshot_to_buffer(transparent_bg=False, include_UI=include_ui)
        finally:
            self._tab_forced = None

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
        self.worker.close()


def save_png(path, rgba: np.ndarray) -> None:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgba)[..., :3]).save(path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="npm-viewer", description="NPM Explorer: latent-space explorer for NPM body models")
    p.add_argument("--checkpoint", default=shipped(DEFAULT_CHECKPOINT), help=f"checkpoint directory (default {DEFAULT_CHECKPOINT})")
    p.add_argument("--fit", default=shipped(DEFAULT_FIT), help=f"fit-result directory (default {DEFAULT_FIT})")
    p.add_argument("--panel", default="shape", choices=S.PANELS)
    p.add_argument("--frame", type=int, default=0, help="sequence frame to show")
    p.add_argument("--screenshot", help="render this state, write the screenshot (with UI) here and exit")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="state field before the screenshot, e.g. --set alpha=0.5 --set shape_b=4 --set gallery=true")
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
        app.request_view()
        app.update_visibility()


def main(argv=None) -> int:
    args = parse_args(argv)
    import polyscope as ps

    size = tuple(int(x) for x in args.size.lower().split("x"))
    backend = init_polyscope(args.backend, size)
    if backend == "openGL3_egl" and not args.screenshot:
        print("npm-viewer: no display (DISPLAY unset): nothing to show a window on. "
              "Use --screenshot OUT.png to render headless.", file=sys.stderr)
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
            if args.panel == "sequence" and app.seq is not None:
                sequence.set_frame(app, args.frame)
            app.settle(frames=4)
            save_png(args.screenshot, app.screenshot(True))
            print(f"wrote {args.screenshot}")
        else:
            app.run()
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
