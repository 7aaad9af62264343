"""NPM networks (ShapeDecoder, PoseDecoder, their configs) and checkpoint I/O."""

from .checkpoint import (
    CheckpointError,
    LoadedModel,
    load_model,
    load_shape_fn,
    save_stage,
)
from .decoders import (
    DecoderConfig,
    ModelConfig,
    PoseDecoder,
    ShapeDecoder,
    build_decoders,
    model_preset,
    positional_encoding,
)

__all__ = [
    "CheckpointError",
    "LoadedModel",
    "load_model",
    "load_shape_fn",
    "save_stage",
    "DecoderConfig",
    "ModelConfig",
    "PoseDecoder",
    "ShapeDecoder",
    "build_decoders",
    "model_preset",
    "positional_encoding",
]
