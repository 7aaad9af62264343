"""Evaluation of a trained checkpoint on held-out data (`npms eval-model`).

Shapes: for held-out (and some training) identities, a shape code is optimised on the
identity's SDF samples with the decoder frozen, the mesh extracted, and IoU / Chamfer-L2
measured against the true canonical mesh (metrics.py definitions). Poses: pose codes of
held-out frames (test motions on training identities; test identities) are optimised on
flow samples, and the true canonical vertices moved by the decoder are compared with the
true posed vertices (mean vertex error, cm). Codes fitted to 3D samples with the decoders
frozen (fit_shape_code, fit_pose_codes) also give what a checkpoint can represent of a sequence
whose 3D truth is known (sequence_ceiling). Must not: train or write checkpoints.
"""

from __future__ import annotations

import numpy as np
import torch

from . import metrics
from .data.dataset import Dataset
from .mesh.extract import extract

# ------------------------------------------------ codes from 3D samples (decoders frozen)


def fit_shape_code(
    shape_decoder,
    points: torch.Tensor,
    sdf: torch.Tensor,
    init: torch.Tensor,
    iters: int = 300,
    batch: int = 8192,
    lr: float = 5e-3,
    prior: float = 1e-4,
    clamp: float = 0.1,
    seed: int = 0,
):
    """Shape code of an unseen body from its SDF samples (decoder frozen), DeepSDF-style:
    clamped L1 + code prior, Adam. points [N,3] canonical, sdf [N] -> code [Ds]."""
    gen = torch.Generator().manual_seed(seed)
    code = init.detach().clone()[None].requires_grad_(True)
    opt = torch.optim.Adam([code], lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, iters // 2), 0.3)
    for _ in range(iters):
        idx = torch.randint(0, len(points), (batch,), generator=gen)
        pred = shape_decoder(code, points[idx][None])[0]
        loss = (pred.clamp(-clamp, clamp) - sdf[idx].clamp(-clamp, clamp)).abs().mean() + prior * code.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return code.detach()[0]


def fit_pose_codes(
    pose_decoder,
    shape_codes: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    init: torch.Tensor,
    iters: int = 600,
    lr: float = 1e-1,
    prior: float = 1e-4,
    translation: torch.Tensor | None = None,
):
    """Pose codes of unseen frames from flow pairs (decoder frozen): shape codes [B,Ds],
    canonical x [B,K,3] -> posed y [B,K,3]; returns codes [B,Dp]. The defaults run to
    convergence (benchmarks/README.md, "Held-out poses"): fewer steps or a smaller rate leave the
    codes short of the pose and the error measures the optimiser, not the pose space.
    translation: initial offsets [B,3] of frames placed in a world (y = x + f_p + offset), fitted
    with the codes; then returns (codes, offsets)."""
    codes = init.detach().clone().requires_grad_(True)
    groups = [{"params": [codes], "lr": lr}]
    offsets = None
    if translation is not None:
        offsets = translation.detach().clone().requires_grad_(True)
        groups.append({"params": [offsets], "lr": lr / 10})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.StepLR(opt, max(1, iters // 2), 0.3)
    for _ in range(iters):
        moved = x + pose_decoder(shape_codes, codes, x)
        if offsets is not None:
            moved = moved + offsets[:, None]
        loss = ((moved - y).square().sum(-1) / 2).mean() + prior * codes.square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return codes.detach() if offsets is None else (codes.detach(), offsets.detach())


# ------------------------------------------------------------------ held-out evaluation


def evaluate_shapes(
    model,
    ds: Dataset,
    split: str,
    count: int,
    resolution: int = 256,
    iou_points: int = 1_000_000,
    chamfer_points: int = 100_000,
    progress=None,
    codes_out: dict | None = None,
    identities: list[str] | None = None,
) -> list[dict]:
    """Per identity: {"identity", "iou", "chamfer_l2"} of `count` identities of `split` (tail:
    spread over the tail list); test and tail identities get an optimised code,
    training identities use their learned code. codes_out: filled with identity index -> code,
    so the pose evaluation reuses the optimised codes. identities: ids of `split` to evaluate
    instead (in that order, at most `count`)."""
    ids = ds.split(split)
    if identities is not None:  # these, by id, instead of `count` of the split
        index = {ds.identities[i]["id"]: i for i in ids}
        missing = [n for n in identities if n not in index]
        if missing:
            raise ValueError(f"identities {missing} are not in split '{split}' of {ds.path}")
        ids = [index[n] for n in identities]
    elif split == "tail":  # spread over the named extremes (ordered by phenotype), not the first ones
        ids = [ids[round(k)] for k in np.linspace(0, len(ids) - 1, min(count, len(ids)))]
    ids = ids[:count]
    train = ds.split("train")
    model.shape_decoder.requires_grad_(False)  # only codes are fitted; weight gradients would double the backward cost
    faces = ds.faces()
    canonical = ds.canonical(ids)
    rows = []
    samples = ds.shape_samples(ids)
    for k, i in enumerate(ids):
        if split == "train":
            code = model.shape_codes[train.index(i)]
        else:
            code = fit_shape_code(model.shape_decoder, samples.points[k], samples.sdf[k], model.shape_codes.mean(0))
        if codes_out is not None:
            codes_out[i] = code
        with torch.inference_mode():
            mesh = extract(model.shape_decoder.sdf_fn(code), resolution)
        v, f = mesh.vertices.numpy(), mesh.faces.numpy()
        rows.append(
            {
                "identity": ds.identities[i]["id"],
                "iou": metrics.iou(canonical[k], faces, v, f, iou_points, seed=k),
                "chamfer_l2": metrics.chamfer_l2(canonical[k], faces, v, f, chamfer_points, seed=k),
            }
        )
        if progress:
            progress(k + 1, len(ids))
    return rows


POSE_GROUPS = {
    "train": "unseen motions, training identities",
    "test": "test identities",
    "tail": "tail identities, unseen motions",
}
"""The held-out pose groups, by the split of the frame's identity."""


def evaluate_poses(
    model,
    ds: Dataset,
    max_frames: int = 200,
    points: int = 500,
    batch: int = 32,
    seed: int = 0,
    progress=None,
    test_codes: dict | None = None,
) -> dict:
    """Mean vertex error (cm at the domain's true scale) of held-out frames with optimised pose
    codes, per group: unseen motions of training identities (learned shape codes), test identities
    and tail identities (codes in test_codes: identity index -> code optimised by evaluate_shapes,
    so no shape code is fitted twice; without test_codes, the first 4 test identities get one).
    Up to max_frames frames per group, then "all held-out frames" over every group's frames."""
    flow = ds.flow_samples(test=True)
    train = ds.split("train")
    model.pose_decoder.requires_grad_(False)  # as in evaluate_shapes
    if test_codes is None:
        test = ds.split("test")[:4]
        samples = ds.shape_samples(test)
        test_codes = {
            i: fit_shape_code(model.shape_decoder, samples.points[k], samples.sdf[k], model.shape_codes.mean(0))
            for k, i in enumerate(test)
        }
    shape_code = {i: model.shape_codes[k] for k, i in enumerate(train)} | dict(test_codes)
    rng = np.random.default_rng(seed)
    by_group = {}
    for t in range(flow.num_frames):
        i = ds.test_frames[t]["identity"]
        if i in shape_code:
            by_group.setdefault(POSE_GROUPS[ds.identities[i]["split"]], []).append(t)
    frames = np.sort(
        np.concatenate(
            [rng.choice(ts, min(max_frames, len(ts)), replace=False) for ts in by_group.values()] or [np.zeros(0, int)]
        )
    )
    gen = torch.Generator().manual_seed(seed)
    errors = {g: [] for g in POSE_GROUPS.values() if g in by_group}
    for b0 in range(0, len(frames), batch):
        fr = torch.as_tensor(frames[b0 : b0 + batch])
        idx = torch.randint(0, flow.face_index.shape[1], (len(fr), points), generator=gen)
        x, y = flow.pairs(fr, idx)
        s = torch.stack([shape_code[ds.test_frames[int(t)]["identity"]] for t in fr])
        codes = fit_pose_codes(model.pose_decoder, s, x, y, model.pose_codes.mean(0).expand(len(fr), -1))
        with torch.inference_mode():
            canon = flow.canonical_vertices[flow.frame_shape[fr]]
            moved = canon + model.pose_decoder(s, codes, canon)
        err_cm = ds.domain.length_to_metres((moved - flow.posed_vertices[fr]).norm(dim=-1).mean(-1)).numpy() * 100
        for t, e in zip(fr.tolist(), err_cm):
            errors[POSE_GROUPS[ds.identities[ds.test_frames[t]["identity"]]["split"]]].append(float(e))
        if progress:
            progress(min(b0 + batch, len(frames)), len(frames))
    errors["all held-out frames"] = [e for v in errors.values() for e in v]
    return {k: {"frames": len(v), "mean_vertex_error_cm": float(np.mean(v)) if v else None} for k, v in errors.items()}


def true_shape_code(model, canonical_vertices: np.ndarray, faces: np.ndarray, seed: int = 0) -> torch.Tensor:
    """The shape code of a body whose canonical mesh is known ([V,3] model units): fitted to its SDF."""
    from .data.sdf import sdf_samples

    model.shape_decoder.requires_grad_(
        False
    )  # only the code is fitted; weight gradients would double the backward cost
    pts, sdf, _ = sdf_samples(np.asarray(canonical_vertices, np.float64), faces, 200_000, seed=seed)
    return fit_shape_code(
        model.shape_decoder, torch.as_tensor(pts), torch.as_tensor(sdf), model.shape_codes.mean(0), seed=seed
    )


def sequence_ceiling(
    model,
    canonical_vertices: np.ndarray,
    faces: np.ndarray,
    gt_vertices_m: np.ndarray,
    resolution: int = 256,
    points: int = 1000,
    batch: int = 16,
    surface_iters: int = 100,
    seed: int = 0,
):
    """What the checkpoint can represent of a sequence whose 3D truth is known: the shape code
    fitted to the true canonical body's SDF; per frame a pose code and translation fitted to the
    true vertex correspondences (canonical -> posed), then to the true posed SDF as well, since
    correspondences alone leave thin limbs off the surface. A fit from
    depth sees far less, so this is what fitting this checkpoint can hope to reach; the fit
    benchmark prints it beside the fits.

    canonical_vertices [V,3] model units, posed gt_vertices_m [T,V,3] metres in the same vertex
    order (faces [F,3] shared). Returns (posed vertices [T,V',3] metres, faces [F',3]) of the
    decoded canonical mesh extracted at `resolution`."""
    from .data.sdf import sample_surface, signed_distance, warp_mesh
    from .mesh.extract import pose_mesh

    model.pose_decoder.requires_grad_(False)  # as in true_shape_code: only codes are fitted
    s = true_shape_code(model, canonical_vertices, faces, seed)
    canon = torch.as_tensor(canonical_vertices, dtype=torch.float32)
    scale = model.domain.model_per_metre  # model units per metre, the sequence's world
    posed = torch.as_tensor(np.asarray(gt_vertices_m, np.float64) * scale, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    codes, offsets = [], []
    for b0 in range(0, len(posed), batch):
        y_all = posed[b0 : b0 + batch]
        idx = torch.randint(0, len(canon), (len(y_all), points), generator=gen)
        x, y = canon[idx], torch.gather(y_all, 1, idx[..., None].expand(-1, -1, 3))
        c, o = fit_pose_codes(
            model.pose_decoder,
            s.expand(len(y_all), -1),
            x,
            y,
            model.pose_codes.mean(0).expand(len(y_all), -1),
            translation=y_all.mean(1) - canon.mean(0),
        )
        codes.append(c)
        offsets.append(o)
    codes, offsets = torch.cat(codes), torch.cat(offsets)
    with torch.inference_mode():
        mesh = extract(model.shape_decoder.sdf_fn(s), resolution)
    rng = np.random.default_rng(seed)
    near = sample_surface(mesh.vertices.numpy().astype(np.float64), mesh.faces.numpy(), 50_000, rng)[2]
    near = torch.as_tensor(near + rng.normal(0, 0.015, near.shape).astype(np.float32))
    with torch.no_grad():
        near_sdf = model.shape_decoder(s[None], near[None])[0].clamp(-0.1, 0.1)
    for t in range(len(posed) if surface_iters else 0):
        truth = posed[t].numpy().astype(np.float64)
        wm = warp_mesh(truth, faces)
        code, offset = codes[t : t + 1].clone().requires_grad_(True), offsets[t : t + 1].clone().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [code], "lr": 3e-3}, {"params": [offset], "lr": 1e-3}])
        for _ in range(surface_iters):
            j = torch.randint(0, len(near), (2 * points,), generator=gen)
            q = near[j] + model.pose_decoder(s[None], code, near[j][None])[0] + offset
            d, closest, _ = signed_distance(truth, faces, q.detach().numpy(), wm)
            true_sdf = torch.as_tensor(np.sign(d), dtype=q.dtype) * (q - torch.as_tensor(closest, dtype=q.dtype)).norm(
                dim=-1
            )
            i = torch.randint(0, len(canon), (points // 2,), generator=gen)
            moved = canon[i] + model.pose_decoder(s[None], code, canon[i][None])[0] + offset
            loss = (
                (true_sdf.clamp(-0.1, 0.1) - near_sdf[j]).abs().mean()
                + ((moved - posed[t, i]).square().sum(-1) / 2).mean()
                + 1e-4 * code.square().mean()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
        codes[t], offsets[t] = code.detach()[0], offset.detach()[0]
    with torch.inference_mode():
        out = np.stack(
            [
                (pose_mesh(mesh.vertices, model.pose_decoder.displacement_fn(s, codes[t])) + offsets[t]).numpy()
                for t in range(len(codes))
            ]
        )
    return out / scale, mesh.faces.numpy()
