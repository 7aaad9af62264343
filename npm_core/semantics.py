"""Semantic handles over the learned spaces: phenotypes <-> shape code, joint angles -> pose code,
and principal directions of both code sets.

NPM codes have no meaning of their own; every training code, though, comes with what made it
(the identity's phenotypes, the frame's joint angles, in meta.yaml). Ridge regression on those
pairs gives a slider per phenotype / joint that moves a code along the learned space. Stored
beside the checkpoint (semantics.npz), computed by `npms semantics`. No decoder math here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import bodies


@dataclass
class LinearMap:
    """y = ((x - mean) / scale) @ weight + bias, fitted by ridge regression."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> "LinearMap":
        mean, std = x.mean(0), x.std(0)
        scale = np.where(std > 1e-8, std, 1.0)  # a constant input column gets weight 0, not 1e8
        xs = (x - mean) / scale
        bias = y.mean(0)
        w = np.linalg.solve(xs.T @ xs + ridge * len(x) * np.eye(x.shape[1]), xs.T @ (y - bias))
        return LinearMap(mean, scale, w, bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x) - self.mean) / self.scale) @ self.weight + self.bias

    def shift(self, delta: np.ndarray) -> np.ndarray:
        """map(x + delta) - map(x), the same for every x: how far a slider moves a code."""
        return (np.asarray(delta) / self.scale) @ self.weight

    def r2(self, x, y) -> np.ndarray:
        """Coefficient of determination per output column."""
        res = ((self(x) - y) ** 2).sum(0)
        return 1 - res / (((y - y.mean(0)) ** 2).sum(0) + 1e-12)


@dataclass
class PCA:
    mean: np.ndarray  # [D]
    directions: np.ndarray  # [K, D] unit rows
    std: np.ndarray  # [K] standard deviation of the codes along each direction
    explained: np.ndarray  # [K] fraction of variance

    @staticmethod
    def fit(codes: np.ndarray, k: int = 8) -> "PCA":
        mean = codes.mean(0)
        _, sv, vt = np.linalg.svd(codes - mean, full_matrices=False)
        var = sv**2 / max(1, len(codes) - 1)
        k = min(k, len(sv))
        return PCA(mean, vt[:k], np.sqrt(var[:k]), var[:k] / var.sum())

    def offset(self, coefficients) -> np.ndarray:
        """Code offset for coefficients along the first directions, in standard deviations."""
        c = np.asarray(coefficients, np.float64)
        return (c * self.std[:len(c)]) @ self.directions[:len(c)]


@dataclass
class Semantics:
    phenotype_to_shape: LinearMap
    shape_to_phenotype: LinearMap
    shape_pca: PCA
    phenotype_range: np.ndarray  # [2, 6] min/max over training identities
    angles_to_pose: LinearMap | None = None
    pose_pca: PCA | None = None
    angle_range: np.ndarray | None = None  # [2, J]

    def shape_code(self, phenotypes) -> np.ndarray:
        """phenotypes (dict or [B, 6]) -> shape codes [B, Ds]."""
        return self.phenotype_to_shape(bodies.check_phenotypes(phenotypes))

    def pose_code(self, angles) -> np.ndarray:
        """joint angles in degrees (dict or [B, J]) -> pose codes [B, Dp]."""
        if self.angles_to_pose is None:
            raise ValueError("this checkpoint has no pose stage: no joint-angle map")
        return self.angles_to_pose(bodies.check_joint_angles(angles))

    def out_of_range(self, phenotypes=None, angles=None) -> list[str]:
        """Names of the phenotypes / joints outside the training range (allowed, but marked)."""
        out = []
        if phenotypes is not None:
            p = bodies.check_phenotypes(phenotypes)[0]
            out += [n for n, v, lo, hi in zip(bodies.PHENOTYPES, p, *self.phenotype_range) if not lo <= v <= hi]
        if angles is not None and self.angle_range is not None:
            a = bodies.check_joint_angles(angles)[0]
            out += [n for n, v, lo, hi in zip(bodies.JOINT_NAMES, a, *self.angle_range) if not lo <= v <= hi]
        return out


def compute(model, ridge: float = 1e-2) -> Semantics:
    """Fit the maps from a loaded checkpoint's codes and the labels in its meta.yaml."""
    labels = model.meta.get("shape", {}).get("codes")
    if not labels or "phenotypes" not in labels[0]:
        raise ValueError(f"{model.path}: meta.yaml has no per-code phenotypes (shape.codes[].phenotypes)")
    ph = np.concatenate([bodies.check_phenotypes(l["phenotypes"]) for l in labels])
    s = model.shape_codes.detach().cpu().numpy().astype(np.float64)
    sem = Semantics(LinearMap.fit(ph, s, ridge), LinearMap.fit(s, ph, ridge), PCA.fit(s),
                    np.stack([ph.min(0), ph.max(0)]))
    plabels = model.meta.get("pose", {}).get("codes")
    if model.pose_codes is not None and plabels and "angles" in plabels[0]:
        ang = np.array([l["angles"] for l in plabels], dtype=np.float64)
        p = model.pose_codes.detach().cpu().numpy().astype(np.float64)
        sem.angles_to_pose, sem.pose_pca = LinearMap.fit(ang, p, ridge), PCA.fit(p)
        sem.angle_range = np.stack([ang.min(0), ang.max(0)])
    return sem


def save(sem: Semantics, path) -> None:
    import os
    from pathlib import Path

    arrays = {}
    for name in ["phenotype_to_shape", "shape_to_phenotype", "angles_to_pose", "shape_pca", "pose_pca"]:
        obj = getattr(sem, name)
        if obj is not None:
            arrays.update({f"{name}.{k}": v for k, v in obj.__dict__.items()})
    arrays["phenotype_range"] = sem.phenotype_range
    if sem.angle_range is not None:
        arrays["angle_range"] = sem.angle_range
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load(path) -> Semantics:
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}

    def obj(cls, name):
        keys = [k for k in a if k.startswith(name + ".")]
        return cls(**{k.split(".", 1)[1]: a[k] for k in keys}) if keys else None

    return Semantics(obj(LinearMap, "phenotype_to_shape"), obj(LinearMap, "shape_to_phenotype"), obj(PCA, "shape_pca"),
                     a["phenotype_range"], obj(LinearMap, "angles_to_pose"), obj(PCA, "pose_pca"), a.get("angle_range"))
