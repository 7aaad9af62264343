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
    if rp.errors is not None:
        _, st.color_error = psim.Checkbox("colour fit by vertex error", st.color_error)
        if st.color_error:
            psim.SameLine()
            psim.TextDisabled(f"0 - {rp.error_range() * 1000:.0f} mm")
    draw_metrics(viewer)


def draw_metrics(viewer) -> None:
    from polyscope import implot

    st, rp = viewer.state, viewer.replay
    if not rp.metrics:
        return
    if implot.BeginPlot("per-frame metrics", (-1, 200)):
        implot.SetupAxes("frame", "", implot.ImPlotAxisFlags_AutoFit, implot.ImPlotAxisFlags_AutoFit)
        ref = rp.metrics.get("mean vertex error (mm)")
        for name, values in rp.metrics.items():
            v = np.asarray(values, np.float64)
            if name.startswith("mean vertex"):
                implot.PlotLine(name, v)
            else:  # losses: rescaled to the error curve's range so both are readable
                scale = (np.max(ref) / max(np.max(v), 1e-12)) if ref is not None else 1.0
                implot.PlotLine(f"{name} (x{scale:.3g})", v * scale)
        changed, x = implot.DragLineX(0, float(st.frame), (1.0, 0.3, 0.3, 1.0), 2.0)
        if changed:
            st.playing = False
            viewer.set_frame(round(x))
        implot.EndPlot()
