"""`npms`: the command line: data build|sequence|import-depth, train, eval-model, extract, fit, eval.

Each subcommand is a small function that parses arguments and calls npm_core; errors of
bad input print one line (`npms: error: ...`) and exit 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _bar(desc: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True, leave=True)


def cmd_data_build(args) -> None:
    from . import config, layout
    from .data import dataset

    cfg = config.load(config.DataConfig, args.config) if args.config else config.DataConfig()
    root = Path(args.cache) if args.cache else None
    out = layout.dataset_dir(cfg, root)
    if layout.is_dataset(out):
        print(f"dataset already built: {out}")
        return
    bars = {}

    def progress(stage, done, total):
        if stage not in bars:
            bars[stage] = _bar(stage, total)
        bars[stage].n = done
        bars[stage].refresh()
        if done == total:
            bars[stage].close()

    t = time.time()
    out = dataset.build(cfg, root, progress, workers=args.workers)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"built {out} in {time.time() - t:.0f} s, {size / 2**30:.2f} GiB")


def cmd_data_sequence(args) -> None:
    from . import bodies, config
    from .data import depth

    cfg = config.load(config.DataConfig, args.config) if args.config else config.DataConfig()
    ident = bodies.find_identity(args.identity, cfg.identities)
    cam = depth.Camera.looking_at_subject(args.width, args.height, args.distance)
    seq = depth.synthesize_sequence(args.out, ident.phenotypes, args.motion, cam, args.frames, compact=args.compact)
    print(f"wrote {len(seq)} frames {args.width}x{args.height} of {args.identity} ({ident.split}) "
          f"doing '{args.motion}' to {args.out}")


def cmd_data_import_depth(args) -> None:
    from .data import import_depth

    up = args.up
    if up != "auto":
        try:
            up = [float(x) for x in up.split(",")]
        except ValueError:
            up = None
        if up is None or len(up) != 3:
            raise ValueError(f"--up {args.up!r}: expected auto or x,y,z (a vector in the camera frame)")
    r = import_depth.import_depth(args.src, args.out, args.fx, args.fy, args.cx, args.cy, args.depth_scale,
                                  args.masks, args.box, up, args.fps)
    print(f"imported {r.frames} frames to {args.out}: up {r.up_camera.round(3).tolist()} in the camera frame "
          f"(from {r.up_from}), world origin at the subject, {r.centre_camera.round(2).tolist()} m from the camera")


def load_train_config(path: str | None, preset: str | None):
    """(model config, data config, shape config, pose config) from a YAML with sections
    preset/data/shape/pose (missing ones: the preset's defaults)."""
    import yaml

    from . import config
    from .models.decoders import model_preset
    from .train import TrainPoseConfig, TrainShapeConfig, pose_preset, shape_preset

    raw = {}
    if path:
        if not Path(path).is_file():
            raise config.ConfigError(f"config file not found: {path}")
        raw = yaml.safe_load(Path(path).read_text()) or {}
        unknown = sorted(set(raw) - {"preset", "data", "shape", "pose"})
        if unknown:
            raise config.ConfigError(f"{path}: unknown section(s) {unknown}; expected preset, data, shape, pose")
    name = preset or raw.get("preset", "fast")
    model = model_preset(name)
    data = config.from_dict(config.DataConfig, raw.get("data"), f"{path} data")
    shape = config.from_dict(TrainShapeConfig, {**config.to_dict(shape_preset(name)), **(raw.get("shape") or {})}, f"{path} shape")
    pose = config.from_dict(TrainPoseConfig, {**config.to_dict(pose_preset(name)), **(raw.get("pose") or {})}, f"{path} pose")
    return name, model, data, shape, pose


def cmd_train(args) -> None:
    import torch

    from . import layout
    from .data import dataset
    from .models import checkpoint
    from .train import train_pose, train_shape

    torch.set_num_threads(args.threads)
    name, model_cfg, data_cfg, shape_cfg, pose_cfg = load_train_config(args.config, args.preset)
    root = Path(args.cache) if args.cache else None
    if not layout.is_dataset(layout.dataset_dir(data_cfg, root)):
        print("building the training set first (npms data build)...")
        dataset.build(data_cfg, root)
    ds = dataset.load(data_cfg, root)
    train_ids = ds.split("train")
    sections = {"preset": name, "data": data_cfg, "shape_training": shape_cfg, "pose_training": pose_cfg}
    bar = {}

    def progress(ev):
        if "bar" not in bar:
            bar["bar"] = _bar(f"{args.stage} epochs", ev.total_epochs)
        b = bar["bar"]
        b.n = ev.epoch
        b.set_postfix({k: f"{v:.3g}" for k, v in list(ev.losses.items())[:3]} | {"pts/s": f"{ev.samples_per_s:.3g}"}, refresh=True)

    t = time.time()
    if args.stage == "shape":
        res = train_shape(ds.shape_samples(train_ids), shape_cfg, model_cfg, args.out, progress,
                          code_labels=ds.shape_code_labels(), sections=sections)
    else:
        m = checkpoint.load_model(args.out)
        res = train_pose(ds.flow_samples(), m.shape_decoder, m.shape_codes, pose_cfg, model_cfg, args.out, progress,
                         code_labels=ds.pose_code_labels(), sections=sections)
    if "bar" in bar:
        bar["bar"].close()
    print(f"trained {args.stage} stage in {res.seconds / 60:.1f} min (this session {(time.time() - t) / 60:.1f} min) -> {args.out}")


def _progress_bar(desc):
    state = {}

    def cb(done, total):
        if "b" not in state:
            state["b"] = _bar(desc, total)
        state["b"].n = done
        state["b"].refresh()
        if done >= total:
            state["b"].close()

    return cb


def _write_json(path, data) -> None:
    import json

    from .config import write_text_atomic

    write_text_atomic(Path(path), json.dumps(data, indent=1))


def cmd_eval_model(args) -> None:
    import torch
    import yaml

    from . import config, evaluate
    from .data import dataset
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    m = checkpoint.load_model(args.checkpoint)
    data_cfg = config.from_dict(config.DataConfig, m.sections.get("data"), f"{args.checkpoint} data")
    ds = dataset.load(data_cfg, Path(args.cache) if args.cache else None)
    out = {"checkpoint": str(args.checkpoint)}
    test_codes = {}
    for split, n in [("test", args.identities), ("train", args.identities)]:
        rows = evaluate.evaluate_shapes(m, ds, split, n, args.resolution, args.iou_points,
                                        progress=_progress_bar(f"{split} shapes"),
                                        codes_out=test_codes if split == "test" else None)
        out[f"{split}_identities"] = {"count": len(rows), "iou": float(sum(r["iou"] for r in rows) / len(rows)),
                                      "chamfer_l2": float(sum(r["chamfer_l2"] for r in rows) / len(rows)), "per_identity": rows}
        print(f"{split} identities: IoU {out[f'{split}_identities']['iou']:.4f}, "
              f"Chamfer-L2 {out[f'{split}_identities']['chamfer_l2']:.3e}", flush=True)
        if args.json:  # a section at a time: a long run stopped later keeps what it measured
            _write_json(args.json, out)
    if m.pose_decoder is not None:
        out["held_out_poses"] = evaluate.evaluate_poses(m, ds, args.frames, progress=_progress_bar("held-out poses"),
                                                        test_codes=test_codes)
    print(yaml.safe_dump({k: ({kk: vv for kk, vv in v.items() if kk != "per_identity"} if isinstance(v, dict) else v)
                          for k, v in out.items()}, sort_keys=False))
    if args.json:
        _write_json(args.json, out)


def cmd_extract(args) -> None:
    import torch
    import trimesh

    from . import space
    from .mesh.extract import extract, pose_mesh
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    m = checkpoint.load_model(args.checkpoint)
    if not 0 <= args.shape < len(m.shape_codes):
        raise ValueError(f"--shape {args.shape} out of range [0, {len(m.shape_codes)})")
    s = m.shape_codes[args.shape]
    t = time.time()
    with torch.inference_mode():
        res = extract(m.shape_decoder.sdf_fn(s), args.resolution)
    v = res.vertices
    msg = f"extracted {len(v)} vertices, {len(res.faces)} faces at {args.resolution}^3 in {res.seconds * 1000:.0f} ms, " \
          f"{res.n_evaluations} decoder evaluations ({100 * res.n_evaluations / (args.resolution + 1) ** 3:.1f}% of dense, {res.method})"
    if args.pose is not None:
        if m.pose_decoder is None:
            raise ValueError(f"{args.checkpoint}: no pose decoder (pose.pt) to apply --pose")
        if not 0 <= args.pose < len(m.pose_codes):
            raise ValueError(f"--pose {args.pose} out of range [0, {len(m.pose_codes)})")
        t1 = time.time()
        with torch.inference_mode():
            v = pose_mesh(v, m.pose_decoder.displacement_fn(s, m.pose_codes[args.pose]))
        msg += f"; posed in {(time.time() - t1) * 1000:.0f} ms ({len(v)} decoder evaluations)"
    trimesh.Trimesh(space.model_to_metres(v.numpy()), res.faces.numpy(), process=False).export(args.out)
    print(msg + f"; total {time.time() - t:.2f} s -> {args.out} (metres)")


def cmd_fit(args) -> None:
    import torch

    from . import fit
    from .data import depth
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: this torch build sees no CUDA device (torch {torch.__version__})")
    m = checkpoint.load_model(args.checkpoint, args.device)
    if m.pose_decoder is None:
        raise ValueError(f"{args.checkpoint}: no pose decoder (pose.pt); train the pose stage first")
    frames = slice(0, args.frames) if args.frames else None
    seq = depth.read_sequence(args.sequence, frames)
    cfg = fit.SCHEDULES[args.schedule].config()
    for flag in ["no_temporal", "no_icp", "no_translation"]:
        if getattr(args, flag):
            setattr(cfg, "use_" + flag[3:], False)
    if args.iterations:
        cfg.iterations = args.iterations
    cfg.device = args.device
    bar = {}

    def progress(e):
        if "b" not in bar:
            bar["b"] = _bar(f"fit ({cfg.schedule})", e["total"])
        bar["b"].n = e.get("step", e.get("iteration"))
        bar["b"].set_postfix(stage=e["stage"], energy=f"{e['energy']:.4g}", refresh=True)

    res = fit.fit(m, seq, cfg, progress, on_frame=fit.frame_log(args.out))
    if "b" in bar:
        bar["b"].close()
    fit.write_result(args.out, res, m, cfg, Path(args.checkpoint).name, args.sequence,
                     args.resolution, _progress_bar("posed meshes"), compact=args.compact)
    print(f"fitted {len(seq)} frames in {res.timings['init_s'] + res.timings['optimise_s']:.1f} s"
          f"{' (interrupted: kept the last completed result)' if res.interrupted else ''} -> {args.out}")


def cmd_eval(args) -> None:
    from . import fit, metrics
    from .data import depth

    r = fit.read_result(args.fit)
    seq = depth.read_sequence(args.sequence)
    if seq.gt_vertices is None:
        raise ValueError(f"{args.sequence}: no gt/ meshes to evaluate against")
    _, posed, faces = r.meshes()
    if len(posed) != len(seq):
        raise ValueError(f"{args.fit} has {len(posed)} frames, {args.sequence} has {len(seq)}")
    out = metrics.evaluate_sequence(posed, faces, seq.gt_vertices, seq.gt_faces, args.iou_points,
                                    progress=_progress_bar("frames"))
    print("frame   IoU     C-L2 (x1e-5)")
    for t, (i, c) in enumerate(zip(out["iou"], out["chamfer_l2"])):
        print(f"{t:5d}  {i:.4f}  {c * 1e5:8.3f}")
    mm = out["mean"]
    print(f"mean   {mm['iou']:.4f}  {mm['chamfer_l2'] * 1e5:8.3f}   EPE {mm['epe']:.5f} model units = {mm['epe_cm']:.2f} cm")
    if args.json:
        _write_json(args.json, out)


def cmd_semantics(args) -> None:
    import torch

    from . import layout, semantics
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    m = checkpoint.load_model(args.checkpoint)
    sem = semantics.compute(m, args.ridge, args.shape_map, args.pose_map)
    if not args.no_refine:
        bars = {}

        def progress(stage, done, total, loss):
            if stage not in bars:
                bars[stage] = _progress_bar(stage)
            bars[stage](done, total)

        for name, (before, after) in semantics.refine(sem, m, progress=progress).items():
            verdict = "kept the refined map" if after < before else "kept the map fitted to codes"
            print(f"{name} map refined through the decoder: held-out loss {before:.5f} -> {after:.5f} ({verdict})")
    semantics.save(sem, layout.checkpoint_semantics_path(args.checkpoint))
    ph = [l["phenotypes"] for l in m.meta["shape"]["codes"]]
    import numpy as np

    from .bodies import PHENOTYPES

    x = np.array([[p[k] for k in PHENOTYPES] for p in ph])
    r2 = sem.shape_to_phenotype.r2(m.shape_codes.numpy(), x)
    print("shape code -> phenotype R^2 (training codes): " + ", ".join(f"{k} {v:.3f}" for k, v in zip(PHENOTYPES, r2)))
    print("shape PCA explained variance: " + ", ".join(f"{v:.3f}" for v in sem.shape_pca.explained))
    if sem.pose_pca is not None:
        print("pose PCA explained variance: " + ", ".join(f"{v:.3f}" for v in sem.pose_pca.explained))
    print(f"-> {layout.checkpoint_semantics_path(args.checkpoint)}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="npms", description="Neural Parametric Models of human bodies")
    sub = p.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="build training data, write depth sequences").add_subparsers(dest="what", required=True)
    b = data.add_parser("build", help="build the training set into the cache (no-op if built)")
    b.add_argument("--config", help="data config YAML (default: built-in defaults = configs/body.yaml)")
    b.add_argument("--cache", help="cache root (default: $NPM_CACHE_DIR or ~/.cache/npm_explorer)")
    b.add_argument("--workers", type=int, default=2)
    b.set_defaults(fn=cmd_data_build)
    s = data.add_parser("sequence", help="render a depth sequence (+ gt meshes) of an identity doing a motion")
    s.add_argument("--identity", required=True, help="identity id, e.g. s0-00003")
    s.add_argument("--motion", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--config")
    s.add_argument("--width", type=int, default=320)
    s.add_argument("--height", type=int, default=240)
    s.add_argument("--distance", type=float, default=2.8, help="camera distance from the subject, metres")
    s.add_argument("--frames", type=int, default=None)
    s.add_argument("--compact", action="store_true", help="gt meshes as one gt/meshes.npz (float16) instead of PLYs")
    s.set_defaults(fn=cmd_data_sequence)
    im = data.add_parser("import-depth", help="a folder of 16-bit depth PNGs or .npy frames -> a depth sequence")
    im.add_argument("src", help="folder of depth frames (file-name order)")
    im.add_argument("--out", required=True, help="sequence directory to write (must not exist or be empty)")
    for k in ["fx", "fy", "cx", "cy"]:
        im.add_argument(f"--{k}", type=float, required=True, help="intrinsics, pixels")
    im.add_argument("--depth-scale", type=float, default=1000.0, help="raw units per metre (PNG, integer .npy)")
    im.add_argument("--masks", help="folder of mask PNGs named like the frames, nonzero = subject")
    im.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="the subject's pixel box")
    im.add_argument("--up", default="auto", help="auto (the floor's normal, else the camera's -y) or x,y,z in the camera frame")
    im.add_argument("--fps", type=float, default=30.0)
    im.set_defaults(fn=cmd_data_import_depth)
    t = sub.add_parser("train", help="train the shape or pose stage (resumes if interrupted)")
    t.add_argument("stage", choices=["shape", "pose"])
    t.add_argument("--out", required=True, help="checkpoint directory, e.g. checkpoints/body-v1")
    t.add_argument("--config", help="YAML with sections preset/data/shape/pose (e.g. configs/train_fast.yaml)")
    t.add_argument("--preset", choices=["fast", "paper"], help="overrides the config's preset")
    t.add_argument("--cache", help="data cache root")
    t.add_argument("--threads", type=int, default=2)
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("eval-model", help="held-out identities (IoU, Chamfer-L2) and poses (vertex error)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--identities", type=int, default=16, help="identities per split")
    e.add_argument("--frames", type=int, default=200, help="held-out frames")
    e.add_argument("--resolution", type=int, default=256)
    e.add_argument("--iou-points", type=int, default=1_000_000)
    e.add_argument("--cache")
    e.add_argument("--json", help="write all numbers here")
    e.add_argument("--threads", type=int, default=2)
    e.set_defaults(fn=cmd_eval_model)
    x = sub.add_parser("extract", help="mesh of a training shape code (optionally posed) to .ply/.obj")
    x.add_argument("--checkpoint", required=True)
    x.add_argument("--shape", type=int, required=True, help="index of a training shape code")
    x.add_argument("--pose", type=int, help="index of a training pose code")
    x.add_argument("--resolution", type=int, default=256)
    x.add_argument("--out", required=True)
    x.add_argument("--threads", type=int, default=2)
    x.set_defaults(fn=cmd_extract)
    f = sub.add_parser("fit", help="fit shape + per-frame pose codes to a depth sequence")
    f.add_argument("--checkpoint", required=True)
    f.add_argument("--sequence", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--schedule", choices=["fast", "paper"], default="fast")
    f.add_argument("--frames", type=int, help="only the first N frames")
    f.add_argument("--iterations", type=int, help="paper schedule: override the iteration count")
    f.add_argument("--resolution", type=int, help="output mesh resolution (default: the schedule's)")
    f.add_argument("--compact", action="store_true", help="posed meshes as one meshes.npz (float16) instead of PLYs")
    f.add_argument("--no-temporal", action="store_true")
    f.add_argument("--no-icp", action="store_true")
    f.add_argument("--no-translation", action="store_true")
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--device", default="cpu", help="where the decoders run (cpu, cuda); depth queries stay on the CPU")
    f.set_defaults(fn=cmd_fit)
    v = sub.add_parser("eval", help="IoU, Chamfer-L2, EPE of a fit against the sequence's gt meshes")
    v.add_argument("--fit", required=True)
    v.add_argument("--sequence", required=True)
    v.add_argument("--iou-points", type=int, default=1_000_000)
    v.add_argument("--json")
    v.set_defaults(fn=cmd_eval)
    se = sub.add_parser("semantics", help="phenotype/joint-angle maps and PCA of a checkpoint's codes")
    se.add_argument("--checkpoint", required=True)
    se.add_argument("--ridge", type=float, default=1e-2)
    se.add_argument("--shape-map", choices=["linear", "mlp"], default="mlp", help="phenotypes -> shape code")
    se.add_argument("--pose-map", choices=["linear", "mlp"], default="mlp", help="joint angles -> pose code")
    se.add_argument("--no-refine", action="store_true",
                    help="skip training the MLP maps through the frozen decoders on fresh bodies (the slow part: ~25 min on 2 cores)")
    se.add_argument("--threads", type=int, default=2)
    se.set_defaults(fn=cmd_semantics)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except (ValueError, FileNotFoundError) as e:  # ConfigError, SequenceError, CheckpointError are ValueErrors
        print(f"npms: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
