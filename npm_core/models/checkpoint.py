"""Checkpoint I/O: decoders, codes and training state in a checkpoint directory.

The file names and the metadata readers that need no torch are in layout.py; this module reads
and writes the torch files (shape.pt, pose.pt, train_<stage>.state.pt) and builds decoders.
Every file is written atomically (temp file in the same directory + os.replace), so a killed
process leaves the previous version intact. Tensors are read with torch.load(weights_only=True).
A missing directory/file, a truncated file or a state dict that does not fit the config raises
CheckpointError naming the file and what was expected.

Must not: train, or name files (layout.py does).
"""

from __future__ import annotations

import dataclasses
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from .. import layout
from ..atomic import atomic_path, write_text_atomic
from ..config import ConfigError, from_dict, to_dict
from ..domain import DomainInfo, info_from_dict
from ..layout import CheckpointError
from .decoders import ModelConfig, PoseDecoder, ShapeDecoder

FORMAT = 1
STAGES = layout.STAGES

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "load_codes",
    "load_model",
    "load_model_config",
    "load_shape_fn",
    "load_train_state",
    "save_config",
    "save_stage",
    "save_train_state",
    "torch_load",
    "torch_save_atomic",
]


# --------------------------------------------------------------------- low level


def torch_save_atomic(obj: Any, path: Path) -> None:
    """torch.save through a temp file and fsync, so a killed run keeps the previous file."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def torch_load(path: Path, what: str) -> dict:
    """torch.load(weights_only=True) with errors that name the file and `what` it should hold."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found (expected {what})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, ...
        raise CheckpointError(
            f"{path}: cannot be read as a torch file holding {what} "
            f"(truncated or corrupted? {type(e).__name__}: {(str(e).splitlines() or ['(no message)'])[0][:200]})"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict holding {what}, got {type(obj).__name__}")
    return obj


def versions() -> dict:
    import numpy

    try:
        from importlib.metadata import version

        ours = version("npm-explorer")
    except Exception:
        ours = "unknown"
    return {
        "npm_explorer": ours,
        "torch": str(torch.__version__),
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------- writing


def save_config(d, model_cfg: ModelConfig, sections: dict[str, Any] | None = None) -> None:
    """config.yaml: the model config plus named sections (training configs, data config)."""
    path = layout.checkpoint_config_path(d)
    old = yaml.safe_load(path.read_text()) if path.is_file() else {}
    data = {**(old or {}), "model": to_dict(model_cfg)}
    for k, v in (sections or {}).items():
        data[k] = to_dict(v) if dataclasses.is_dataclass(v) else v
    write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))


def save_stage(
    d,
    stage: str,
    decoder: torch.nn.Module,
    codes: torch.Tensor,
    model_cfg: ModelConfig,
    sections: dict[str, Any] | None = None,
    code_labels: list[dict] | None = None,
    metrics: dict | None = None,
    training_s: float | None = None,
    extra_meta: dict | None = None,
) -> Path:
    """Write <d>/<stage>.pt (decoder state dict + codes [K, D]), update config.yaml and meta.yaml.

    code_labels: one dict per code row (shape: identity id + phenotypes; pose: motion, frame,
    shape_index), stored in meta.yaml."""
    d = Path(d)
    if code_labels is not None and len(code_labels) != len(codes):
        raise ValueError(f"{len(code_labels)} code labels for {len(codes)} {stage} codes")
    state = {k: v.detach().cpu() for k, v in decoder.state_dict().items()}
    torch_save_atomic(
        {"format": FORMAT, "stage": stage, "decoder": state, "codes": codes.detach().cpu().clone()},
        layout.checkpoint_stage_path(d, stage),
    )
    save_config(d, model_cfg, sections)
    meta = (
        yaml.safe_load(layout.checkpoint_meta_path(d).read_text()) if layout.checkpoint_meta_path(d).is_file() else {}
    )
    meta = meta or {}
    entry = {"num_codes": int(len(codes)), "code_dim": int(codes.shape[1])}
    if code_labels is not None:
        entry["codes"] = code_labels
    if metrics is not None:
        entry["metrics"] = metrics
    if training_s is not None:
        entry["training_s"] = round(float(training_s), 1)
    entry.update(extra_meta or {})
    meta[stage] = entry
    meta["versions"] = versions()
    write_text_atomic(layout.checkpoint_meta_path(d), yaml.safe_dump(meta, sort_keys=False))
    return layout.checkpoint_stage_path(d, stage)


def save_train_state(d, stage: str, state: dict) -> None:
    torch_save_atomic({"format": FORMAT, "stage": stage, **state}, layout.checkpoint_train_state_path(d, stage))


def load_train_state(d, stage: str) -> dict | None:
    """The resumable training state of `stage`, or None when there is none."""
    path = layout.checkpoint_train_state_path(d, stage)
    if not path.exists():
        return None
    state = torch_load(path, f"the {stage} training state (delete it to start this stage over)")
    if state.get("stage") != stage or "epoch" not in state:
        raise CheckpointError(f"{path}: not a {stage} training state (keys {sorted(state)})")
    return state


