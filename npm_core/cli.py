"""`npms`: the command line: data build|sequence|import-depth, train, eval-model, extract, fit, eval.

Each subcommand is a small function that parses arguments and calls npm_core. Arguments are
checked in one place, below: values (ranges, types, output suffixes) by argparse `type=`
functions while parsing, paths (kinds of file and folder) by checks that main runs after parsing
and before the command, so parsing alone needs no files. Errors of bad input print one line
(`npms: error: ...`) naming the argument, file or field and the value, and exit 2, never a traceback. Outputs are written atomically, and
an existing folder is replaced only when it holds an earlier result of the same kind.
Must not: hold algorithms (they live in npm_core's modules).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import layout
from .atomic import atomic_dir, atomic_path, write_text_atomic


def _bar(desc: str, total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="it", dynamic_ncols=True, leave=True)


# ------------------------------------------------------------------------ argument checks
# argparse `type=` functions turn the text into the value; path checks (_path_arg) look at the file
# system after parsing. Both raise ArgumentTypeError saying what was expected, to which
# "argument --name: " is prefixed. The limits are stated in --help.

MAX_RESOLUTION = 1024  # a dense (N + 1)^3 float32 grid, extraction's fallback, is 4.3 GiB here
MAX_THREADS = 1024
MAX_IOU_POINTS = 100_000_000  # about 2.4 GiB of sample points (float64 drawn, float32 kept)
MAX_IMAGE_SIDE = 4096
MAX_SEQUENCE_FRAMES = 10_000
MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off", ".glb")
_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class UsageError(ValueError):
    """A command line that does not parse: printed as one `npms: error:` line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse would print the usage and exit; main prints one line
        raise UsageError(f"{message} (see '{self.prog} --help')")


def int_in(lo: int, hi: int | None = None, note: str = ""):
    """argparse type: an integer in [lo, hi] (hi None: no upper limit); `note` says why the limit."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer") from None
        if v < lo or (hi is not None and v > hi):
            want = f"an integer >= {lo}" if hi is None else f"an integer from {lo} to {hi}"
            raise argparse.ArgumentTypeError(f"{v}: expected {want}{note}")
        return v

    return parse


def float_in(lo: float, hi: float | None = None, above: bool = False, note: str = ""):
    """argparse type: a finite number >= lo (> lo when `above`) and <= hi."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a number") from None
        if not math.isfinite(v) or v < lo or (above and v == lo) or (hi is not None and v > hi):
            want = f"a number {'>' if above else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")
            raise argparse.ArgumentTypeError(f"{text}: expected {want}{note}")
        return v

    return parse


positive_int = int_in(1)
index = int_in(0)
threads = int_in(1, MAX_THREADS)


def resolution(text: str) -> int:
    """argparse type: marching-cubes cells per axis N, 8..MAX_RESOLUTION."""
    n = int_in(8)(text)
    if n > MAX_RESOLUTION:
        gib = 4 * (n + 1) ** 3 / 2**30
        raise argparse.ArgumentTypeError(
            f"{n}: at most {MAX_RESOLUTION} cells per axis; the dense {n + 1}^3 grid that extraction falls back to "
            f"would allocate {gib:,.1f} GiB of float32"
        )
    return n


def device(text: str) -> str:
    if not _DEVICE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda or cuda:N")
    return text


def up_vector(text: str):
    """argparse type: 'auto' or x,y,z (three numbers, not all zero)."""
    if text == "auto":
        return text
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 3 or not all(map(math.isfinite, v)) or not any(v):
        raise argparse.ArgumentTypeError(f"{text!r}: expected auto or x,y,z (a nonzero vector in the camera frame)")
    return v


def _no_file_above(path: Path, text: str) -> None:
    """Missing folders on the way to `path` are created later; an existing file there is an error."""
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{text}: {parent} is a file, not a folder")
            return


def _existing(text: str, folder: bool) -> str:
    p = Path(text)
    want, other = ("folder", "file") if folder else ("file", "folder")
    if not p.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such {want}")
    if p.is_dir() != folder:
        raise argparse.ArgumentTypeError(f"{text}: is a {other}, expected a {want}")
    return text


def existing_file(text: str) -> str:
    return _existing(text, folder=False)


def existing_dir(text: str) -> str:
    return _existing(text, folder=True)


def _folder_of(is_kind, what: str):
    """Path check: an existing folder that `is_kind` (a layout test) accepts; `what` says what is expected."""

    def check(text: str) -> str:
        if not is_kind(existing_dir(text)):
            raise argparse.ArgumentTypeError(f"{text}: {what}")
        return text

    return check


checkpoint_dir = _folder_of(
    layout.is_checkpoint, "not a checkpoint (expected config.yaml and shape.pt, as `npms train` writes)"
)
sequence_dir = _folder_of(layout.is_sequence, "not a depth sequence (expected camera.json and depth/)")
fit_dir = _folder_of(layout.is_fit, f"not a fit result (expected {', '.join(layout.FIT_FILES)}, as `npms fit` writes)")


def file_out(text: str) -> str:
    """Path check: a file to write (replaced if it exists; missing folders are created)."""
    p = Path(text)
    if p.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a folder, expected a file name")
    _no_file_above(p, text)
    return text


def mesh_path(text: str) -> str:
    """argparse type: a mesh file name whose suffix names a format trimesh writes (MESH_SUFFIXES)."""
    suffix = Path(text).suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"{text}: mesh format {suffix or '(no suffix)'!r} not supported; expected one of {', '.join(MESH_SUFFIXES)}"
        )
    return text


