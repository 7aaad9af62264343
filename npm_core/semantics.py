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


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and scale; a constant input column gets scale 1 (weight 0), not 1e8."""
    mean, std = x.mean(0), x.std(0)
    return mean, np.where(std > 1e-8, std, 1.0)


class _Map:
    def r2(self, x, y) -> np.ndarray:
        """Coefficient of determination per output column."""
        res = ((self(x) - y) ** 2).sum(0)
        return 1 - res / (((y - y.mean(0)) ** 2).sum(0) + 1e-12)


@dataclass
class LinearMap(_Map):
    """y = ((x - mean) / scale) @ weight + bias, fitted by ridge regression."""

    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> "LinearMap":
        mean, scale = _standardise(x)
        xs = (x - mean) / scale
        bias = y.mean(0)
        w = np.linalg.solve(xs.T @ xs + ridge * len(x) * np.eye(x.shape[1]), xs.T @ (y - bias))
        return LinearMap(mean, scale, w, bias)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x) - self.mean) / self.scale) @ self.weight + self.bias


@dataclass
class MLPMap(_Map):
    """y = MLP((x - mean) / scale) * y_scale + y_mean, two tanh hidden layers: for maps a linear
    one explains poorly (joint angles -> pose code). Fitted with torch, evaluated in numpy."""

    mean: np.ndarray
    scale: np.ndarray
    y_mean: np.ndarray
    y_scale: np.ndarray
    w0: np.ndarray
    b0: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @staticmethod
    def fit(x: np.ndarray, y: np.ndarray, hidden: int = 256, steps: int = 4000, lr: float = 2e-3,
            weight_decay: float = 1e-4, seed: int = 0) -> "MLPMap":
        import torch

        mean, scale = _standardise(x)
        y_mean, y_scale = y.mean(0), y.std(0).mean() + 1e-8
        gen = torch.Generator().manual_seed(seed)
        xs = torch.as_tensor((x - mean) / scale, dtype=torch.float32)
        ys = torch.as_tensor((y - y_mean) / y_scale, dtype=torch.float32)
        dims = [x.shape[1], hidden, hidden, y.shape[1]]
        params = []
        for a, b in zip(dims, dims[1:]):
            params += [(torch.randn(a, b, generator=gen) / a**0.5).requires_grad_(), torch.zeros(b, requires_grad=True)]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            idx = torch.randint(0, len(xs), (min(512, len(xs)),), generator=gen)
            loss = (MLPMap._forward(xs[idx], params, torch.tanh) - ys[idx]).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        w = [t.detach().numpy().astype(np.float64) for t in params]
        return MLPMap(mean, scale, y_mean, np.asarray(y_scale), *w)

    @staticmethod
    def _forward(h, params, tanh=np.tanh):
        """The same layers for torch (training) and numpy (use) arrays."""
        for k in range(0, len(params) - 2, 2):
            h = tanh(h @ params[k] + params[k + 1])
        return h @ params[-2] + params[-1]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xs = (np.asarray(x, np.float64) - self.mean) / self.scale
        params = [self.w0, self.b0, self.w1, self.b1, self.w2, self.b2]
        return self._forward(xs, params) * self.y_scale + self.y_mean


MAPS = {"linear": LinearMap, "mlp": MLPMap}


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
    phenotype_to_shape: LinearMap | MLPMap
    shape_to_phenotype: LinearMap
    shape_pca: PCA
    phenotype_range: np.ndarray  # [2, 6] min/max over training identities
    angles_to_pose: LinearMap | MLPMap | None = None
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

    def move_shape(self, code: np.ndarray, phenotypes, delta) -> np.ndarray:
        """A slider's effect: code + map(phenotypes + delta) - map(phenotypes); what the map
        does not explain of the code is kept."""
        ph = np.atleast_2d(np.asarray(phenotypes, np.float64))  # may leave [0, 1]: marked, not refused
        return code + (self.phenotype_to_shape(ph + np.asarray(delta)) - self.phenotype_to_shape(ph))[0]

    def move_pose(self, code: np.ndarray, angles, delta) -> np.ndarray:
        """The same for joint angles (degrees) and a pose code."""
        a = bodies.check_joint_angles(angles)
        return code + (self.angles_to_pose(a + np.asarray(delta)) - self.angles_to_pose(a))[0]

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


def compute(model, ridge: float = 1e-2, shape_map: str = "linear", pose_map: str = "mlp") -> Semantics:
    """Fit the maps from a loaded checkpoint's codes and the labels in its meta.yaml.
    shape_map / pose_map: "linear" (ridge) or "mlp" for phenotypes -> shape code and joint
    angles -> pose code (the default pair is what benchmarks/bench_semantics.py measured best)."""
    def fit_map(kind, x, y):
        if kind not in MAPS:
            raise ValueError(f"semantic map must be one of {sorted(MAPS)}, got {kind!r}")
        return LinearMap.fit(x, y, ridge) if kind == "linear" else MLPMap.fit(x, y)

    labels = model.meta.get("shape", {}).get("codes")
    if not labels or "phenotypes" not in labels[0]:
        raise ValueError(f"{model.path}: meta.yaml has no per-code phenotypes (shape.codes[].phenotypes)")
    ph = np.concatenate([bodies.check_phenotypes(l["phenotypes"]) for l in labels])
    s = model.shape_codes.detach().cpu().numpy().astype(np.float64)
    sem = Semantics(fit_map(shape_map, ph, s), LinearMap.fit(s, ph, ridge), PCA.fit(s),
                    np.stack([ph.min(0), ph.max(0)]))
    plabels = model.meta.get("pose", {}).get("codes")
    if model.pose_codes is not None and plabels and "angles" in plabels[0]:
        ang = np.array([l["angles"] for l in plabels], dtype=np.float64)
        p = model.pose_codes.detach().cpu().numpy().astype(np.float64)
        sem.angles_to_pose, sem.pose_pca = fit_map(pose_map, ang, p), PCA.fit(p)
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
            if isinstance(obj, MLPMap):
                arrays[f"{name}.kind"] = np.array("mlp")
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
        if f"{name}.kind" in a:
            cls = MAPS[str(a.pop(f"{name}.kind"))]
        keys = [k for k in a if k.startswith(name + ".")]
        return cls(**{k.split(".", 1)[1]: a[k] for k in keys}) if keys else None

    return Semantics(obj(LinearMap, "phenotype_to_shape"), obj(LinearMap, "shape_to_phenotype"), obj(PCA, "shape_pca"),
                     a["phenotype_range"], obj(LinearMap, "angles_to_pose"), obj(PCA, "pose_pca"), a.get("angle_range"))
