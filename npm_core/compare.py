"""Per-vertex comparison of a predicted mesh sequence with the true one: the explorer's error
colours and its per-frame mean-error curve. Metres in, metres out.

The distance is to the nearest true *vertex* (a k-d tree query; dense meshes make it close to the
point-to-surface distance and it is cheap enough to run on every frame at load).
Must not: define the benchmark metrics (IoU, Chamfer-L2, EPE live in metrics.py).
"""

from __future__ import annotations

import numpy as np


def vertex_error(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[V] distance from each predicted vertex pred [V, 3] to the nearest vertex of truth [Vt, 3]."""
    from scipy.spatial import cKDTree

    return cKDTree(np.asarray(truth)).query(np.asarray(pred), workers=-1)[0].astype(np.float32)


def vertex_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """[T, V] vertex_error of every frame: pred [T, V, 3], truth [T', Vt, 3]; frames past the
    truth's last (T > T') stay 0."""
    out = np.zeros(np.shape(pred)[:2], np.float32)
    for t in range(min(len(pred), len(truth))):
        out[t] = vertex_error(pred[t], truth[t])
    return out


def colour_range(errors: np.ndarray | None, percentile: float = 98.0, default: float = 0.05) -> float:
    """Upper end of an error colour map: the given percentile of all errors (a few outliers do not
    wash out the rest), `default` without errors."""
    if errors is None or np.size(errors) == 0:
        return default
    return float(np.percentile(errors, percentile))