def folder_out(text: str) -> str:
    """Path check: a folder to write into (made if missing), not a file."""
    if Path(text).exists() and not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text}: is a file, expected a folder")
    _no_file_above(Path(text), text)
    return text


def dir_out(kind: str = "", is_kind=None):
    """Path check: a folder to write: new, empty, or (when `is_kind` says so) an earlier `kind`,
    which the command replaces or continues. Anything else is refused, so nothing is lost."""

    def parse(text: str) -> str:
        p = Path(text)
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{text}: is a file, expected a folder")
        if p.is_dir() and any(p.iterdir()) and not (is_kind and is_kind(p)):
            what = f" and is not a {kind}" if kind else ""
            raise argparse.ArgumentTypeError(
                f"{text}: folder exists{what}; expected a new or empty folder"
                + (f" or an earlier {kind}" if kind else "")
            )
        _no_file_above(p, text)
        return text

    return parse


def _is_checkpoint_in_progress(p: Path) -> bool:
    return any(
        f.is_file()
        for f in [
            layout.checkpoint_config_path(p),
            layout.checkpoint_progress_path(p),
            *(layout.checkpoint_train_state_path(p, s) for s in layout.STAGES),
        ]
    )


def _path_arg(parser, flag: str, check, **kw) -> None:
    """parser.add_argument(flag, **kw) whose value main checks with `check` after parsing."""
    dest = parser.add_argument(flag, **kw).dest
    parser.set_defaults(path_checks={**(parser.get_default("path_checks") or {}), dest: (flag, check, parser.prog)})


def check_paths(args) -> None:
    """Run the path checks of the parsed command (UsageError naming the argument)."""
    for dest, (flag, check, prog) in (getattr(args, "path_checks", None) or {}).items():
        if getattr(args, dest) is not None:
            try:
                check(getattr(args, dest))
            except argparse.ArgumentTypeError as e:
                raise UsageError(f"argument {flag}: {e} (see '{prog} --help')") from None


def _one_line(e: BaseException) -> str:
    return " ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__


def _stage_bars():
    """progress(stage, done, total) drawing one bar per stage."""
    bars = {}

    def progress(stage, done, total):
        if stage not in bars:
            bars[stage] = _bar(stage, total)
        bars[stage].n = done
        bars[stage].refresh()
        if done == total:
            bars[stage].close()

    return progress


def cmd_data_build(args) -> None:
    from . import config
    from .data import dataset

    cfg = config.load(config.DataConfig, args.config) if args.config else config.DataConfig()
    root = Path(args.cache) if args.cache else None
    out = layout.dataset_dir(cfg, root)
    if layout.is_dataset(out):
        print(f"dataset already built: {out}")
        return
    progress = _stage_bars()

    t = time.time()
    out = dataset.build(cfg, root, progress, workers=args.workers)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"built {out} in {time.time() - t:.0f} s, {size / 2**30:.2f} GiB")


def _identities_config(path):
    """The data config a data config YAML or a training config YAML (its data section) gives."""
    import yaml

    from . import config

    if path is None:
        return config.DataConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError:
        raw = None  # config.load names the file and the YAML error
    if isinstance(raw, dict) and "data" in raw:
        return load_train_config(path, None)[2]
    return config.load(config.DataConfig, path)


def cmd_data_sequence(args) -> None:
    from . import bodies
    from .data import depth

    cam = depth.Camera.looking_at_subject(args.width, args.height, args.distance)
    if args.data:
        from .data import dataset

        ds = dataset.open_dataset(args.data)
        with atomic_dir(Path(args.out)) as tmp:
            seq = depth.dataset_sequence(tmp, ds, args.identity, args.motion, cam, compact=args.compact)
        print(
            f"wrote {len(seq)} frames {args.width}x{args.height} of {args.identity} doing '{args.motion}' to {args.out}"
        )
        return
    cfg = _identities_config(args.config)
    bodies.motion(args.motion)  # unknown names fail here, before any rendering
    ident = bodies.find_identity(args.identity, cfg.identities)
    with atomic_dir(Path(args.out)) as tmp:  # no half-written sequence
        seq = depth.synthesize_sequence(tmp, ident.phenotypes, args.motion, cam, args.frames, compact=args.compact)
    print(
        f"wrote {len(seq)} frames {args.width}x{args.height} of {args.identity} ({ident.split}) "
        f"doing '{args.motion}' to {args.out}"
    )


def cmd_data_import_depth(args) -> None:
    from .data import import_depth

    r = import_depth.import_depth(
        args.src,
        args.out,
        args.fx,
        args.fy,
        args.cx,
        args.cy,
        args.depth_scale,
        args.masks,
        args.box,
        args.up,
        args.fps,
    )
    print(
        f"imported {r.frames} frames to {args.out}: up {r.up_camera.round(3).tolist()} in the camera frame "
        f"(from {r.up_from}), world origin at the subject, {r.centre_camera.round(2).tolist()} m from the camera"
    )


def cmd_data_import(args) -> None:
    from . import config
    from .data import meshes

    cfg = config.load(meshes.ImportConfig, args.config) if args.config else meshes.ImportConfig()
    progress = _stage_bars()

    r = meshes.import_meshes(args.src, args.out, cfg, progress, workers=args.workers)
    for note in r.notes:
        print(note)
    print(
        f"imported {r.identities} identities, {r.frames} training and {r.test_frames} held-out frames "
        f"in {r.seconds:.1f} s -> {r.path}"
    )


