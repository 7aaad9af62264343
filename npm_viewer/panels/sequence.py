"""Sequence panel: replay a fit result beside its depth sequence.

The fit (loading.FitReplay) holds every frame (posed fitted vertices, truth, depth points,
per-vertex error); the scene shows it at state.frame, so replay only changes that index. This
module draws the controls and the per-frame metrics plot.
"""

from __future__ import annotations

import numpy as np
import polyscope.imgui as psim

from .common import path_picker, playback_controls

TITLE = "Sequence"


def open_and_show(viewer, path) -> bool:
    """Open a fit result and switch to this panel."""
    if not viewer.open_fit(path):
        return False
    viewer.select_panel("sequence")
    return True


def toggle_play(viewer) -> None:
    viewer.toggle_play()


def step(viewer, by: int) -> None:
    """One frame back (-1) or on (+1), paused."""
    viewer.state.playing = False
    viewer.set_frame(viewer.state.frame + by)


def draw(viewer) -> None:
    st, rp = viewer.state, viewer.replay
    psim.TextDisabled("fit result (npms fit output)")
    path_picker(viewer, "fit", "fits", "fit_text", "recent_fits", lambda p: open_and_show(viewer, p))
    if rp is None:
        psim.TextWrapped(
            "No fit open. Open a fit-result directory written by `npms fit`; "
            "its depth sequence is found from the result's metadata."
        )
        return
    if not rp.done:
        psim.ProgressBar(rp.fraction, (-1, 0), rp.status)
        return
    psim.Text(f"{rp.path.name}: {rp.frames} frames, {rp.posed.shape[1]} vertices, {rp.fps:.0f} fps")
    playback_controls(viewer)
    changed, k = psim.SliderInt("frame", st.frame, 0, rp.frames - 1)
    if changed:
        viewer.set_frame(k)
    for attr, label in (("show_points", "depth points"), ("show_fit", "fitted mesh"), ("show_gt", "gt mesh")):
        if attr == "show_gt" and rp.gt is None:
            psim.TextDisabled("no gt meshes")
            continue
        _, value = psim.Checkbox(label, getattr(st, attr))
        setattr(st, attr, value)  # the scene shows or hides the structure at the next frame
        psim.SameLine()
    psim.NewLine()
    t = min(st.frame, rp.frames - 1)
    _, st.show_facing = psim.Checkbox(
        f"orientation: yaw {rp.yaw_deg[t]:+.0f} deg, tilt {rp.tilt_deg[t]:.0f} deg", st.show_facing
    )
    if rp.kept_fraction is not None:
        kept = f"segmentation kept {100 * rp.kept_fraction[t]:.0f}% of this frame's depth pixels"
        if rp.removed is not None:
            _, st.show_removed = psim.Checkbox(kept + " (removed: grey)", st.show_removed)
        else:
            psim.Text(kept)
    if rp.errors is not None:
        _, st.color_error = psim.Checkbox("colour fit by vertex error (scale below, cm)", st.color_error)
    if rp.gt is not None:
        _, st.compare = psim.Checkbox("side by side: fit | truth (same frame)", st.compare)
    draw_metrics(viewer)


# matplotlib's Reds at 0, .25, .5, .75, 1: the colour map Polyscope's "reds" draws the errors with
REDS = (
    (1.0, 0.961, 0.941, 1.0),
    (0.988, 0.733, 0.631, 1.0),
    (0.984, 0.416, 0.290, 1.0),
    (0.796, 0.094, 0.114, 1.0),
    (0.404, 0.0, 0.051, 1.0),
)


def metric_series(rp) -> dict:
    """Display name (with unit) -> per-frame values [T] in that unit: IoU, Chamfer-L2, vertex
    error (EPE) in cm, and the fit's energy terms."""
    out = {}
    order = ("mean vertex error (mm)", "IoU", "Chamfer-L2")  # the comparisons with the truth first
    for name, values in sorted(rp.metrics.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 3):
        v = np.asarray(values, np.float64)
        if name == "mean vertex error (mm)":
            out["vertex error EPE (cm)"] = v / 10.0
        elif name in ("IoU", "Chamfer-L2"):
            out[name] = v
        else:
            out[f"energy: {name}"] = v
    return out


def colour_bar(label: str, hi: float, width: float = 0.0, height: float = 12.0) -> None:
    """Horizontal scale of the error colours from 0 to hi (the reds map), ticks below, drawn with ImGui."""
    width = width or psim.GetContentRegionAvail()[0]
    x0, y0 = psim.GetCursorScreenPos()
    dl = psim.GetWindowDrawList()
    u32 = psim.ColorConvertFloat4ToU32
    n = len(REDS) - 1
    for k in range(n):
        a, b = x0 + width * k / n, x0 + width * (k + 1) / n
        ca, cb = u32(REDS[k]), u32(REDS[k + 1])
        dl.AddRectFilledMultiColor((a, y0), (b, y0 + height), ca, cb, cb, ca)
    psim.Dummy((width, height))
    ticks = [0.0, hi / 2, hi]
    psim.TextDisabled(f"{ticks[0]:.1f}")
    for t, frac in ((ticks[1], 0.5), (ticks[2], 1.0)):
        text = f"{t:.1f} {label}" if frac == 1.0 else f"{t:.1f}"
        psim.SameLine(max(0.0, width * frac - psim.CalcTextSize(text)[0] * frac) + psim.GetStyle().WindowPadding[0])
        psim.TextDisabled(text)


def draw_metrics(viewer) -> None:
    """One metric at a time (a combo), in its own unit, the frame shown as a draggable line."""
    from polyscope import implot

    st, rp = viewer.state, viewer.replay
    series = metric_series(rp)
    if not series:
        return
    names = list(series)
    cur = names.index(st.plot_metric) if st.plot_metric in names else 0
    psim.PushItemWidth(-1)
    changed, cur = psim.Combo("##metric", cur, names)
    psim.PopItemWidth()
    st.plot_metric = names[cur]
    values = series[names[cur]]
    if rp.errors is not None and st.color_error:
        psim.TextDisabled("vertex error colours (distance to the nearest truth vertex)")
        colour_bar("cm", rp.error_range() * 100.0)
    if implot.BeginPlot("##metrics", (-1, 150), implot.ImPlotFlags_NoLegend | implot.ImPlotFlags_NoMenus):
        implot.SetupAxes("frame", "", implot.ImPlotAxisFlags_AutoFit, implot.ImPlotAxisFlags_AutoFit)
        implot.PlotLine(names[cur], values)
        changed, x = implot.DragLineX(0, float(st.frame), (1.0, 0.3, 0.3, 1.0), 2.0)
        if changed:
            st.playing = False
            viewer.set_frame(round(x))
        implot.EndPlot()
    k = min(st.frame, len(values) - 1)
    psim.TextDisabled(f"frame {st.frame}: {names[cur]} = {values[k]:.4g}")
