"""Sequence panel: replay a fit result beside its depth sequence.

Everything a frame needs (posed fitted vertices, gt vertices, depth points, per-vertex error) is
read or computed once at load, a few frames per UI tick with a progress bar; replay then only
changes a frame index (update_vertex_positions). Units: metres, world = canonical axes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import polyscope.imgui as psim

from ..state import advance
from .common import path_picker

TITLE = "Sequence"
MAX_POINTS = 15000  # depth points shown per frame
FIT_COLOR = (0.86, 0.72, 0.62)
GT_COLOR = (0.45, 0.65, 0.9)


class SequenceData:
    """A fit-result directory and its depth sequence, loaded step by step (load_step)."""

    def __init__(self, path):
        from npm_core.fit import read_result

        self.path = Path(path)
        self.fit = read_result(self.path)  # FitError (a ValueError) on a bad directory
        self.frames = len(self.fit.pose_codes)
        self.fps = 30.0
        self.posed = self.faces = self.gt = self.gt_faces = None
        self.points: list = []
        self.errors = None  # [T, V] metres, distance to the gt surface's vertices
        self.metrics: dict = {k: np.asarray(v, np.float64) for k, v in self.fit.losses.items()}
        self.metrics.update(read_eval(self.path / "metrics.json", self.frames))
        self.fraction, self.status, self.done = 0.0, "reading meshes", False
        self.warning = ""
        self._steps = self._load()

    def sequence_dir(self) -> Path | None:
        p = Path(str(self.fit.meta.get("sequence", "")))
        for cand in (p, self.path / p, self.path.parent / p, self.path.parent / p.name):
            if str(p) and (cand / "camera.json").is_file():
                return cand
        return None

    def _load(self):
        _, self.posed, self.faces = self.fit.meshes()
        self.posed = np.asarray(self.posed, np.float32)
        self.frames = len(self.posed)
        self.fraction, self.status = 0.3, "reading depth sequence"
        yield
        sdir = self.sequence_dir()
        if sdir is None:
            self.warning = f"depth sequence {self.fit.meta.get('sequence')!r} not found: showing the fit only"
        else:
            from npm_core.data.depth import read_sequence

            seq = read_sequence(sdir)
            self.fps = float(seq.camera.fps or 30.0)
            rng = np.random.default_rng(0)
            for t in range(min(len(seq), self.frames)):
                p = seq.points(t).astype(np.float32)
                self.points.append(p[rng.permutation(len(p))[:MAX_POINTS]] if len(p) > MAX_POINTS else p)
            if seq.gt_vertices is not None:
                self.gt, self.gt_faces = np.asarray(seq.gt_vertices, np.float32), np.asarray(seq.gt_faces)
        yield
        if self.gt is not None:
            from scipy.spatial import cKDTree

            self.errors = np.zeros(self.posed.shape[:2], np.float32)
            for t in range(min(self.frames, len(self.gt))):
                self.errors[t] = cKDTree(self.gt[t]).query(self.posed[t], workers=-1)[0]
                self.fraction, self.status = 0.4 + 0.6 * (t + 1) / self.frames, f"vertex errors {t + 1}/{self.frames}"
                yield
            self.metrics["mean vertex error (mm)"] = self.errors.mean(1) * 1000.0
        self.fraction, self.status, self.done = 1.0, "loaded", True

    def load_step(self, budget_s: float = 0.02) -> None:
        """Advance the load for about budget_s seconds (called once per UI tick)."""
        t = time.perf_counter()
        while not self.done and time.perf_counter() - t < budget_s:
            next(self._steps, None)

    def bounds(self):
        v = self.posed.reshape(-1, 3)
        return v.min(0), v.max(0)

    def error_range(self) -> float:
        return float(np.percentile(self.errors, 98)) if self.errors is not None else 0.05


def read_eval(path: Path, frames: int) -> dict:
    """Per-frame IoU and Chamfer-L2 from `npms eval --json FIT/metrics.json`, if it is there."""
    import json

    try:
        d = json.loads(path.read_text())
        return {name: np.asarray(d[key], np.float64) for key, name in (("iou", "IoU"), ("chamfer_l2", "Chamfer-L2"))
                if len(d.get(key, [])) == frames}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}  # absent or not an eval file: the plot shows losses and vertex errors only


def set_frame(app, k: int) -> None:
    seq = app.seq
    if seq is None or not seq.done:
        app.state.frame = int(k)
        return
    app.state.frame = int(k) % seq.frames
    app.state.play_pos = float(app.state.frame)
    show_frame(app)


def show_frame(app) -> None:
    """Move the structures to state.frame (no re-registration of meshes)."""
    import polyscope as ps

    seq, st = app.seq, app.state
    t = st.frame
    fit = app.show_mesh("fit", ("fit", id(seq)), seq.posed[t], seq.faces, FIT_COLOR)
    if seq.errors is not None and st.color_error:
        fit.add_scalar_quantity("error (m)", seq.errors[t], enabled=True, cmap="reds", vminmax=(0.0, seq.error_range()))
    elif seq.errors is not None:
        fit.remove_all_quantities()
    if seq.gt is not None:
        gt = app.show_mesh("gt", ("gt", id(seq)), seq.gt[t], seq.gt_faces, GT_COLOR)
        gt.set_transparency(0.5)
    if seq.points:
        pc = ps.register_point_cloud("depth points", seq.points[min(t, len(seq.points) - 1)], radius=0.0025,
                                     color=(0.2, 0.45, 0.95))
        pc.set_enabled(st.view == "sequence" and st.show_points)
    update_visibility(app)


def update_visibility(app) -> None:
    import polyscope as ps

    st = app.state
    on = st.view == "sequence"
    for name, flag in (("fit", st.show_fit), ("gt", st.show_gt)):
        if ps.has_surface_mesh(name):
            ps.get_surface_mesh(name).set_enabled(on and flag)
    if ps.has_point_cloud("depth points"):
        ps.get_point_cloud("depth points").set_enabled(on and st.show_points)


def update(app, dt: float) -> None:
    seq, st = app.seq, app.state
    if seq is None:
        return
    if not seq.done:
        try:
            seq.load_step()
        except Exception as e:  # unreadable meshes or depth: report, drop the fit, keep running
            st.error(f"cannot load fit {seq.path}: {type(e).__name__}: {e}")
            app.seq = None
            return
        if seq.done:
            if seq.warning:
                st.info(seq.warning)
            app._camera_key = None
            set_frame(app, st.frame)
        return
    if st.playing:
        old = st.frame
        st.play_pos, st.frame = advance(st.play_pos, dt, seq.fps, st.speed, seq.frames)
        if st.frame != old:
            show_frame(app)


def draw(app) -> None:
    st, seq = app.state, app.seq
    psim.TextDisabled("fit result (npms fit output)")
    path_picker(app, "fit", "fits", "fit_text", "recent_fits", lambda p: app.open_fit(p) and app.select_panel("sequence"))
    if seq is None:
        psim.TextWrapped("No fit open. Open a fit-result directory (fit.npz, fit.yaml, meshes/); "
                         "its depth sequence is found from fit.yaml.")
        return
    if not seq.done:
        psim.ProgressBar(seq.fraction, (-1, 0), seq.status)
        return
    psim.Text(f"{seq.path.name}: {seq.frames} frames, {seq.posed.shape[1]} vertices, {seq.fps:.0f} fps")
    if psim.Button("Pause" if st.playing else "Play"):
        st.playing = not st.playing
    psim.SameLine()
    if psim.Button("<"):
        st.playing = False
        set_frame(app, st.frame - 1)
    psim.SameLine()
    if psim.Button(">"):
        st.playing = False
        set_frame(app, st.frame + 1)
    psim.SameLine()
    psim.PushItemWidth(120)
    _, st.speed = psim.SliderFloat("speed", st.speed, 0.1, 4.0, "%.1fx")
    psim.PopItemWidth()
    changed, k = psim.SliderInt("frame", st.frame, 0, seq.frames - 1)
    if changed:
        set_frame(app, k)
    for attr, label in (("show_points", "depth points"), ("show_fit", "fitted mesh"), ("show_gt", "gt mesh")):
        if attr == "show_gt" and seq.gt is None:
            psim.TextDisabled("no gt meshes")
            continue
        changed, v = psim.Checkbox(label, getattr(st, attr))
        if changed:
            setattr(st, attr, v)
            update_visibility(app)
        psim.SameLine()
    psim.NewLine()
    if seq.errors is not None:
        changed, st.color_error = psim.Checkbox("colour fit by vertex error", st.color_error)
        if changed:
            show_frame(app)
        if st.color_error:
            psim.SameLine()
            psim.TextDisabled(f"0 - {seq.error_range() * 1000:.0f} mm")
    draw_metrics(app)


def draw_metrics(app) -> None:
    from polyscope import implot

    st, seq = app.state, app.seq
    if not seq.metrics:
        return
    if implot.BeginPlot("per-frame metrics", (-1, 200)):
        implot.SetupAxes("frame", "", implot.ImPlotAxisFlags_AutoFit, implot.ImPlotAxisFlags_AutoFit)
        for name, values in seq.metrics.items():
            v = np.asarray(values, np.float64)
            if name.startswith("mean vertex"):
                implot.PlotLine(name, v)
            else:  # losses: rescaled to the error curve's range so both are readable
                ref = seq.metrics.get("mean vertex error (mm)")
                scale = (np.max(ref) / max(np.max(v), 1e-12)) if ref is not None else 1.0
                implot.PlotLine(f"{name} (x{scale:.3g})", v * scale)
        changed, x = implot.DragLineX(0, float(st.frame), (1.0, 0.3, 0.3, 1.0), 2.0)
        if changed:
            st.playing = False
            set_frame(app, round(x))
        implot.EndPlot()
