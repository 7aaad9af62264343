"""Tiny fixtures for the viewer tests, made in code in a few seconds: a checkpoint whose small
decoders were fitted to an analytic capsule body (4 sizes) and an arm-raise field (8 poses), and
a fit-result directory + depth sequence made from it. Not a trained NPM; just shaped enough to
look like a body in screenshots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from npm_core import bodies, layout, semantics
from npm_core.mesh import analytic
from npm_core.models import checkpoint as ckpt
from npm_core.models.decoders import (
    DecoderConfig,
    ModelConfig,
    PoseDecoder,
    ShapeDecoder,
)

CONFIG = ModelConfig(DecoderConfig(96, 4, 8, 4, 2), DecoderConfig(64, 3, 4, 3, 0))
SCALES = (0.85, 0.95, 1.05, 1.12)
N_POSES = 8
SHOULDER_Y = 0.185


def _arm_field(x: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """dx [N,3] that raises both arms by `angle` [N] about the shoulders (z axis), model units."""
    side = torch.sign(x[:, 0])
    pivot = torch.stack([0.085 * side, torch.full_like(side, SHOULDER_Y), torch.zeros_like(side)], 1)
    arm = ((x[:, 0].abs() > 0.09) & (x[:, 1] > -0.05)).float()
    a = angle * side * arm
    r = x - pivot
    rx = r[:, 0] * torch.cos(a) - r[:, 1] * torch.sin(a)
    ry = r[:, 0] * torch.sin(a) + r[:, 1] * torch.cos(a)
    return torch.stack([rx, ry, r[:, 2]], 1) + pivot - x


def _near_surface(n: int) -> torch.Tensor:
    """[4, n, 3] points within 0.03 of the capsule body (rejection sampling in its box)."""
    box = torch.rand(4 * n * 8, 3) * torch.tensor([0.6, 0.8, 0.2]) - torch.tensor([0.3, 0.42, 0.1])
    keep = box[analytic.body(box).abs() < 0.03]
    return keep[torch.randint(0, len(keep), (4 * n,))].view(4, n, 3)


def make_checkpoint(out, steps: int = 250, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    out = Path(out)
    shape = ShapeDecoder(CONFIG.shape)
    codes = torch.nn.Parameter(torch.randn(len(SCALES), CONFIG.shape.code_dim) * 0.1)
    opt = torch.optim.Adam([{"params": shape.parameters(), "lr": 5e-3}, {"params": [codes], "lr": 1e-2}])
    scales = torch.tensor(SCALES)
    for _ in range(steps):
        i = torch.randint(0, len(SCALES), (4,))
        x = torch.rand(4, 1000, 3) - 0.5
        near = _near_surface(600)
        x[:, :600] = near * scales[i][:, None, None]
        y = torch.stack([analytic.body(x[k] / scales[i[k]]) * scales[i[k]] for k in range(4)])
        loss = (shape(codes[i], x) - y.clamp(-0.1, 0.1)).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    labels = [
        {
            "identity": f"t{i}",
            "phenotypes": {"gender": i / 3, "weight": 0.5, "height": s / 1.2},
            "age_years": 20 + 10 * i,
        }
        for i, s in enumerate(SCALES)
    ]
    ckpt.save_stage(out, "shape", shape, codes.detach(), CONFIG, code_labels=labels)

    pose = PoseDecoder(CONFIG.pose, CONFIG.shape.code_dim)
    pcodes = torch.nn.Parameter(torch.randn(N_POSES, CONFIG.pose.code_dim) * 0.1)
    angles = torch.linspace(0.0, 1.2, N_POSES)
    opt = torch.optim.Adam([{"params": pose.parameters(), "lr": 3e-3}, {"params": [pcodes], "lr": 1e-2}])
    for _ in range(steps):
        i, j = torch.randint(0, len(SCALES), (4,)), torch.randint(0, N_POSES, (4,))
        x = (torch.rand(4, 500, 3) - 0.5) * torch.tensor([0.6, 0.8, 0.15])
        y = torch.stack([_arm_field(x[k], angles[j[k]].expand(500)) for k in range(4)])
        loss = (pose(codes.detach()[i], pcodes[j], x) - y).square().sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    raise_l, raise_r = bodies.JOINT_NAMES.index("shoulder_raise_l"), bodies.JOINT_NAMES.index("shoulder_raise_r")
    plabels = []
    for k in range(N_POSES):
        deg = [0.0] * len(bodies.JOINT_NAMES)
        deg[raise_l] = deg[raise_r] = math.degrees(float(angles[k]))
        plabels.append(
            {
                "motion": "arm_raise" if k < 5 else "wave",
                "frame": k if k < 5 else k - 5,
                "shape_index": 0,
                "angles": deg,
            }
        )
    ckpt.save_stage(out, "pose", pose, pcodes.detach(), CONFIG, code_labels=plabels)
    # 4 identities: a ridge map is the sensible phenotype map for so few (the MLP is for real checkpoints)
    semantics.save(semantics.compute(ckpt.load_model(out), shape_map="linear"), layout.checkpoint_semantics_path(out))
    return out


IMPORTED = {  # an imported mesh domain: 3 per-identity attributes, no joint angles, 3 model units per metre
    "name": "tiny-hands",
    "source": "meshes",
    "model_per_metre": 3.0,
    "centre_m": [0.0, 0.1, 0.0],
    "attributes": ["arch", "length_mm", "width_mm"],
}
ARCH = (0.2, 0.5, 0.3, 0.9)


def imported_attributes(i: int) -> dict:
    """Identity i's attributes, written in an order other than the sorted one semantics uses."""
    return {"width_mm": 80.0 + 5 * i, "length_mm": round(180.0 * SCALES[i], 3), "arch": ARCH[i]}