# --------------------------------------------------------------------- reading


@dataclass
class LoadedModel:
    """A trained NPM: decoders in eval mode, codes, and what made them."""

    config: ModelConfig
    shape_decoder: ShapeDecoder
    shape_codes: torch.Tensor  # [I, Ds]
    pose_decoder: PoseDecoder | None = None  # None if pose.pt is absent
    pose_codes: torch.Tensor | None = None  # [T, Dp]
    meta: dict = field(default_factory=dict)
    sections: dict = field(default_factory=dict)  # config.yaml sections other than "model"
    path: Path | None = None

    @property
    def domain(self) -> DomainInfo:
        """What the model's shapes are (Anny bodies unless the config records an imported domain)."""
        return info_from_dict(self.sections.get("domain"))


def load_model_config(d) -> tuple[ModelConfig, dict]:
    """(ModelConfig, the other config.yaml sections) of checkpoint d."""
    data = layout.read_checkpoint_config(d)
    try:
        cfg = from_dict(ModelConfig, data["model"], f"{layout.checkpoint_config_path(d)} model")
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    return cfg, {k: v for k, v in data.items() if k != "model"}


def _read_stage(d, stage: str, code_dim: int) -> tuple[dict, torch.Tensor]:
    """(the stage file's dict, its codes [K, code_dim] float) with the keys and code size checked."""
    path = layout.checkpoint_stage_path(d, stage)
    obj = torch_load(path, f"the {stage} decoder state dict and codes")
    if obj.get("stage") != stage or "decoder" not in obj or "codes" not in obj:
        raise CheckpointError(f"{path}: expected keys stage='{stage}', decoder, codes; got {sorted(obj)}")
    codes = obj["codes"]
    if not isinstance(codes, torch.Tensor) or codes.ndim != 2 or codes.shape[1] != code_dim:
        raise CheckpointError(
            f"{path}: expected {stage} codes [K, {code_dim}], got "
            f"{tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__}"
        )
    return obj, codes.float()


def _load_stage(d, stage: str, decoder: torch.nn.Module, cfg_text: str) -> torch.Tensor:
    obj, codes = _read_stage(d, stage, decoder.cfg.code_dim)
    try:
        decoder.load_state_dict(obj["decoder"], strict=True)
    except RuntimeError as e:
        first = " ".join(str(e).split())[:400]
        raise CheckpointError(
            f"{layout.checkpoint_stage_path(d, stage)}: {stage} decoder weights do not match "
            f"config.yaml ({cfg_text}): {first}"
        ) from None
    return codes


def load_codes(d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(shape codes [I, Ds], pose codes [T, Dp] or None without a pose stage) of checkpoint d, on the
    CPU, without building decoders (a UI process that only mixes codes)."""
    cfg, _ = load_model_config(d)
    _, shape = _read_stage(d, "shape", cfg.shape.code_dim)
    pose = _read_stage(d, "pose", cfg.pose.code_dim)[1] if layout.checkpoint_stage_path(d, "pose").exists() else None
    return shape, pose


def decoder_state(d, stage: str) -> dict:
    """The `stage` decoder's state dict of checkpoint d (to start another training from)."""
    cfg, _ = load_model_config(d)
    if not layout.checkpoint_stage_path(d, stage).exists():
        raise CheckpointError(f"{layout.checkpoint_stage_path(d, stage)}: no trained {stage} stage to start from")
    return _read_stage(d, stage, getattr(cfg, stage).code_dim)[0]["decoder"]


def load_model(d, device: str | torch.device = "cpu", meta: bool = True) -> LoadedModel:
    """Load checkpoints/<name>/: config, shape decoder + codes, pose decoder + codes if present, meta
    (meta=False: an empty dict, for callers that only decode; meta.yaml takes seconds to parse)."""
    d = Path(d)
    cfg, sections = load_model_config(d)
    meta = layout.read_checkpoint_meta(d) if meta else {}
    shape = ShapeDecoder(cfg.shape)
    shape_codes = _load_stage(d, "shape", shape, f"shape {cfg.shape}")
    pose = pose_codes = None
    if layout.checkpoint_stage_path(d, "pose").exists():
        pose = PoseDecoder(cfg.pose, cfg.shape.code_dim)
        pose_codes = _load_stage(d, "pose", pose, f"pose {cfg.pose}").to(device)
        pose = pose.to(device).eval()
    return LoadedModel(cfg, shape.to(device).eval(), shape_codes.to(device), pose, pose_codes, meta, sections, d)


def load_shape_fn(d, index: int = 0, device: str | torch.device = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """points [N, 3] canonical -> SDF [N] of training shape `index` (for mesh extraction)."""
    m = load_model(d, device)
    if not 0 <= index < len(m.shape_codes):
        raise CheckpointError(
            f"{layout.checkpoint_stage_path(d, 'shape')}: shape index {index} out of range [0, {len(m.shape_codes)})"
        )
    return m.shape_decoder.sdf_fn(m.shape_codes[index])
