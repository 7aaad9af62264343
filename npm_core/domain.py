"""What a domain (a family of shapes sharing one mesh topology) is to the rest of npm_core: its
name, the similarity transform between the user's units and model units, and the names of its
identity attributes and joint angles. Anny bodies (bodies.py) and imported mesh folders
(data/meshes.py) are both domains; training, evaluation and extraction read this, never bodies.py.

A domain source hands the dataset builder (data/dataset.py) what it needs (DomainSource).
Recorded as domain.yaml in a dataset and as the `domain` section of a checkpoint's config.yaml.
Must not: import torch or bodies.py, or read mesh files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import space

CAPTURE_ROTATIONS = ("yaw", "none")


@dataclass
class DomainInfo:
    """Model units from the user's files: model = model_per_metre * (rotation @ (u * metres_per_unit) - centre_m).

    Anny bodies: metres, y up, model_per_metre = space.METRES_TO_MODEL, no centring."""

    name: str = "anny-bodies"
    source: str = "anny"  # "anny" or "meshes"
    metres_per_unit: float = 1.0  # the user's file units, in metres
    rotation: list = field(default_factory=lambda: np.eye(3).tolist())  # [3, 3] user axes -> canonical (y up)
    centre_m: list = field(default_factory=lambda: [0.0, 0.0, 0.0])  # metres, canonical axes
    model_per_metre: float = space.METRES_TO_MODEL
    attributes: list = field(default_factory=list)  # per-identity numbers (Anny: phenotypes)
    joints: list = field(default_factory=list)  # joint-angle names of posed frames ([] when frames have none)
    # how captures may turn the subject: "yaw" (it stands upright along +y and may face any way:
    # the fit searches the yaw round the circle, with bounded tilts) or "none" (captures show it
    # in its canonical orientation: the fit estimates the translation only)
    capture_rotation: str = "yaw"

    def model_to_metres(self, points: np.ndarray) -> np.ndarray:
        """Model-unit points [..., 3] -> metres, canonical axes, centre restored."""
        return np.asarray(points) / self.model_per_metre + np.asarray(self.centre_m, dtype=np.asarray(points).dtype)

    def length_to_metres(self, length):
        """A model-unit length (array or tensor) in metres."""
        return length / self.model_per_metre

    def user_to_model(self, points: np.ndarray) -> np.ndarray:
        """Points [..., 3] in the user's file units and axes -> model units."""
        m = np.asarray(points, np.float64) * self.metres_per_unit @ np.asarray(self.rotation).T
        return (self.model_per_metre * (m - np.asarray(self.centre_m))).astype(np.float32)

    def model_to_user(self, points: np.ndarray) -> np.ndarray:
        """Model-unit points [..., 3] -> the user's file units and axes (inverse of user_to_model)."""
        m = np.asarray(points, np.float64) / self.model_per_metre + np.asarray(self.centre_m)
        return (m @ np.asarray(self.rotation) / self.metres_per_unit).astype(np.float32)


def info_from_dict(data: dict | None) -> DomainInfo:
    """DomainInfo from domain.yaml / a checkpoint's `domain` section; Anny bodies when absent."""
    if not data:
        return DomainInfo()
    known = set(DomainInfo.__dataclass_fields__)
    info = DomainInfo(**{k: v for k, v in data.items() if k in known})
    if "capture_rotation" not in data and info.source != "anny":
        info.capture_rotation = "none"  # recorded before the field existed: no upright axis was declared
    if info.capture_rotation not in CAPTURE_ROTATIONS:
        raise ValueError(
            f"domain capture_rotation {info.capture_rotation!r}: expected one of {list(CAPTURE_ROTATIONS)}"
        )
    return info


class DomainSource(Protocol):
    """What the dataset builder needs from a domain. Identity indices refer to `identities`.

    identities: [{"id", "split": "train"|"test", ...labels}] - labels go to meta.yaml as they are
    frames, test_frames: [{"identity": index, "motion": name, "frame": int | None, ...labels}]
    """

    info: DomainInfo
    identities: list[dict]
    frames: list[dict]
    test_frames: list[dict]

    def faces(self) -> np.ndarray:
        """[F, 3] int, shared by every mesh of the domain."""

    def canonical(self) -> np.ndarray:
        """[I, V, 3] float32 rest meshes of every identity, model units."""

    def posed(self, frames: list[dict]) -> np.ndarray:
        """[len(frames), V, 3] float32 posed vertices of the frames, model units."""
