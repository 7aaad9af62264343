"""`npms`: the command line. Subcommands: data build|sequence (more: train, extract, fit, eval).

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
    from . import config
    from .data import dataset

    cfg = config.load(config.DataConfig, args.config) if args.config else config.DataConfig()
    root = Path(args.cache) if args.cache else None
    out = dataset.dataset_dir(cfg, root)
    if (out / "DONE").exists():
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
    ic = cfg.identities
    idents = {x.id: x for x in bodies.sample_identities(ic.count, ic.seed, ic.test_fraction, ic.min_age_years, ic.max_age_years)}
    if args.identity not in idents:
        some = ", ".join(list(idents)[:5])
        raise ValueError(f"unknown identity '{args.identity}' for this data config; ids look like {some}, ...")
    cam = depth.Camera.looking_at_subject(args.width, args.height, args.distance)
    seq = depth.synthesize_sequence(args.out, idents[args.identity].phenotypes, args.motion, cam, args.frames)
    print(f"wrote {len(seq)} frames {args.width}x{args.height} of {args.identity} ({idents[args.identity].split}) "
          f"doing '{args.motion}' to {args.out}")


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

    from .data import dataset
    from .models import checkpoint
    from .train import train_pose, train_shape

    torch.set_num_threads(args.threads)
    name, model_cfg, data_cfg, shape_cfg, pose_cfg = load_train_config(args.config, args.preset)
    root = Path(args.cache) if args.cache else None
    if not (dataset.dataset_dir(data_cfg, root) / "DONE").exists():
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
        labels = [{"identity": ds.identities[i]["id"], "phenotypes": ds.identities[i]["phenotypes"],
                   "age_years": ds.identities[i]["age_years"]} for i in train_ids]
        res = train_shape(ds.shape_samples(train_ids), shape_cfg, model_cfg, args.out, progress,
                          code_labels=labels, sections=sections)
    else:
        m = checkpoint.load_model(args.out)
        row = {g: k for k, g in enumerate(train_ids)}
        labels = [{"motion": f["motion"], "frame": f["frame"], "shape_index": row[f["identity"]],
                   "identity": ds.identities[f["identity"]]["id"], "angles": f["angles"]} for f in ds.frames]
        res = train_pose(ds.flow_samples(), m.shape_decoder, m.shape_codes, pose_cfg, model_cfg, args.out, progress,
                         code_labels=labels, sections=sections)
    if "bar" in bar:
        bar["bar"].close()
    print(f"trained {args.stage} stage in {res.seconds / 60:.1f} min (this session {(time.time() - t) / 60:.1f} min) -> {args.out}")


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
    s.set_defaults(fn=cmd_data_sequence)
    t = sub.add_parser("train", help="train the shape or pose stage (resumes if interrupted)")
    t.add_argument("stage", choices=["shape", "pose"])
    t.add_argument("--out", required=True, help="checkpoint directory, e.g. checkpoints/body-v1")
    t.add_argument("--config", help="YAML with sections preset/data/shape/pose (e.g. configs/train_fast.yaml)")
    t.add_argument("--preset", choices=["fast", "paper"], help="overrides the config's preset")
    t.add_argument("--cache", help="data cache root")
    t.add_argument("--threads", type=int, default=2)
    t.set_defaults(fn=cmd_train)
    for register in _EXTRA:
        register(sub)
    return p


_EXTRA = []
"""Functions(subparsers) that add further subcommands (train, extract, fit, eval)."""


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
