"""Train panel: start/stop/resume a shape or pose training stage in a subprocess, watch its
progress (bar, ETA, live log-scale loss plot) and open the finished checkpoint in the explorer.

The subprocess is `python -m npm_core.cli train STAGE --out DIR --config FILE [--data DATASET]`
(workers.TrainRun; --data: an imported dataset, for the shape stage);
progress comes from the checkpoint's progress log. Stop = SIGTERM; training keeps a resumable
state per epoch, so Start on the same directory resumes. The panel's fields live in the State (train_*).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polyscope.imgui as psim

from npm_core import layout

from ..state import TRAIN_STAGES as STAGES

TITLE = "Train"
NEEDS = (  # measured on 2 CPU cores with configs/train_fast.yaml (benchmarks/results/train_cpu.md)
    "Needs the training set first: `npms data build --config CONFIG` (about 6 min, 2.7 GB in the cache; "
    "a second run is a no-op). Then the shape stage (60 epochs, about 33 min on 2 CPU cores), then the "
    "pose stage (20 epochs, about 39 min). Training runs in a separate process; this window stays "
    "responsive, Stop keeps the last epoch and Start resumes from it. For your own meshes, give the dataset "
    "`npms data import` made (hands: `npms data hands`, then import; configs/train_hands_v1.yaml)."
)


def configs() -> list:
    return sorted(str(p) for p in Path("configs").glob("train*.yaml")) if Path("configs").is_dir() else []


def start(
    viewer, out_dir: str, stage: str, config: str | None = None, command: list | None = None, data: str | None = None
) -> None:
    """Start (or resume) a stage, on the Anny data of `config` or the imported dataset `data`;
    `command` replaces the real CLI (tests)."""
    from ..workers import TrainRun

    if viewer.train_run is not None and viewer.train_run.running:
        viewer.state.error("a training run is already going: stop it first")
        return
    if config and not Path(config).is_file():
        viewer.state.error(f"config not found: {config}")
        return
    if data and not layout.is_dataset(data):
        viewer.state.error(f"not a dataset: {data} (make one with `npms data import MESHES --out {data}`)")
        return
    run = TrainRun(out_dir, stage, config, command, data)
    try:
        run.start()
    except OSError as e:
        viewer.state.error(f"cannot start training: {e}")
        return
    viewer.train_run = run
    viewer.state.info(f"training {stage} -> {out_dir}")


def watch(viewer, out_dir: str, stage: str) -> None:
    """Follow a run started elsewhere (its progress log), without a process of ours."""
    from ..workers import TrainRun

    if not Path(out_dir).is_dir():
        viewer.state.error(f"no folder {out_dir}: start a run there first, or type the folder of a running one")
        return
    viewer.train_run = TrainRun(out_dir, stage)


def stop(viewer) -> None:
    if viewer.train_run is not None:
        viewer.train_run.stop()
        viewer.state.info("training stopped (Start resumes from the last epoch)")


def update(viewer, dt: float) -> None:
    run = viewer.train_run
    if run is None:
        return
    run.poll_every(0.5)
    if run.proc is not None and not run.running and not run.reported:
        run.reported = True
        if run.returncode == 0:
            viewer.state.info(f"training {run.stage} finished: open {run.out_dir} in the explorer")
        elif run.returncode not in (None, -15):
            viewer.state.error(f"training exited with code {run.returncode}: {run.log_tail(2)}")


def fmt_eta(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def draw(viewer) -> None:
    st = viewer.state
    cfgs = configs()
    if cfgs:
        i = cfgs.index(st.train_config) if st.train_config in cfgs else 0
        changed, i = psim.Combo("config", i, cfgs)
        if changed:
            st.train_config = cfgs[i]
    _, st.train_config = psim.InputText("config file", st.train_config)
    _, st.train_data = psim.InputText("imported dataset (optional)", st.train_data)
    _, st.train_out = psim.InputText("output dir", st.train_out)
    for name in STAGES:
        if psim.RadioButton(name, st.train_stage == name):
            st.train_stage = name
        psim.SameLine()
    psim.NewLine()
    run = viewer.train_run
    resumable = layout.checkpoint_train_state_path(st.train_out, st.train_stage).exists()
    if run is not None and run.running:
        if psim.Button("Stop"):
            stop(viewer)
    else:
        if psim.Button("Resume" if resumable else "Start"):
            start(viewer, st.train_out, st.train_stage, st.train_config or None, data=st.train_data or None)
        psim.SameLine()
        if psim.Button("Watch progress"):
            watch(viewer, st.train_out, st.train_stage)
    if run is None:
        psim.TextWrapped(NEEDS)
        return
    psim.Separator()
    e = run.last
    state = "running" if run.running else ("finished" if run.finished else "stopped" if run.proc else "watching")
    psim.Text(f"{run.stage} -> {run.out_dir}  [{state}]")
    overlay = (
        "waiting for the first progress line"
        if e is None
        else f"epoch {e.epoch}/{e.total_epochs}  ETA {fmt_eta(e.eta_s)}  {e.samples_per_s / 1000:.0f}k pts/s"
    )
    psim.ProgressBar(run.fraction, (-1, 0), overlay)
    draw_losses(run)
    if run.finished and layout.is_checkpoint(run.out_dir) and psim.Button("Open this checkpoint in the explorer"):
        viewer.open_checkpoint(str(run.out_dir))
        viewer.select_panel("shape" if run.stage == "shape" else "pose")
    tail = run.log_tail(2)
    if tail and not run.running and run.returncode not in (0, None):
        psim.TextWrapped(tail)


def draw_losses(run) -> None:
    from polyscope import implot

    keys = sorted({k for e in run.events[-50:] for k in e.losses})
    if not keys:
        return
    if implot.BeginPlot("loss", (-1, 220)):
        implot.SetupAxes("step", "loss", implot.ImPlotAxisFlags_AutoFit, implot.ImPlotAxisFlags_AutoFit)
        implot.SetupAxisScale(implot.ImAxis_Y1, implot.ImPlotScale_Log10)
        for k in keys:
            x, y = run.loss_curve(k)
            if len(x):
                implot.PlotLine(k, np.ascontiguousarray(x), np.ascontiguousarray(y))
        implot.EndPlot()
