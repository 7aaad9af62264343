"""Mesh extraction: torch marching cubes (any device) and narrow-band extraction from SDF decoders
(equal to dense extraction for an L-Lipschitz field).

Never imports the viewer; decoders arrive as plain callables points [N, 3] -> SDF [N].
"""

from npm_core.mesh.extract import DEFAULT_LIPSCHITZ, ExtractResult, extract, extract_dense, pose_mesh
from npm_core.mesh.marching_cubes import marching_cubes_dense, marching_cubes_sparse

__all__ = [
    "DEFAULT_LIPSCHITZ",
    "ExtractResult",
    "extract",
    "extract_dense",
    "marching_cubes_dense",
    "marching_cubes_sparse",
    "pose_mesh",
]
