"""Viewer responsiveness benchmark: the latencies a person feels in npm-viewer, against the targets.

Measures, through the real MeshWorker process (spawned, cores - 1 torch threads) and the real App:
  shape-slider preview latency   submit -> vertices back, preview grid (48^3), new code each time
  full-resolution extraction     submit -> vertices back at 128^3, new code each time
  pose-slider preview / exact    canonical mesh cached; anchor posing vs every vertex
  replay fps                     Sequence panel stepping frames of a 30-frame fit (app work per
                                 frame, and with Polyscope rendering through EGL = Mesa software GL)
  UI frame time                  App.tick() while the worker extracts full-resolution meshes
Checkpoint: --checkpoint (default checkpoints/body-v2 when it is there), else a random one of the
`fast` preset sizes; a missing pose stage is replaced by a random pose decoder of the checkpoint's
config (same cost). The output says which.

    python benchmarks/bench_viewer.py [--checkpoint DIR] [--repeats 5] [--out benchmarks/results/viewer_cpu.md]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare_checkpoint(arg: str | None, tmp: Path) -> tuple[Path, str]:
    import torch

    from npm_core import layout
    from npm_core.models import checkpoint as ckpt
    from npm_core.models.decoders import PoseDecoder, ShapeDecoder, model_preset

    src = Path(arg) if arg else ROOT / "checkpoints" / "body-v2"
    out = tmp / "ckpt"
    torch.manual_seed(0)
    if layout.is_checkpoint(src):
        out.mkdir()
        for path in (
            layout.checkpoint_config_path,
            layout.checkpoint_meta_path,
            *(functools.partial(layout.checkpoint_stage_path, stage=s) for s in layout.STAGES),
        ):
            if path(src).exists():
                shutil.copy(path(src), path(out))
        what = str(src.relative_to(ROOT)) if src.is_relative_to(ROOT) else str(src)
        if not layout.checkpoint_stage_path(out, "pose").exists():
            cfg, _ = ckpt.load_model_config(out)
            pose = PoseDecoder(cfg.pose, cfg.shape.code_dim)
            ckpt.save_stage(out, "pose", pose, torch.randn(40, cfg.pose.code_dim) * 0.01, cfg)
            what += " (no pose stage yet: random pose decoder of its config, same cost)"
        return out, what
    if arg:
        raise SystemExit(
            f"{src}: not a checkpoint (expected {layout.checkpoint_config_path(src).name} and "
            f"{layout.checkpoint_stage_path(src, 'shape').name})"
        )
    cfg = model_preset("fast")
    ckpt.save_stage(out, "shape", ShapeDecoder(cfg.shape), torch.randn(8, cfg.shape.code_dim) * 0.01, cfg)
    ckpt.save_stage(
        out, "pose", PoseDecoder(cfg.pose, cfg.shape.code_dim), torch.randn(40, cfg.pose.code_dim) * 0.01, cfg
    )
    return out, "random checkpoint, `fast` preset sizes (no checkpoints/body-v2)"


def make_replay(ckpt: Path, fit_dir: Path, seq_dir: Path, frames: int, resolution: int) -> None:
    """A fit result to replay (shape code 0, poses blended from the first to the last pose code, a
    2 cm drift) and its depth sequence: gt = the fitted meshes 1 cm to the side, depth ray-cast
    from the gt, so replay draws a fit, a gt, per-vertex errors and depth points as for a real fit."""
    import torch

    from npm_core.data.depth import Camera, render_depth, write_sequence
    from npm_core.fit import FitConfig, FitResult, read_result, write_result
    from npm_core.models.checkpoint import load_model

    model = load_model(ckpt)
    t = torch.linspace(0, 1, frames)
    poses = (1 - t)[:, None] * model.pose_codes[0] + t[:, None] * model.pose_codes[-1]
    drift = torch.stack([t * 0.02, torch.zeros(frames), torch.zeros(frames)], 1)
    res = FitResult(model.shape_codes[0].clone(), poses, drift, losses={"reconstruction": np.full(frames, 0.01)})
    write_result(fit_dir, res, model, FitConfig(), ckpt.name, seq_dir, resolution=resolution)
    _, posed, faces = read_result(fit_dir).meshes()
    gt = posed + np.array([0.01, 0.0, 0.0], np.float32)
    cam = Camera.looking_at_subject(320, 240)
    write_sequence(seq_dir, cam, np.stack([render_depth(cam, v, faces) for v in gt]), gt, faces)


def timed(worker, channel, path, items, res, mode="exact", lipschitz=None) -> tuple[float, dict]:
    t = time.perf_counter()
    worker.submit(channel, path, items, res, mode, lipschitz)
    while True:
        rs = worker.poll()
        if rs:
            r = rs[-1]
            if r.error:
                raise RuntimeError(r.error)
            return time.perf_counter() - t, r
        time.sleep(0.001)


def med(xs):
    return statistics.median(xs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "viewer_cpu.md"))
    args = p.parse_args()
    import torch

    from npm_core.mesh.posing import ANCHORS
    from npm_core.models.checkpoint import load_model
    from npm_viewer.workers import VIEW_LIPSCHITZ, MeshWorker

    tmp = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    path, what = prepare_checkpoint(args.checkpoint, tmp)
    m = load_model(path)
    S, P = m.shape_codes.numpy(), m.pose_codes.numpy()
    # codes no earlier run used: the worker's mesh cache persists across runs, and a hit is not an extraction
    S = S + np.random.default_rng().normal(0.0, 1e-4, S.shape[1]).astype(S.dtype)
    rng = np.random.default_rng(0)
    worker = MeshWorker()
    rows, n = [], args.repeats
    try:
        timed(worker, "main", path, [(S[0], None)], 32)  # start-up: imports, model load

        def lat(k, res, lip=None):
            code = S[0] * (1 - k / 10) + S[1 % len(S)] * k / 10
            return timed(worker, "main", path, [(code, None)], res, "exact", lip)

        prev = [lat(k, 48, VIEW_LIPSCHITZ) for k in range(1, n + 1)]
        rows.append(
            (
                f"shape-slider preview (48^3, L={VIEW_LIPSCHITZ:g})",
                f"{med([t for t, _ in prev]) * 1000:.0f} ms",
                f"{prev[-1][1].stats['vertices']} verts",
                "<= 150 ms",
                med([t for t, _ in prev]) <= 0.15,
            )
        )
        for lip in (2.0, VIEW_LIPSCHITZ):
            full = [lat(k + 0.5 + lip / 7, 128, lip) for k in range(1, n + 1)]
            tm = med([t for t, _ in full])
            rows.append(
                (
                    f"full resolution (128^3, L={lip:g}{', used by the app' if lip == VIEW_LIPSCHITZ else ' = npm_core default'})",
                    f"{tm * 1000:.0f} ms",
                    f"{full[-1][1].stats['vertices']} verts",
                    "<= 1 s",
                    tm <= 1.0,
                )
            )
        for res in (128, 256):
            code = S[0]
            timed(worker, "main", path, [(code, None)], res)  # canonical cached
            for mode in ("preview", "exact"):
                ts, r = [], None
                for k in range(n + 1):
                    pc = P[k % len(P)] * (1 + 0.01 * k)
                    t, r = timed(worker, "main", path, [(code, pc)], res, mode)
                    ts.append(t)
                ts = ts[1:]  # first preview builds the anchor weights once per mesh
                label = f"pose slider {mode} ({res}^3 mesh)" + (f", {ANCHORS} anchors" if mode == "preview" else "")
                if mode == "preview":
                    rows.append(
                        (label, f"{med(ts) * 1000:.0f} ms", f"{r.stats['vertices']} verts", "<= 50 ms", med(ts) <= 0.05)
                    )
                else:
                    rows.append(
                        (label, f"{med(ts) * 1000:.0f} ms", f"{r.stats['vertices']} verts", "(after release)", None)
                    )
        fps_rows, ui = replay_and_ui(path, worker, S, rng)
        rows += fps_rows
        rows.append(ui)
    finally:
        worker.close()
        shutil.rmtree(tmp, ignore_errors=True)
    load = os.getloadavg()
    head = (
        f"`python benchmarks/bench_viewer.py --repeats {n}`\n\n"
        f"checkpoint: {what}\n\ntorch {torch.__version__}, worker process {max(1, (os.cpu_count() or 2) - 1)} torch thread(s), {os.cpu_count()} CPU cores, "
        f"load avg {load[0]:.1f} at the end; medians of {n}\n\n"
    )
    table = ["| what | measured | size | target | ok |", "|---|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d} | {'-' if e is None else 'yes' if e else 'NO'} |" for a, b, c, d, e in rows]
    text = head + "\n".join(table) + "\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)


def replay_and_ui(path, worker, S, rng):
    """Replay fps on a 30-frame fit at 128^3, and UI frame time while the worker extracts."""
    import polyscope as ps

    from npm_viewer.app import App, init_polyscope

    root = Path(tempfile.mkdtemp(prefix="bench-fit-"))
    make_replay(path, root / "fit", root / "seq", frames=30, resolution=128)
    init_polyscope("openGL3_egl", (1280, 800))
    ps.set_frame_tick_limit_fps_mode("ignore_limits")
    app = App(str(path), str(root / "fit"), worker=worker)
    app.attach()
    app.select_panel("sequence")
    app.settle()
    seq = app.replay
    # app work per replayed frame: advance + move fit/gt vertices, error colours, depth points
    app.state.playing = True
    t = time.perf_counter()
    for _ in range(90):
        app.play(1.0 / seq.fps)
    app_fps = 90 / (time.perf_counter() - t)
    # with rendering (EGL, Mesa llvmpipe: software GL on the same 2 cores)
    t, k = time.perf_counter(), 0
    while time.perf_counter() - t < 3.0:
        app.play(1.0 / seq.fps)  # one new frame per tick
        app.tick()
        k += 1
    gl_fps = k / (time.perf_counter() - t)
    app.state.playing = False
    verts = f"{seq.posed.shape[1]} verts + gt + {len(seq.points[0])} pts"
    rows = [
        ("replay: app work per frame", f"{app_fps:.0f} fps", verts, ">= 25 fps", app_fps >= 25),
        ("replay incl. software rendering (EGL/llvmpipe)", f"{gl_fps:.1f} fps", verts, ">= 25 fps", gl_fps >= 25),
    ]
    # UI frame time while the worker extracts 128^3 meshes back to back
    app.select_panel("shape")
    app.settle()
    ticks, t, k = [], time.perf_counter(), 0
    while time.perf_counter() - t < 4.0:
        if not worker.busy():
            k += 1
            app.state.alpha = (k % 10) / 10 + 0.05
            app.request_mesh()
        t0 = time.perf_counter()
        app.tick()
        ticks.append(time.perf_counter() - t0)
        time.sleep(max(0.0, 1 / 30 - ticks[-1]))
    ticks = np.asarray(ticks) * 1000
    ui = (
        "UI frame while the worker extracts (EGL)",
        f"median {np.median(ticks):.0f} ms, p95 {np.percentile(ticks, 95):.0f} ms",
        f"{k} meshes in 4 s",
        "<= 33 ms",
        np.median(ticks) <= 33,
    )
    app.worker = None
    ps.shutdown()
    shutil.rmtree(root, ignore_errors=True)
    return rows, ui


if __name__ == "__main__":
    main()
