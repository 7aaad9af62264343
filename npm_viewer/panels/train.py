"""Train panel: start/stop/resume a shape or pose training stage in a subprocess, watch its
progress (bar, ETA, live log-scale loss plot) and open the finished checkpoint in the explorer.

The subprocess is `python -m npm_core.cli train STAGE --out DIR --config FILE` (workers.TrainRun);
progress comes from the checkpoint's progress.jsonl. Stop = SIGTERM; training keeps a resumable
state per epoch, so Start on the same directory resumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polyscope.imgui as psim

TITLE = "Train"
_ui = {"config": "configs/train_fast.yaml", "out": "checkpoints/my-run", "stage": 0, "poll_t": 0.0}
STAGES = ("shape", "pose")


def configs() -> list:
    return sorted(str(p) for p in Path("configs").glob("train*.yaml")) if Path("configs").is_dir() else []


def start(app, out_dir: str, stage: str, config: str | None = None, command: list | None = None) -> None:
    """Start (or resume) a stage; `command` replaces the real CLI (tests)."""
    from ..workers import TrainRun

    if app.train_run is not None and app.train_run.running:
        app.state.error("a training run is already going: stop it first")
        return
    if config and not Path(config).is_file():
        app.state.error(f"config not found: {config}")
        return
    run = TrainRun(out_dir, stage, config, command)
    try:
        run.start()
    except OSError as e:
        app.state.error(f"cannot start training: {e}")
        return
    app.train_run = run
    app.state.info(f"training {stage} -> {out_dir}")


def watch(app, out_dir: str, stage: str) -> None:
    """Follow a run started elsewhere (its progress.jsonl), without a process of ours."""
    from ..workers import TrainRun

    app.train_run = TrainRun(out_dir, stage)


def stop(app) -> None:
    if app.train_run is not None:
        app.train_run.stop()
        app.state.info("training stopped (Start resumes from the last epoch)")


def update(app, dt: float) -> None:
    run = app.train_run
    if run is None:
        return
    _ui["poll_t"] += dt
    if _ui["poll_t"] < 0.5 and run.running:
        return
    _ui["poll_t"] = 0.0
    run.poll()
    if run.proc is not None and not run.running and not getattr(run, "reported", False):
        run.reported = True
        if run.returncode == 0:
            app.state.info(f"training {run.stage} finished: open {run.out_dir} in the explorer")
        elif run.returncode not in (None, -15):
            app.state.error(f"training exited with code {run.returncode}: {run.log_tail(2)}")


def fmt_eta(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def draw(app) -> None:
    cfgs = configs()
    if cfgs:
        i = cfgs.index(_ui["config"]) if _ui["config"] in cfgs else 0
        changed, i = psim.Combo("config", i, cfgs)
        if changed:
            _ui["config"] = cfgs[i]
    _, _ui["config"] = psim.InputText("config file", _ui["config"])
    _, _ui["out"] = psim.InputText("output dir", _ui["out"])
    for k, name in enumerate(STAGES):
        if psim.RadioButton(name, _ui["stage"] == k):
            _ui["stage"] = k
        psim.SameLine()
    psim.NewLine()
    run, stage = app.train_run, STAGES[_ui["stage"]]
    from npm_core.models.checkpoint import train_state_path

    resumable = train_state_path(_ui["out"], stage).exists()
    if run is not None and run.running:
        if psim.Button("Stop"):
            stop(app)
    else:
        if psim.Button("Resume" if resumable else "Start"):
            start(app, _ui["out"], stage, _ui["config"] or None)
        psim.SameLine()
        if psim.Button("Watch progress"):
            watch(app, _ui["out"], stage)
    if run is None:
        psim.TextWrapped("Training runs in a separate process; this window stays responsive.")
        return
    psim.Separator()
    e = run.last
    state = "running" if run.running else ("finished" if run.finished else "stopped" if run.proc else "watching")
    psim.Text(f"{run.stage} -> {run.out_dir}  [{state}]")
    overlay = "waiting for the first progress line" if e is None else \
        f"epoch {e.epoch}/{e.total_epochs}  ETA {fmt_eta(e.eta_s)}  {e.samples_per_s / 1000:.0f}k pts/s"
    psim.ProgressBar(run.fraction, (-1, 0), overlay)
    draw_losses(run)
    if run.finished and (Path(run.out_dir) / "shape.pt").exists() and psim.Button("Open this checkpoint in the explorer"):
        app.open_checkpoint(str(run.out_dir))
        app.select_panel("shape" if run.stage == "shape" else "pose")
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
