"""Fit panel: fit the open checkpoint to a depth sequence without leaving the app, and watch it.

`npms fit` runs in a subprocess (fitting.FitRun, all cores but one); this panel polls its progress
log a few times a second and hands each newly tracked frame to the app, which shows its depth
points and posed body in the Sequence view (the worker poses it). The fast schedule tracks frame
by frame; the paper schedule optimises all frames together and reports only its bar and energy.
When the fit completes, its result opens for replay. Stop ends the fit without writing: --out
keeps the result it held before. The panel's fields live in the State (fit_*).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polyscope.imgui as psim

from npm_core import layout

TITLE = "Fit"
EXAMPLE_SEQUENCE = "assets/example_sequence"


def example_sequence() -> str:
    """The shipped example sequence, from the working directory or else the repository."""
    p = Path(EXAMPLE_SEQUENCE)
    return str(p) if p.exists() else str(Path(__file__).resolve().parents[2] / EXAMPLE_SEQUENCE)


def schedules() -> list:
    from npm_core.fit import SCHEDULES

    return list(SCHEDULES)


def options(viewer):
    """The State's fit_* fields and the open checkpoint as fitting.FitOptions."""
    from ..fitting import FitOptions

    st = viewer.state
    return FitOptions(
        str(viewer.model.path),
        st.fit_sequence.strip(),
        st.fit_out.strip(),
        st.fit_schedule,
        st.fit_no_icp,
        st.fit_no_temporal,
        st.fit_no_segmentation,
        int(st.fit_resolution),
        int(st.fit_frames),
        st.fit_device.strip() or "cpu",
    )


def start(viewer, prefix: list | None = None) -> bool:
    """Start a fit with the panel's options; `prefix` replaces `python -m npm_core.cli` (tests)."""
    from ..fitting import FitRun

    st = viewer.state
    old = viewer.fit_run
    if old is not None and old.running:
        st.error("a fit is already running: stop it first")
        return False
    if old is not None and old.proc is not None and not old.ended:
        old.poll()  # it exited since the last poll: its --out gets its kept log back first
    if viewer.model is None or viewer.model.pose_codes is None:
        st.error("open a checkpoint with a pose stage first (fitting needs both decoders)")
        return False
    opts = options(viewer)
    if not layout.is_sequence(opts.sequence):
        st.error(f"{opts.sequence or '(empty)'}: not a depth-sequence folder (expected camera.json and depth/)")
        return False
    if not opts.out or (Path(opts.out).exists() and not Path(opts.out).is_dir()):
        st.error(f"output {opts.out or '(empty)'}: expected a folder for the fit result")
        return False
    run = FitRun(opts, prefix)
    try:
        run.start()
    except OSError as e:
        st.error(f"cannot start the fit: {e}")
        return False
    viewer.fit_run = run
    viewer.show_live_fit(run)
    st.info(f"fitting {opts.sequence} ({opts.schedule}) -> {opts.out}")
    return True


def stop(viewer) -> None:
    run = viewer.fit_run
    if run is not None and run.running:
        run.stop()
        earlier = " (it keeps its earlier result)" if layout.is_fit(run.out) else ""
        viewer.state.info(f"fit stopped: nothing written to {run.out}{earlier}")


def update(viewer, dt: float) -> None:
    """Poll the running fit; new tracked frames go to the scene; a finished fit opens for replay."""
    run = viewer.fit_run
    if run is None or run.ended:
        return
    viewer.request_live_frames(run.poll_every(0.25))  # also collects depth points read meanwhile
    if not run.ended:
        return
    if run.finished:
        viewer.state.info(f"fit done: {run.out} opened for replay")
        viewer.open_fit(str(run.out))
    elif run.returncode not in (-15, -9):
        viewer.state.error(f"fit exited with code {run.returncode}: {run.log_tail(2)}")


def draw(viewer) -> None:
    st, run = viewer.state, viewer.fit_run
    running = run is not None and run.running
    psim.TextDisabled("depth sequence (camera.json + depth/)")
    psim.PushItemWidth(-150)
    _, st.fit_sequence = psim.InputText("##fitseq", st.fit_sequence)
    psim.PopItemWidth()
    psim.SameLine()
    if psim.Button("Browse##fitseq"):
        viewer.browse("fitseq", "Depth sequence", st.fit_sequence, lambda p: setattr(st, "fit_sequence", p))
    psim.SameLine()
    if psim.Button("Example"):
        st.fit_sequence = example_sequence()
    _, st.fit_out = psim.InputText("output dir", st.fit_out)
    for name in schedules():
        if psim.RadioButton(name, st.fit_schedule == name):
            st.fit_schedule = name
        psim.SameLine()
    psim.NewLine()
    _, st.fit_no_icp = psim.Checkbox("no ICP", st.fit_no_icp)
    psim.SameLine()
    _, st.fit_no_temporal = psim.Checkbox("no temporal term", st.fit_no_temporal)
    psim.SameLine()
    _, st.fit_no_segmentation = psim.Checkbox("no segmentation", st.fit_no_segmentation)
    psim.PushItemWidth(120)
    _, st.fit_resolution = psim.InputInt("mesh resolution (0 = schedule's)", st.fit_resolution, 16)
    _, st.fit_frames = psim.InputInt("frames (0 = all)", st.fit_frames, 1)
    _, st.fit_device = psim.InputText("device (cpu, cuda)", st.fit_device)
    psim.PopItemWidth()
    st.fit_resolution, st.fit_frames = max(0, st.fit_resolution), max(0, st.fit_frames)
    if running:
        if psim.Button("Stop"):
            stop(viewer)
    elif psim.Button("Start fit"):
        start(viewer)
    if viewer.model is not None:
        psim.SameLine()
        psim.TextDisabled(f"model: {viewer.model.path.name}")
    if run is None:
        psim.TextWrapped(
            "The fit runs in a separate process; the Sequence view shows each frame's depth points and "
            "fitted body as soon as it is tracked (fast schedule), and the result opens for replay when done."
        )
        return
    psim.Separator()
    psim.ProgressBar(run.fraction, (-1, 0), run.status())
    draw_energy(run)
    if run.finished and psim.Button("Replay the result"):
        viewer.open_fit(str(run.out))
        viewer.select_panel("sequence")
    tail = run.log_tail(2)
    if tail and run.ended and not run.finished and run.returncode not in (-15, -9):
        psim.TextWrapped(tail)


def draw_energy(run) -> None:
    from polyscope import implot

    if not run.curve:
        return
    x, y = (np.ascontiguousarray(a, np.float64) for a in zip(*run.curve))
    label = "iteration" if run.options.schedule == "paper" else "frame"
    if implot.BeginPlot("energy", (-1, 200)):
        implot.SetupAxes(label, "energy", implot.ImPlotAxisFlags_AutoFit, implot.ImPlotAxisFlags_AutoFit)
        implot.PlotLine("energy", x, y)
        implot.EndPlot()