def make_imported(ckpt_dir, out) -> Path:
    """The tiny checkpoint's decoders and codes as a checkpoint of an imported domain (IMPORTED):
    its config names the domain, its shape codes are labelled by attributes instead of phenotypes,
    its pose codes by pose names without joint angles; semantics computed from those labels."""
    import shutil

    import yaml

    out = Path(out)
    shutil.copytree(ckpt_dir, out)
    (out / "semantics.npz").unlink()
    config = yaml.safe_load(layout.checkpoint_config_path(out).read_text())
    config["domain"] = dict(IMPORTED)
    layout.checkpoint_config_path(out).write_text(yaml.safe_dump(config, sort_keys=False))
    meta = yaml.safe_load(layout.checkpoint_meta_path(out).read_text())
    meta["shape"]["codes"] = [
        {"identity": f"hand{i}", "attributes": imported_attributes(i)} for i in range(len(SCALES))
    ]
    meta["pose"]["codes"] = [
        {"motion": "fist", "frame": k, "shape_index": 0, "identity": "hand0"} for k in range(N_POSES)
    ]
    layout.checkpoint_meta_path(out).write_text(yaml.safe_dump(meta, sort_keys=False))
    semantics.save(semantics.compute(ckpt.load_model(out), shape_map="linear"), layout.checkpoint_semantics_path(out))
    return out


def make_fit(ckpt_dir, fit_dir, seq_dir, frames: int = 8, resolution: int = 48) -> Path:
    """A fit result (shape 1, poses sweeping the arm-raise codes, a small drift) written by
    npm_core.fit.write_result, and a depth sequence whose gt is the same meshes leaning 0 (feet) to 2 cm (top) sideways."""
    from npm_core import space
    from npm_core.data.depth import Camera, write_sequence
    from npm_core.fit import FitConfig, FitResult, read_result, write_result

    model = ckpt.load_model(ckpt_dir)
    t = torch.linspace(0, 1, frames)
    p = model.pose_codes
    pose_codes = (1 - t)[:, None] * p[0] + t[:, None] * p[4]
    trans = torch.stack([t * 0.02, torch.zeros(frames), torch.zeros(frames)], 1)
    res = FitResult(
        model.shape_codes[1].clone(),
        pose_codes,
        trans,
        losses={"reconstruction": (0.01 + 0.002 * torch.sin(t * math.pi)).numpy()},
    )
    write_result(fit_dir, res, model, FitConfig(), "tiny", str(seq_dir), resolution=resolution)
    _, posed, faces = read_result(fit_dir).meshes()
    y = posed[..., 1:2]
    ramp = (y - y.min()) / max(float(y.max() - y.min()), 1e-6)  # 0 at the feet, 1 at the top
    gt = posed + 0.02 * ramp * np.array([1.0, 0.0, 0.0], np.float32)  # gt leans 0-2 cm sideways
    cam = Camera.looking_at_subject(160, 120, 2.8)
    depths = np.stack([_splat(cam, v) for v in gt])
    write_sequence(seq_dir, cam, depths, gt, faces)
    assert space.METRES_TO_MODEL == 0.4
    return Path(fit_dir)


def _splat(cam, verts: np.ndarray) -> np.ndarray:
    """Depth [H,W] metres by splatting vertices (nearest wins): enough for a test sequence."""
    u, v, z = cam.project(verts.astype(np.float64))
    d = np.zeros((cam.height, cam.width), np.float32)
    ui, vi = np.round(u).astype(int), np.round(v).astype(int)
    ok = (ui >= 0) & (ui < cam.width) & (vi >= 0) & (vi < cam.height) & (z > 0)
    order = np.argsort(-z[ok])  # far first, near overwrite
    d[vi[ok][order], ui[ok][order]] = z[ok][order]
    return d