def cmd_data_hands(args) -> None:
    from . import hands

    cfg = hands.HandsConfig(args.identities, seed=args.seed, random_poses=args.random_poses)
    t0 = time.time()
    with _bar("hands", cfg.identities) as bar:
        hands.export_hands(args.out, cfg, progress=lambda done, total: bar.update(done - bar.n))
    print(
        f"wrote {cfg.identities} hands to {args.out} in {time.time() - t0:.0f} s; next: npms data import {args.out} --out DATASET"
    )


def _dataset(args, data_cfg, checkpoint_sections: dict | None = None):
    """The dataset a command works on: --data (an imported dataset), the checkpoint's recorded
    `dataset` (relative to the checkpoint), or the Anny dataset of `data_cfg` in the cache."""
    from .data import dataset

    if getattr(args, "data", None):
        return dataset.open_dataset(args.data)
    rel = (checkpoint_sections or {}).get("dataset")
    if rel:
        return dataset.open_dataset(Path(args.checkpoint) / rel)
    return dataset.load(data_cfg, Path(args.cache) if args.cache else None)


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
        try:
            raw = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as e:
            raise config.ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(raw, dict):
            raise config.ConfigError(
                f"{path}: expected a mapping with sections preset, data, shape, pose; got a {type(raw).__name__}"
            )
        unknown = sorted(set(raw) - {"preset", "data", "shape", "pose"})
        if unknown:
            raise config.ConfigError(f"{path}: unknown section(s) {unknown}; expected preset, data, shape, pose")
        for k in ["data", "shape", "pose"]:
            if raw.get(k) is not None and not isinstance(raw[k], dict):
                raise config.ConfigError(f"{path}: section '{k}' = {raw[k]!r}: expected a mapping of keys")
        if raw.get("preset", "fast") not in ("fast", "paper"):
            raise config.ConfigError(f"{path}: preset {raw['preset']!r}: expected fast or paper")
    name = preset or raw.get("preset", "fast")
    model = model_preset(name)
    data = config.from_dict(config.DataConfig, raw.get("data"), f"{path} data")
    shape = config.from_dict(
        TrainShapeConfig, {**config.to_dict(shape_preset(name)), **(raw.get("shape") or {})}, f"{path} shape"
    )
    pose = config.from_dict(
        TrainPoseConfig, {**config.to_dict(pose_preset(name)), **(raw.get("pose") or {})}, f"{path} pose"
    )
    return name, model, data, shape, pose


