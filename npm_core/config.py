"""Typed configs (dataclasses) <-> YAML.

Why: every dataset, checkpoint and fit result carries the full config that made it, so a
result can be reproduced from itself. Loading is strict: an unknown key, a wrong type or a
missing file is an error that names the key (as a dotted path) and the expected form.
Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .atomic import write_text_atomic


class ConfigError(ValueError):
    """A config file or value that does not have the expected form."""


T = TypeVar("T")


# ---------------------------------------------------------------------------- data


@dataclass
class IdentityConfig:
    """Which bodies: how many identities, their age range and the train/test split."""

    count: int = 320
    test_fraction: float = 0.2
    min_age_years: float = 13.0
    max_age_years: float = 85.0
    seed: int = 0
    box_fraction: float = 0.0  # share drawn uniformly over the whole phenotype box, not the population
    tails: bool = False  # add the named tail test identities (bodies.tail_identities; never trained on)
    box_heights_m: list[float] = field(default_factory=lambda: [1.35, 2.05])  # standing heights of box draws


@dataclass
class PoseConfig:
    """Random poses of training identities (on top of the training motions)."""

    random_frames: int = 3000
    motion_stride: int = 3  # every k-th frame of each training motion, per identity
    motion_identities: int = 24  # training identities that perform the training motions
    seed: int = 1
    spread: float = 0.65  # random poses: 1 draws over each joint's whole range, less pulls towards neutral


@dataclass
class SdfConfig:
    """SDF samples per canonical mesh (NPMs/GAPS style)."""

    samples: int = 200_000
    near_fraction: float = 0.7
    near_max_offset: float = 0.05  # model units
    seed: int = 2


@dataclass
class FlowConfig:
    """Flow samples: fixed barycentric points + offsets along the normal, per identity."""

    samples_per_sigma: int = 50_000
    sigmas: list[float] = field(default_factory=lambda: [0.002, 0.01])
    seed: int = 3


@dataclass
class DataConfig:
    identities: IdentityConfig = field(default_factory=IdentityConfig)
    poses: PoseConfig = field(default_factory=PoseConfig)
    sdf: SdfConfig = field(default_factory=SdfConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    train_motions: list[str] = field(default_factory=lambda: ["walk", "squat", "arm_raise", "torso_twist"])
    test_motions: list[str] = field(default_factory=lambda: ["jumping_jack", "kick", "wave"])
    surface: str = "full"  # bodies.SURFACES: "outer" closes the lips and drops eyeballs and teeth


# ----------------------------------------------------------------------------- I/O


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert one YAML value against a (possibly generic) type annotation."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        return [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {args}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected one of {typing.get_args(tp)}, got {value!r}")
        return value
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if isinstance(value, bool) and tp is not bool:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        if not isinstance(value, tp):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {_type_name(tp)}")


def _from_dict(cls: type[T], data: dict, where: str = "") -> T:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where or cls.__name__}: unknown key(s) {unknown}; expected some of {sorted(names)}")
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        kwargs[key] = _convert(value, hints[key], path)
    return cls(**kwargs)


def from_dict(cls: type[T], data: dict | None, source: str = "") -> T:
    """Build config `cls` from a plain dict; errors name `source` and the dotted key."""
    try:
        return _from_dict(cls, data or {})
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}" if source else str(e)) from None


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def load(cls: type[T], path: str | os.PathLike) -> T:
    """Load config `cls` from a YAML file (missing keys take their defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return from_dict(cls, data, str(path))


def save(cfg: Any, path: str | os.PathLike) -> None:
    write_text_atomic(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))


def config_hash(cfg: Any) -> str:
    """Stable short hash of a config: keys the data cache, so two configs never mix."""
    blob = json.dumps(to_dict(cfg), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
