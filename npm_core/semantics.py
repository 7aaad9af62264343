"""Semantic handles over the learned spaces: phenotypes <-> shape code, joint angles -> pose code,
and principal directions of both code sets. For an imported domain (data/meshes.py) the
identity attributes take the phenotypes' place, and a domain without joint angles gets no pose map.

NPM codes have no meaning of their own; every training code, though, comes with what made it
(the identity's phenotypes, the frame's joint angles, in meta.yaml). Ridge regression on those
pairs gives a slider per phenotype / joint that moves a code along the learned space. Stored
beside the checkpoint (semantics.npz), computed by `npms semantics`.

Those pairs are few (one noisy auto-decoded code per training identity), so `refine` then
trains the MLP maps through the frozen decoders on fresh Anny bodies (Anny checkpoints only): the
map is judged by the surface / vertices it decodes to, not by how close it lands to a training code.
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
    def fit(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> LinearMap:
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
    def fit(
        x: np.ndarray,
        y: np.ndarray,
        hidden: int = 256,
        steps: int = 4000,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        seed: int = 0,
    ) -> MLPMap:
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

    def torch_params(self) -> list:
        """The layer weights as float32 leaf tensors that require grad (for `refine`)."""
        import torch

        return [
            torch.tensor(getattr(self, n), dtype=torch.float32, requires_grad=True)
            for n in ("w0", "b0", "w1", "b1", "w2", "b2")
        ]

    def torch_call(self, x, params):
        """The map on a torch batch x [B, in] with the given layer weights (differentiable)."""
        import torch

        xs = (x - torch.as_tensor(self.mean, dtype=torch.float32)) / torch.as_tensor(self.scale, dtype=torch.float32)
        y = self._forward(xs, params, torch.tanh)
        return y * float(self.y_scale) + torch.as_tensor(self.y_mean, dtype=torch.float32)

    def with_params(self, params) -> MLPMap:
        w = [t.detach().numpy().astype(np.float64) for t in params]
        return MLPMap(self.mean, self.scale, self.y_mean, self.y_scale, *w)

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
    def fit(codes: np.ndarray, k: int = 8) -> PCA:
        mean = codes.mean(0)
        _, sv, vt = np.linalg.svd(codes - mean, full_matrices=False)
        var = sv**2 / max(1, len(codes) - 1)
        k = min(k, len(sv))
        return PCA(mean, vt[:k], np.sqrt(var[:k]), var[:k] / var.sum())

    def offset(self, coefficients) -> np.ndarray:
        """Code offset for coefficients along the first directions, in standard deviations."""
        c = np.asarray(coefficients, np.float64)
        return (c * self.std[: len(c)]) @ self.directions[: len(c)]


@dataclass
class Semantics:
    phenotype_to_shape: LinearMap | MLPMap
    shape_to_phenotype: LinearMap
    shape_pca: PCA
    phenotype_range: np.ndarray  # [2, 6] min/max over training identities
    angles_to_pose: LinearMap | MLPMap | None = None
    pose_pca: PCA | None = None
    angle_range: np.ndarray | None = None  # [2, J]
    attribute_names: list | None = None  # an imported domain's attributes, in place of the phenotypes (None: Anny)

    @property
    def names(self) -> list[str]:
        """What the shape map takes: Anny's phenotypes or the domain's attribute names."""
        return list(bodies.PHENOTYPES) if self.attribute_names is None else list(self.attribute_names)

    def _attributes(self, values) -> np.ndarray:
        """[B, A] from a dict of every name or an array (Anny: bodies.check_phenotypes)."""
        if self.attribute_names is None:
            return bodies.check_phenotypes(values)
        return attribute_array(values, self.attribute_names)

    def shape_code(self, phenotypes) -> np.ndarray:
        """phenotypes / attributes (dict or [B, A]) -> shape codes [B, Ds]."""
        return self.phenotype_to_shape(self._attributes(phenotypes))

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
            p = self._attributes(phenotypes)[0]
            out += [n for n, v, lo, hi in zip(self.names, p, *self.phenotype_range) if not lo <= v <= hi]
        if angles is not None and self.angle_range is not None:
            a = bodies.check_joint_angles(angles)[0]
            out += [n for n, v, lo, hi in zip(bodies.JOINT_NAMES, a, *self.angle_range) if not lo <= v <= hi]
        return out


def attribute_array(values, names) -> np.ndarray:
    """[B, A] float64 from {name: number} (every name) or an array of A columns."""
    if isinstance(values, dict):
        missing = sorted(set(names) - set(values))
        if missing:
            raise ValueError(f"attributes {missing} missing; expected a value for each of {list(names)}")
        values = [values[n] for n in names]
    a = np.atleast_2d(np.asarray(values, np.float64))
    if a.shape[-1] != len(names):
        raise ValueError(f"expected {len(names)} attributes {list(names)}, got {a.shape[-1]} columns")
    return a


def compute(model, ridge: float = 1e-2, shape_map: str = "mlp", pose_map: str = "mlp") -> Semantics:
    """Fit the maps from a loaded checkpoint's codes and the labels in its meta.yaml.
    shape_map / pose_map: "linear" (ridge) or "mlp" for phenotypes -> shape code and joint
    angles -> pose code (the default pair is what benchmarks/bench_semantics.py measured best)."""

    def fit_map(kind, x, y):
        if kind not in MAPS:
            raise ValueError(f"semantic map must be one of {sorted(MAPS)}, got {kind!r}")
        return LinearMap.fit(x, y, ridge) if kind == "linear" else MLPMap.fit(x, y)

    labels = model.meta.get("shape", {}).get("codes")
    names = sorted(labels[0]["attributes"]) if labels and labels[0].get("attributes") else None
    if not labels or ("phenotypes" not in labels[0] and names is None):
        raise ValueError(
            f"{model.path}: meta.yaml has no per-code phenotypes or attributes "
            f"(shape.codes[].phenotypes or .attributes; an imported domain needs attributes.yaml)"
        )
    if names is None:
        ph = np.concatenate([bodies.check_phenotypes(l["phenotypes"]) for l in labels])
    else:
        ph = np.concatenate([attribute_array(l["attributes"], names) for l in labels])
    s = model.shape_codes.detach().cpu().numpy().astype(np.float64)
    sem = Semantics(
        fit_map(shape_map, ph, s),
        LinearMap.fit(s, ph, ridge),
        PCA.fit(s),
        np.stack([ph.min(0), ph.max(0)]),
        attribute_names=names,
    )
    plabels = model.meta.get("pose", {}).get("codes")
    if model.pose_codes is not None:  # pose PCA needs no labels; the joint-angle map needs angles
        p = model.pose_codes.detach().cpu().numpy().astype(np.float64)
        sem.pose_pca = PCA.fit(p)
        if plabels and "angles" in plabels[0]:
            ang = np.array([l["angles"] for l in plabels], dtype=np.float64)
            sem.angles_to_pose = fit_map(pose_map, ang, p)
            sem.angle_range = np.stack([ang.min(0), ang.max(0)])
    return sem


@dataclass
class RefineConfig:
    """Training the MLP maps through the frozen decoders (`refine`)."""

    bodies: int = 512  # fresh phenotype samples, uniform in the training box
    sdf_points: int = 4096  # SDF samples per body, 80% near the surface
    poses: int = 4096  # fresh joint-angle samples: half from the training pose sampler, half uniform in the box
    pose_points: int = 1024  # body vertices per posed example
    shape_steps: int = 1500
    pose_steps: int = 3000
    shape_batch: int = 16  # bodies per step
    pose_batch: int = 32  # posed examples per step
    points_per_step: int = 512  # per body / example
    shape_lr: float = 1e-3
    pose_lr: float = 2e-3
    clamp: float = 0.1  # the shape training's SDF clamp
    prior: float = 1e-4  # code prior, as in training
    validation: float = 0.1  # fraction of the fresh samples held out to accept or reject the result
    seed: int = 7


def refine(sem: Semantics, model, cfg: RefineConfig | None = None, progress=None) -> dict:
    """Train sem's MLP maps (in place) through the frozen decoders on fresh Anny bodies ({} for an
    imported domain: there is no generator of fresh identities to train on).

    Shape: phenotypes -> code -> clamped L1 of f_s(code, x) against the true body's SDF.
    Pose: joint angles -> code -> mean distance of x + f_p(s, code, x) to the true posed
    vertices, x the canonical vertices of a training identity with its own code s.
    A map is replaced only if its held-out loss drops. Returns {map: (loss before, after)}."""
    import torch

    cfg = cfg or RefineConfig()
    if sem.attribute_names is not None:
        return {}
    for dec in (model.shape_decoder, model.pose_decoder):
        for p in dec.parameters() if dec is not None else []:
            p.requires_grad_(False)
    rng = np.random.default_rng(cfg.seed)
    report = progress or (lambda *a: None)
    out = {}
    if isinstance(sem.phenotype_to_shape, MLPMap):
        lo, hi = sem.phenotype_range
        ph = lo + rng.random((cfg.bodies, len(lo))) * (hi - lo)
        pts, sdf = _sdf_targets(ph, cfg, rng, lambda k: report("shape data", k, cfg.bodies, None))
        dec = model.shape_decoder

        def shape_loss(codes, idx, k):
            x, d = pts[idx][:, k], sdf[idx][:, k]
            pred = dec(codes, x).clamp(-cfg.clamp, cfg.clamp)
            return (pred - d.clamp(-cfg.clamp, cfg.clamp)).abs().mean() + cfg.prior * codes.square().mean()

        sem.phenotype_to_shape, out["shape"] = _train_map(
            sem.phenotype_to_shape,
            ph,
            shape_loss,
            pts.shape[1],
            cfg.shape_steps,
            cfg.shape_batch,
            cfg.shape_lr,
            cfg,
            lambda i, l: report("shape map", i, cfg.shape_steps, l),
        )
    if isinstance(sem.angles_to_pose, MLPMap) and model.pose_decoder is not None:
        labels = model.meta["shape"]["codes"]
        half = cfg.poses // 2
        alo, ahi = sem.angle_range
        angles = np.concatenate(
            [bodies.sample_poses(half, seed=cfg.seed), alo + rng.random((cfg.poses - half, len(alo))) * (ahi - alo)]
        )
        rows = rng.integers(0, len(labels), cfg.poses)
        ph = np.concatenate([bodies.check_phenotypes(l["phenotypes"]) for l in labels])
        canon = bodies.body_meshes(ph)
        posed = bodies.body_meshes(ph[rows], angles)
        vid = np.stack([rng.choice(canon.shape[1], cfg.pose_points, replace=False) for _ in range(cfg.poses)])
        x = torch.as_tensor(canon[rows[:, None], vid])
        y = torch.as_tensor(posed[np.arange(cfg.poses)[:, None], vid])
        s = model.shape_codes.detach()[torch.as_tensor(rows)]
        dec = model.pose_decoder

        def pose_loss(codes, idx, k):
            xb, yb = x[idx][:, k], y[idx][:, k]
            return (xb + dec(s[idx], codes, xb) - yb).norm(dim=-1).mean() + cfg.prior * codes.square().mean()

        sem.angles_to_pose, out["pose"] = _train_map(
            sem.angles_to_pose,
            angles,
            pose_loss,
            cfg.pose_points,
            cfg.pose_steps,
            cfg.pose_batch,
            cfg.pose_lr,
            cfg,
            lambda i, l: report("pose map", i, cfg.pose_steps, l),
        )
    return out


def _sdf_targets(phenotypes, cfg: RefineConfig, rng, tick):
    """SDF samples [B, N, 3] / [B, N] of the true canonical bodies of the given phenotypes."""
    import torch

    from .data.sdf import sdf_samples

    verts, faces = bodies.body_meshes(phenotypes), bodies.faces()
    pts, sdf = [], []
    for k, v in enumerate(verts):
        p, d, _ = sdf_samples(
            v.astype(np.float64), faces, cfg.sdf_points, near_fraction=0.8, seed=int(rng.integers(1 << 31))
        )
        pts.append(p)
        sdf.append(d)
        tick(k + 1)
    return torch.as_tensor(np.stack(pts)), torch.as_tensor(np.stack(sdf))


def _train_map(
    m: MLPMap, inputs: np.ndarray, loss_fn, n_points: int, steps: int, batch: int, lr: float, cfg: RefineConfig, tick
):
    """Adam on the map's weights for loss_fn(codes [B, D], example idx [B], point idx [K]);
    keeps the old map unless the held-out examples' loss drops."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    n_val = max(1, int(len(inputs) * cfg.validation))
    perm = torch.randperm(len(inputs), generator=gen)
    val, train = perm[:n_val], perm[n_val:]
    x = torch.as_tensor(inputs, dtype=torch.float32)
    params = m.torch_params()
    all_points = torch.arange(n_points)

    def val_loss():
        with torch.no_grad():
            return (
                sum(
                    loss_fn(m.torch_call(x[val[i : i + 64]], params), val[i : i + 64], all_points).item()
                    * len(val[i : i + 64])
                    for i in range(0, n_val, 64)
                )
                / n_val
            )

    before = val_loss()
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
    for i in range(steps):
        idx = train[torch.randint(0, len(train), (batch,), generator=gen)]
        k = torch.randint(0, n_points, (cfg.points_per_step,), generator=gen)
        loss = loss_fn(m.torch_call(x[idx], params), idx, k)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        tick(i + 1, loss.item())
    after = val_loss()
    return (m.with_params(params) if after < before else m), (before, after)


def save(sem: Semantics, path) -> None:
    from .atomic import atomic_path

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
    if sem.attribute_names is not None:
        arrays["attribute_names"] = np.array(sem.attribute_names)
    with atomic_path(path) as tmp:
        np.savez(tmp, **arrays)


def load(path) -> Semantics:
    with np.load(path, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}

    def obj(cls, name):
        if f"{name}.kind" in a:
            cls = MAPS[str(a.pop(f"{name}.kind"))]
        keys = [k for k in a if k.startswith(name + ".")]
        return cls(**{k.split(".", 1)[1]: a[k] for k in keys}) if keys else None

    return Semantics(
        obj(LinearMap, "phenotype_to_shape"),
        obj(LinearMap, "shape_to_phenotype"),
        obj(PCA, "shape_pca"),
        a["phenotype_range"],
        obj(LinearMap, "angles_to_pose"),
        obj(PCA, "pose_pca"),
        a.get("angle_range"),
        a["attribute_names"].tolist() if "attribute_names" in a else None,
    )