@dataclass
class _Distributed:
    rank: int = 0
    device: str | None = None  # this process's GPU under torchrun, else the config's device

    def barrier(self):
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()

    def close(self):
        """Wait for every process before leaving the group: a gloo process that leaves while
        another is still saving can abort the other at exit."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _init_distributed(device: str) -> _Distributed:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): nccl with one GPU per
    process (LOCAL_RANK) when the training device is CUDA, gloo on CPU. Each process trains on its
    rows of every batch."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return _Distributed()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        dist.init_process_group("nccl")
        return _Distributed(dist.get_rank(), f"cuda:{local}")
    dist.init_process_group("gloo")
    return _Distributed(dist.get_rank())


def cmd_train(args) -> None:
    from dataclasses import asdict, replace

    import torch

    from .data import dataset
    from .models import checkpoint
    from .train import train_pose, train_shape

    torch.set_num_threads(args.threads)
    if args.stage == "pose" and not layout.is_checkpoint(args.out):  # before building any data
        raise ValueError(
            f"--out {args.out}: no trained shape stage ({layout.checkpoint_stage_path(args.out, 'shape').name}); "
            f"run `npms train shape --out {args.out}` first"
        )
    name, model_cfg, data_cfg, shape_cfg, pose_cfg = load_train_config(args.config, args.preset)
    distributed = _init_distributed((shape_cfg if args.stage == "shape" else pose_cfg).device)
    root = Path(args.cache) if args.cache else None
    recorded = layout.read_checkpoint_config(args.out).get("dataset") if args.stage == "pose" else None
    data_path = args.data or (str(Path(args.out) / recorded) if recorded else None)  # pose: the shape stage's data
    if data_path:
        ds = dataset.open_dataset(data_path)
        data_sections = {"dataset": layout.relative_sequence_path(args.out, data_path), "import": ds.config}
    else:
        if not layout.is_dataset(layout.dataset_dir(data_cfg, root)) and distributed.rank == 0:
            print("building the training set first (npms data build)...")
            dataset.build(data_cfg, root)
        distributed.barrier()  # the other processes wait for rank 0's build
        ds = dataset.load(data_cfg, root)
        data_sections = {"data": data_cfg}
    train_ids = ds.split("train")
    sections = {
        "preset": name,
        **data_sections,
        "domain": asdict(ds.domain),
        "shape_training": shape_cfg,
        "pose_training": pose_cfg,
    }
    init = checkpoint.decoder_state(args.init_from, args.stage) if args.init_from else None
    if args.init_from:
        sections["init_from"] = str(args.init_from)
    progress, close_bar = _epoch_bar(f"{args.stage} epochs")
    if distributed.device:
        shape_cfg, pose_cfg = (replace(c, device=distributed.device) for c in (shape_cfg, pose_cfg))
    t = time.time()
    if args.stage == "shape":
        res = train_shape(
            ds.shape_samples(train_ids),
            shape_cfg,
            model_cfg,
            args.out,
            progress,
            code_labels=ds.shape_code_labels(),
            sections=sections,
            init_decoder=init,
        )
    else:
        m = checkpoint.load_model(args.out)
        res = train_pose(
            ds.flow_samples(),
            m.shape_decoder,
            m.shape_codes,
            pose_cfg,
            model_cfg,
            args.out,
            progress,
            code_labels=ds.pose_code_labels(),
            sections=sections,
            init_decoder=init,
        )
    close_bar()
    distributed.close()
    if distributed.rank != 0:
        return
    print(
        f"trained {args.stage} stage in {res.seconds / 60:.1f} min (this session {(time.time() - t) / 60:.1f} min) -> {args.out}"
    )


def cmd_tune_shape(args) -> None:
    import shutil
    from dataclasses import replace

    import torch

    from . import config
    from .models import checkpoint
    from .train import TrainShapeConfig, shape_preset, tune_shape

    torch.set_num_threads(args.threads)
    src, out = Path(args.checkpoint), Path(args.out)
    if src.resolve() == out.resolve():
        raise ValueError(f"--out {out}: must differ from --checkpoint (the source checkpoint is kept as it is)")
    m = checkpoint.load_model(src)
    data_cfg = config.from_dict(config.DataConfig, m.sections.get("data"), f"{src} data")
    ds = _dataset(args, data_cfg, m.sections)
    out.mkdir(parents=True, exist_ok=True)
    # the codes stay, so the pose stage holds and the maps give the same codes
    for path in (layout.checkpoint_stage_path(src, "pose"), layout.checkpoint_semantics_path(src)):
        if path.is_file() and not (out / path.name).exists():
            with atomic_path(out / path.name) as tmp:
                shutil.copyfile(path, tmp)
    meta_path = layout.checkpoint_meta_path(out)
    if not meta_path.exists():  # the pose stage's entry; the shape entry is rewritten at the end
        write_text_atomic(meta_path, layout.checkpoint_meta_path(src).read_text())
    cfg = TrainShapeConfig(**m.sections["train_shape"]) if "train_shape" in m.sections else shape_preset("fast")
    cfg = replace(cfg, epochs=args.epochs, lr_net=args.lr, lr_decay_every=args.decay_every)
    sizes = {"width": args.width, "depth": args.depth, "pe_freqs": args.pe_freqs}
    sections = {k: v for k, v in m.sections.items() if k != "train_shape"}
    if "dataset" in sections:  # recorded relative to the checkpoint
        sections["dataset"] = layout.relative_sequence_path(out, ds.path)
    sections["tuned_from"] = {"checkpoint": str(src), **{k: v for k, v in sizes.items() if v}}
    progress, close_bar = _epoch_bar("shape decoder epochs")
    res = tune_shape(
        m,
        ds.shape_samples(ds.split("train")),
        cfg,
        out,
        sizes,
        progress,
        code_labels=m.meta.get("shape", {}).get("codes"),
        sections=sections,
    )
    close_bar()
    before = m.meta.get("shape", {}).get("metrics", {}).get("sdf_l1_last_epoch")
    c = res.decoder.cfg
    print(
        f"shape decoder {c.depth}x{c.width}, PE {c.pe_freqs}: training SDF L1 "
        + (f"{before:.3g} -> " if before else "")
        + f"{res.history[-1]['sdf']:.3g} in {res.seconds / 60:.1f} min, codes and pose stage kept -> {out}"
    )
    if layout.checkpoint_semantics_path(out).is_file():
        print(
            f"the semantic maps were refined through the old decoder: `npms semantics --checkpoint {out}` refines them"
        )


def _epoch_bar(desc):
    """(callback for train.ProgressEvent, close): a bar over epochs with the first losses and pts/s."""
    bar = {}

    def progress(ev):
        if "bar" not in bar:
            bar["bar"] = _bar(desc, ev.total_epochs)
        b = bar["bar"]
        b.n = ev.epoch
        b.set_postfix(
            {k: f"{v:.3g}" for k, v in list(ev.losses.items())[:3]} | {"pts/s": f"{ev.samples_per_s:.3g}"}, refresh=True
        )

    return progress, lambda: bar["bar"].close() if "bar" in bar else None


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

    write_text_atomic(Path(path), json.dumps(data, indent=1))


def cmd_eval_model(args) -> None:
    import torch
    import yaml

    from . import config, evaluate
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    m = checkpoint.load_model(args.checkpoint)
    data_cfg = config.from_dict(config.DataConfig, m.sections.get("data"), f"{args.checkpoint} data")
    ds = _dataset(args, data_cfg, m.sections)
    out = {"checkpoint": str(args.checkpoint)}
    test_codes = {}
    splits = [("test", args.identities), ("train", args.identities)]
    if ds.split("tail"):  # the named extremes of the phenotype box (npm_core.bodies.tail_identities)
        splits.append(("tail", args.tail_identities))
    for split, n in splits:
        rows = evaluate.evaluate_shapes(
            m,
            ds,
            split,
            n,
            args.resolution,
            args.iou_points,
            progress=_progress_bar(f"{split} shapes"),
            codes_out=test_codes if split != "train" else None,
        )
        out[f"{split}_identities"] = {
            "count": len(rows),
            "iou": float(sum(r["iou"] for r in rows) / len(rows)),
            "chamfer_l2": float(sum(r["chamfer_l2"] for r in rows) / len(rows)),
            "per_identity": rows,
        }
        print(
            f"{split} identities: IoU {out[f'{split}_identities']['iou']:.4f}, "
            f"Chamfer-L2 {out[f'{split}_identities']['chamfer_l2']:.3e}",
            flush=True,
        )
        if args.json:  # a section at a time: a long run stopped later keeps what it measured
            _write_json(args.json, out)
    if m.pose_decoder is not None:
        out["held_out_poses"] = evaluate.evaluate_poses(
            m, ds, args.frames, progress=_progress_bar("held-out poses"), test_codes=test_codes
        )
    print(
        yaml.safe_dump(
            {
                k: ({kk: vv for kk, vv in v.items() if kk != "per_identity"} if isinstance(v, dict) else v)
                for k, v in out.items()
            },
            sort_keys=False,
        )
    )
    if args.json:
        _write_json(args.json, out)


def export_mesh(mesh, path) -> None:
    """Write a trimesh mesh atomically; the format follows the suffix."""
    with atomic_path(path) as tmp:
        mesh.export(tmp)


def cmd_extract(args) -> None:
    import torch
    import trimesh

    from . import domain, space
    from .mesh.extract import extract, pose_mesh
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    m = checkpoint.load_model(args.checkpoint)
    if not 0 <= args.shape < len(m.shape_codes):
        raise ValueError(f"--shape {args.shape} out of range [0, {len(m.shape_codes)})")
    if args.pose is not None:
        if m.pose_decoder is None:
            raise ValueError(f"{args.checkpoint}: no pose decoder (pose.pt) to apply --pose")
        if not 0 <= args.pose < len(m.pose_codes):
            raise ValueError(f"--pose {args.pose} out of range [0, {len(m.pose_codes)})")
    s = m.shape_codes[args.shape]
    t = time.time()
    with torch.inference_mode():
        res = extract(m.shape_decoder.sdf_fn(s), args.resolution)
    v = res.vertices
    msg = (
        f"extracted {len(v)} vertices, {len(res.faces)} faces at {args.resolution}^3 in {res.seconds * 1000:.0f} ms, "
        f"{res.n_evaluations} decoder evaluations ({100 * res.n_evaluations / (args.resolution + 1) ** 3:.1f}% of dense, {res.method})"
    )
    if args.pose is not None:
        t1 = time.time()
        with torch.inference_mode():
            v = pose_mesh(v, m.pose_decoder.displacement_fn(s, m.pose_codes[args.pose]))
        msg += f"; posed in {(time.time() - t1) * 1000:.0f} ms ({len(v)} decoder evaluations)"
    to_metres = (
        domain.info_from_dict(m.sections.get("domain")).model_to_metres
        if "domain" in m.sections
        else space.model_to_metres
    )
    export_mesh(trimesh.Trimesh(to_metres(v.numpy()), res.faces.numpy(), process=False), args.out)
    print(msg + f"; total {time.time() - t:.2f} s -> {args.out} (metres)")


def cmd_fit(args) -> None:
    import torch

    from . import fit
    from .data import depth
    from .models import checkpoint

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: this torch build sees no CUDA device (torch {torch.__version__})")
    frames = slice(0, args.frames) if args.frames else None
    seq = depth.read_sequence(args.sequence, frames)  # bad input fails before the model loads
    m = checkpoint.load_model(args.checkpoint, args.device)
    if m.pose_decoder is None:
        raise ValueError(f"{args.checkpoint}: no pose decoder (pose.pt); train the pose stage first")
    cfg = fit.SCHEDULES[args.schedule].config()
    for flag in ["no_temporal", "no_icp", "no_translation", "no_rotation", "no_segmentation"]:
        if getattr(args, flag):
            setattr(cfg, "use_" + flag[3:], False)
    if args.iterations:
        cfg.iterations = args.iterations
    cfg.device = args.device
    domain_cfg = fit.for_domain(cfg, m.domain)
    if cfg.use_rotation and not domain_cfg.use_rotation:
        print(f"{args.checkpoint}: domain '{m.domain.name}' declares no upright axis: fitting the translation only")
    cfg = domain_cfg
    bar = {}

    def progress(e):
        if "b" not in bar:
            bar["b"] = _bar(f"fit ({cfg.schedule})", e["total"])
        bar["b"].n = e.get("step", e.get("iteration"))
        bar["b"].set_postfix(stage=e["stage"], energy=f"{e['energy']:.4g}", refresh=True)

    with fit.earlier_log_kept(args.out):  # a failed run leaves an earlier result with its own log
        res = fit.fit(m, seq, cfg, progress, on_frame=fit.frame_log(args.out))
        if "b" in bar:
            bar["b"].close()
        fit.write_result(
            args.out,
            res,
            m,
            cfg,
            Path(args.checkpoint).name,
            args.sequence,
            args.resolution,
            _progress_bar("posed meshes"),
            compact=args.compact,
        )
    print(
        f"fitted {len(seq)} frames in {res.timings['init_s'] + res.timings['optimise_s']:.1f} s"
        f"{' (interrupted: kept the last completed result)' if res.interrupted else ''} -> {args.out}"
    )


def cmd_eval(args) -> None:
    from . import fit, metrics, space
    from .data import depth

    r = fit.read_result(args.fit)
    seq = depth.read_sequence(args.sequence)
    if seq.gt_vertices is None:
        raise ValueError(f"{args.sequence}: no gt/ meshes to evaluate against")
    _, posed, faces = r.meshes()
    if len(posed) > len(seq):
        raise ValueError(f"{args.fit} has {len(posed)} frames, {args.sequence} has only {len(seq)}")
    if len(posed) < len(seq):  # `npms fit --frames N` fits the first N frames
        print(f"the fit has {len(posed)} frames: scored against the first {len(posed)} of {len(seq)}")
        seq = depth.read_sequence(args.sequence, slice(0, len(posed)))
    out = metrics.evaluate_sequence(
        posed,
        faces,
        seq.gt_vertices,
        seq.gt_faces,
        args.iou_points,
        progress=_progress_bar("frames"),
        model_per_metre=r.meta.get("model_per_metre", space.METRES_TO_MODEL),
    )
    print("frame   IoU     C-L2 (x1e-5)")
    for t, (i, c) in enumerate(zip(out["iou"], out["chamfer_l2"])):
        print(f"{t:5d}  {i:.4f}  {c * 1e5:8.3f}")
    mm = out["mean"]
    print(
        f"mean   {mm['iou']:.4f}  {mm['chamfer_l2'] * 1e5:8.3f}   EPE {mm['epe']:.5f} model units = {mm['epe_cm']:.2f} cm"
    )
    if args.json:
        _write_json(args.json, out)


def cmd_semantics(args) -> None:
    import torch

    from . import semantics
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
    import numpy as np

    ph = [l.get("attributes") or l["phenotypes"] for l in m.meta["shape"]["codes"]]
    x = np.array([[p[k] for k in sem.names] for p in ph])
    r2 = sem.shape_to_phenotype.r2(m.shape_codes.numpy(), x)
    what = "phenotype" if sem.attribute_names is None else "attribute"
    print(f"shape code -> {what} R^2 (training codes): " + ", ".join(f"{k} {v:.3f}" for k, v in zip(sem.names, r2)))
    print("shape PCA explained variance: " + ", ".join(f"{v:.3f}" for v in sem.shape_pca.explained))
    if sem.pose_pca is not None:
        print("pose PCA explained variance: " + ", ".join(f"{v:.3f}" for v in sem.pose_pca.explained))
    print(f"-> {layout.checkpoint_semantics_path(args.checkpoint)}")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="npms",
        description="Neural Parametric Models of human bodies",
        epilog="Bad input ends in one line 'npms: error: ...' and exit status 2. Output files are written "
        "atomically (temp + rename) and missing folders on their path are created.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    threads_help = f"CPU threads, 1..{MAX_THREADS} (default 2)"
    made = "; missing folders on the way are created"
    res_help = f"marching-cubes cells per axis, 8..{MAX_RESOLUTION}"

    data = sub.add_parser("data", help="build training data, write depth sequences").add_subparsers(
        dest="what", required=True
    )
    b = data.add_parser("build", help="build the training set into the cache (no-op if built)")
    _path_arg(b, "--config", existing_file, help="data config YAML (default: built-in defaults = configs/body.yaml)")
    _path_arg(b, "--cache", folder_out, help="cache root (default: $NPM_CACHE_DIR or ~/.cache/npm_explorer)")
    b.add_argument("--workers", type=int_in(1, 256), default=2, help="worker processes, 1..256 (default 2)")
    b.set_defaults(fn=cmd_data_build)
    s = data.add_parser("sequence", help="render a depth sequence (+ gt meshes) of an identity doing a motion")
    s.add_argument("--identity", required=True, help="identity id, e.g. s0-00003")
    s.add_argument("--motion", required=True, help="e.g. walk, kick, wave")
    _path_arg(s, "--out", dir_out(), required=True, help="new or empty folder to write" + made)
    _path_arg(
        s,
        "--config",
        existing_file,
        help="data config YAML, or a training config YAML, that defines the identities (e.g. tail-* ids)",
    )
    _path_arg(
        s,
        "--data",
        existing_dir,
        help="an imported dataset: render its frames of --identity labelled --motion (a sequence of the mesh folder)",
    )
    s.add_argument("--width", type=int_in(8, MAX_IMAGE_SIDE), default=320, help=f"pixels, 8..{MAX_IMAGE_SIDE}")
    s.add_argument("--height", type=int_in(8, MAX_IMAGE_SIDE), default=240, help=f"pixels, 8..{MAX_IMAGE_SIDE}")
    s.add_argument(
        "--distance",
        type=float_in(0, 60, above=True, note=" (16-bit depth PNGs hold up to 65.5 m)"),
        default=2.8,
        help="camera distance from the subject, metres, up to 60 (default 2.8)",
    )
    s.add_argument(
        "--frames",
        type=int_in(1, MAX_SEQUENCE_FRAMES),
        default=None,
        help=f"1..{MAX_SEQUENCE_FRAMES} (default: the motion's length; more frames repeat it)",
    )
    s.add_argument("--compact", action="store_true", help="gt meshes as one gt/meshes.npz (float16) instead of PLYs")
    s.set_defaults(fn=cmd_data_sequence)
    im = data.add_parser("import-depth", help="a folder of 16-bit depth PNGs or .npy frames -> a depth sequence")
    im.add_argument("src", help="folder of depth frames (file-name order)")
    im.add_argument("--out", required=True, help="sequence directory to write (must not exist or be empty)" + made)
    for k in ["fx", "fy"]:
        im.add_argument(f"--{k}", type=float_in(0, above=True), required=True, help="focal length, pixels")
    for k in ["cx", "cy"]:
        im.add_argument(f"--{k}", type=float_in(0), required=True, help="principal point, pixels")
    im.add_argument(
        "--depth-scale", type=float_in(0, above=True), default=1000.0, help="raw units per metre (PNG, integer .npy)"
    )
    im.add_argument("--masks", help="folder of mask PNGs named like the frames, nonzero = subject")
    im.add_argument("--box", type=float, nargs=4, metavar=("X0", "Y0", "X1", "Y1"), help="the subject's pixel box")
    im.add_argument(
        "--up",
        type=up_vector,
        default="auto",
        help="auto (the floor's normal, else the camera's -y) or x,y,z in the camera frame",
    )
    im.add_argument("--fps", type=float_in(0, above=True), default=30.0)
    im.set_defaults(fn=cmd_data_import_depth)
    di = data.add_parser("import", help="a folder of registered meshes of one topology -> a dataset to train on")
    di.add_argument(
        "src",
        help="mesh folder: domain.yaml, <identity>/canonical.ply, <identity>/poses/*.ply, "
        "optional attributes.yaml, sequences.yaml, split.yaml",
    )
    _path_arg(
        di,
        "--out",
        dir_out("dataset", layout.is_dataset),
        required=True,
        help="dataset folder to write (new, empty, or an earlier dataset, replaced when complete)" + made,
    )
    _path_arg(di, "--config", existing_file, help="import config YAML (sdf, flow, margin, test_fraction, split_seed)")
    di.add_argument("--workers", type=int_in(1, 256), default=2, help="worker processes, 1..256 (default 2)")
    di.set_defaults(fn=cmd_data_import)
    dh = data.add_parser("hands", help="write the hands mesh folder (Anny's right hand, gestures) for `data import`")
    _path_arg(dh, "--out", dir_out(), required=True, help="mesh folder to write (new or empty)" + made)
    dh.add_argument("--identities", type=int_in(2, 10_000), default=96, help="hands (default 96)")
    dh.add_argument("--random-poses", type=int_in(0, 1000), default=16, help="random poses per hand (default 16)")
    dh.add_argument("--seed", type=int, default=0)
    dh.set_defaults(fn=cmd_data_hands)
    t = sub.add_parser("train", help="train the shape or pose stage (resumes if interrupted)")
    t.add_argument("stage", choices=["shape", "pose"])
    _path_arg(
        t,
        "--out",
        dir_out("checkpoint", _is_checkpoint_in_progress),
        required=True,
        help="checkpoint directory, e.g. checkpoints/my-model (new, empty, or a checkpoint to resume)" + made,
    )
    _path_arg(
        t, "--config", existing_file, help="YAML with sections preset/data/shape/pose (e.g. configs/train_fast.yaml)"
    )
    t.add_argument("--preset", choices=["fast", "paper"], help="overrides the config's preset")
    _path_arg(t, "--cache", folder_out, help="data cache root")
    _path_arg(
        t, "--data", existing_dir, help="an imported dataset (`npms data import`) instead of the config's Anny data"
    )
    _path_arg(
        t,
        "--init-from",
        existing_dir,
        help="a checkpoint of the same sizes whose decoder this stage starts from (codes start afresh)",
    )
    t.add_argument("--threads", type=threads, default=2, help=threads_help)
    t.set_defaults(fn=cmd_train)
    ts = sub.add_parser(
        "tune-shape",
        help="train a checkpoint's shape decoder further, optionally grown, with its shape codes kept "
        "(so its pose stage stays valid; then `npms semantics` refines the copied maps); resumes if interrupted",
    )
    _path_arg(ts, "--checkpoint", checkpoint_dir, required=True, help="the trained checkpoint (kept as it is)")
    _path_arg(
        ts,
        "--out",
        dir_out("checkpoint", _is_checkpoint_in_progress),
        required=True,
        help="the new checkpoint (new, empty, or one to resume)" + made,
    )
    ts.add_argument("--epochs", type=positive_int, default=20, help="epochs (default 20)")
    ts.add_argument("--lr", type=float_in(0, above=True), default=5e-4, help="decoder rate (default 5e-4)")
    ts.add_argument("--decay-every", type=positive_int, default=8, help="halve the rate every N epochs (default 8)")
    ts.add_argument("--width", type=positive_int, help="grow to this many hidden units")
    ts.add_argument("--depth", type=positive_int, help="grow to this many hidden layers")
    ts.add_argument("--pe-freqs", type=positive_int, help="grow to this many PE frequencies")
    _path_arg(ts, "--cache", folder_out, help="data cache root")
    ts.add_argument("--threads", type=threads, default=2, help=threads_help)
    ts.set_defaults(fn=cmd_tune_shape)
    e = sub.add_parser("eval-model", help="held-out identities (IoU, Chamfer-L2) and poses (vertex error)")
    _path_arg(
        e,
        "--checkpoint",
        checkpoint_dir,
        required=True,
        help="checkpoint folder (config.yaml, shape.pt and, to pose, pose.pt), as `npms train` writes",
    )
    e.add_argument("--identities", type=positive_int, default=16, help="identities per split (default 16)")
    e.add_argument(
        "--tail-identities",
        type=positive_int,
        default=24,
        help="tail identities (the phenotype extremes, spread over the list), where the dataset has them (default 24: all)",
    )
    e.add_argument("--frames", type=positive_int, default=200, help="held-out frames per pose group (default 200)")
    e.add_argument("--resolution", type=resolution, default=256, help=res_help + " (default 256)")
    e.add_argument(
        "--iou-points",
        type=int_in(1000, MAX_IOU_POINTS),
        default=1_000_000,
        help=f"IoU sample points, 1000..{MAX_IOU_POINTS:,} (default 1,000,000)",
    )
    _path_arg(e, "--cache", existing_dir, help="data cache root")
    _path_arg(e, "--data", existing_dir, help="the dataset to evaluate on (default: the one the checkpoint records)")
    _path_arg(e, "--json", file_out, help="write all numbers here (JSON)" + made)
    e.add_argument("--threads", type=threads, default=2, help=threads_help)
    e.set_defaults(fn=cmd_eval_model)
    x = sub.add_parser("extract", help=f"mesh of a training shape code (optionally posed) to {'/'.join(MESH_SUFFIXES)}")
    _path_arg(
        x,
        "--checkpoint",
        checkpoint_dir,
        required=True,
        help="checkpoint folder (config.yaml, shape.pt and, to pose, pose.pt), as `npms train` writes",
    )
    x.add_argument("--shape", type=index, required=True, help="index of a training shape code")
    x.add_argument("--pose", type=index, help="index of a training pose code")
    x.add_argument("--resolution", type=resolution, default=256, help=res_help + " (default 256)")
    _path_arg(
        x,
        "--out",
        file_out,
        type=mesh_path,
        required=True,
        help=f"mesh file, metres; format by suffix: {' '.join(MESH_SUFFIXES)}" + made,
    )
    x.add_argument("--threads", type=threads, default=2, help=threads_help)
    x.set_defaults(fn=cmd_extract)
    f = sub.add_parser("fit", help="fit shape + per-frame pose codes to a depth sequence")
    _path_arg(
        f,
        "--checkpoint",
        checkpoint_dir,
        required=True,
        help="checkpoint folder (config.yaml, shape.pt and, to pose, pose.pt), as `npms train` writes",
    )
    _path_arg(f, "--sequence", sequence_dir, required=True, help="depth-sequence folder (camera.json, depth/)")
    _path_arg(
        f,
        "--out",
        dir_out("fit result", layout.is_fit),
        required=True,
        help="new or empty folder, or an earlier fit result (replaced when the new one is complete)" + made,
    )
    f.add_argument("--schedule", choices=["fast", "paper"], default="fast")
    f.add_argument("--frames", type=positive_int, help="only the first N frames")
    f.add_argument("--iterations", type=positive_int, help="paper schedule: override the iteration count")
    f.add_argument("--resolution", type=resolution, help=res_help + " of the output meshes (default: the schedule's)")
    f.add_argument("--compact", action="store_true", help="posed meshes as one meshes.npz (float16) instead of PLYs")
    f.add_argument("--no-temporal", action="store_true")
    f.add_argument("--no-icp", action="store_true")
    f.add_argument("--no-translation", action="store_true")
    f.add_argument(
        "--no-rotation",
        action="store_true",
        help="no per-frame body rotation (translation only, as the reference; the default for domains "
        "whose capture_rotation is none, as imported mesh folders unless their domain.yaml says yaw)",
    )
    f.add_argument(
        "--no-segmentation",
        action="store_true",
        help="use every depth pixel as the subject, and no centring (default: floor, background and other objects removed)",
    )
    f.add_argument("--threads", type=threads, default=2, help=threads_help)
    f.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="where the decoders run (cpu, cuda, cuda:N); depth queries stay on the CPU",
    )
    f.set_defaults(fn=cmd_fit)
    v = sub.add_parser("eval", help="IoU, Chamfer-L2, EPE of a fit against the sequence's gt meshes")
    _path_arg(v, "--fit", fit_dir, required=True, help="fit-result folder, as `npms fit` writes")
    _path_arg(v, "--sequence", sequence_dir, required=True, help="the fitted depth sequence, with gt/ meshes")
    v.add_argument(
        "--iou-points",
        type=int_in(1000, MAX_IOU_POINTS),
        default=1_000_000,
        help=f"IoU sample points per frame, 1000..{MAX_IOU_POINTS:,} (default 1,000,000)",
    )
    _path_arg(v, "--json", file_out, help="write all numbers here (JSON)" + made)
    v.set_defaults(fn=cmd_eval)
    se = sub.add_parser("semantics", help="phenotype/joint-angle maps and PCA of a checkpoint's codes")
    _path_arg(
        se,
        "--checkpoint",
        checkpoint_dir,
        required=True,
        help="checkpoint folder (config.yaml, shape.pt and, to pose, pose.pt), as `npms train` writes",
    )
    se.add_argument(
        "--ridge", type=float_in(0), default=1e-2, help="ridge penalty of the linear maps, >= 0 (default 0.01)"
    )
    se.add_argument("--shape-map", choices=["linear", "mlp"], default="mlp", help="phenotypes -> shape code")
    se.add_argument("--pose-map", choices=["linear", "mlp"], default="mlp", help="joint angles -> pose code")
    se.add_argument(
        "--no-refine",
        action="store_true",
        help="skip training the MLP maps through the frozen decoders on fresh bodies (the slow part: ~25 min on 2 cores)",
    )
    se.add_argument("--threads", type=threads, default=2, help=threads_help)
    se.set_defaults(fn=cmd_semantics)
    return p


def main(argv=None) -> int:
    """Run `npms` with argv (default sys.argv[1:]); returns the exit status (0, 2 on bad input, 130 on Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
        check_paths(args)
        args.fn(args)
    except (ValueError, OSError, MemoryError) as e:  # UsageError, ConfigError, SequenceError, CheckpointError, ...
        print(f"npms: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("npms: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
