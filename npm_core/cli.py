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
