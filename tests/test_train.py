"""Training loops on synthetic data made in code: a family of spheres (shape stage) and an
icosphere under known per-frame affine deformations (pose stage). Convergence, determinism,
progress events, resume after SIGKILL, damaged training state."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from npm_core import layout
from npm_core.data.samples import FlowSamples, ShapeSamples
from npm_core.models import CheckpointError, DecoderConfig, ModelConfig, load_model
from npm_core.models import checkpoint as ckpt
from npm_core.models.decoders import ShapeDecoder
from npm_core.progress import read_events
from npm_core.train import TrainPoseConfig, TrainShapeConfig, pose_preset, shape_preset, train_pose, train_shape

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(DecoderConfig(64, 4, 8, 4, 2), DecoderConfig(64, 4, 8, 3, 2))
RADII = torch.linspace(0.15, 0.4, 6)


def spheres(n=4000, n_near=2800, seed=0) -> ShapeSamples:
    """SDF samples of spheres of radii RADII: sdf = |x| - r; near band +-0.05, uniform in the cube."""
    g = torch.Generator().manual_seed(seed)
    r = RADII[:, None, None]
    d = torch.randn(len(RADII), n_near, 3, generator=g)
    near = d / d.norm(dim=-1, keepdim=True) * (r + 0.05 * (2 * torch.rand(len(RADII), n_near, 1, generator=g) - 1))
    pts = torch.cat([near, torch.rand(len(RADII), n - n_near, 3, generator=g) - 0.5], 1)
    return ShapeSamples(pts, pts.norm(dim=-1) - RADII[:, None], n_near)


def shape_cfg(**kw) -> TrainShapeConfig:
    base = dict(
        epochs=60,
        batch_shapes=3,
        points_per_shape=1024,
        lr_net=3e-3,
        lr_codes=3e-2,
        lr_decay_every=30,
        prior_ramp_epochs=5,
        log_every_s=0.0,
    )
    return TrainShapeConfig(**{**base, **kw})


def icosphere(subdivisions=2):
    """(vertices [V, 3] on the unit sphere, faces [F, 3] int64, CCW outward)."""
    t = (1 + 5**0.5) / 2
    v = [
        [-1, t, 0],
        [1, t, 0],
        [-1, -t, 0],
        [1, -t, 0],
        [0, -1, t],
        [0, 1, t],
        [0, -1, -t],
        [0, 1, -t],
        [t, 0, -1],
        [t, 0, 1],
        [-t, 0, -1],
        [-t, 0, 1],
    ]
    f = [
        [0, 11, 5],
        [0, 5, 1],
        [0, 1, 7],
        [0, 7, 10],
        [0, 10, 11],
        [1, 5, 9],
        [5, 11, 4],
        [11, 10, 2],
        [10, 7, 6],
        [7, 1, 8],
        [3, 9, 4],
        [3, 4, 2],
        [3, 2, 6],
        [3, 6, 8],
        [3, 8, 9],
        [4, 9, 5],
        [2, 4, 11],
        [6, 2, 10],
        [8, 6, 7],
        [9, 8, 1],
    ]
    for _ in range(subdivisions):
        mid, nf = {}, []

        def m(a, b, mid=mid):
            key = (min(a, b), max(a, b))
            if key not in mid:
                mid[key] = len(v)
                v.append([(v[a][i] + v[b][i]) / 2 for i in range(3)])
            return mid[key]

        for a, b, c in f:
            ab, bc, ca = m(a, b), m(b, c), m(c, a)
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        f = nf
    v = torch.tensor(v, dtype=torch.float32)
    return v / v.norm(dim=-1, keepdim=True), torch.tensor(f)


def deformed_spheres(frames=12, samples=600, seed=0) -> FlowSamples:
    """Two identities (radius 0.2, 0.3); frame t bends and stretches one of them: y = A_t x + bend + b_t."""
    g = torch.Generator().manual_seed(seed)
    v, f = icosphere()
    canon = torch.stack([0.2 * v, 0.3 * v])
    frame_shape = torch.arange(frames) % 2
    posed = []
    for t in range(frames):
        a = 0.3 * torch.sin(torch.tensor(t * 0.7))
        A = torch.eye(3) + torch.tensor([[0.2 * a, a, 0.0], [0.0, -0.1 * a, 0.0], [0.0, 0.0, 0.15 * a]])
        x = canon[frame_shape[t]]
        bend = torch.stack([torch.zeros_like(x[:, 0]), 2 * a * x[:, 0] ** 2, torch.zeros_like(x[:, 0])], -1)
        posed.append(x @ A.T + bend + torch.tensor([0.02 * a, 0.0, -0.01 * a]))
    I, S = 2, samples
    bary = torch.rand(I, S, 3, generator=g)
    sigma_index = (torch.arange(S) >= S // 2).long()
    sigma = torch.tensor([0.002, 0.01])[sigma_index]
    return FlowSamples(
        canon,
        torch.stack(posed),
        frame_shape,
        f,
        torch.randint(0, len(f), (I, S), generator=g),
        bary / bary.sum(-1, keepdim=True),
        sigma * (2 * torch.rand(I, S, generator=g) - 1),
        sigma_index,
    )


# -------------------------------------------------------------------- shape stage


def test_shape_training_learns_the_sphere_family(tmp_path):
    events = []
    res = train_shape(
        spheres(),
        shape_cfg(),
        TINY,
        tmp_path,
        progress=events.append,
        code_labels=[{"id": f"r{float(r):.2f}"} for r in RADII],
    )
    first, last = res.history[0]["sdf"], res.history[-1]["sdf"]
    assert last < 0.15 * first, (first, last)
    # each learned code reproduces its own sphere: zero crossing along rays at the right radius
    m = load_model(tmp_path)
    t = torch.linspace(0.05, 0.48, 200)
    dirs = torch.nn.functional.normalize(torch.randn(8, 3, generator=torch.Generator().manual_seed(5)), dim=-1)
    x = (dirs[:, None] * t[None, :, None]).reshape(-1, 3)
    for i, r in enumerate(RADII):
        with torch.inference_mode():
            sdf = m.shape_decoder.sdf_fn(m.shape_codes[i])(x).reshape(8, -1)
        crossing = t[(sdf < 0).sum(1)]  # first t with sdf >= 0 (monotone along a ray)
        assert (crossing - r).abs().max() < 0.03, (float(r), crossing)
    assert m.meta["shape"]["codes"][0] == {"id": "r0.15"} and m.meta["shape"]["epochs"] == 60
    assert m.sections["train_shape"]["epochs"] == 60
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and events[-1].done and kinds.count("epoch") == 60
    logged, _ = read_events(layout.checkpoint_progress_path(tmp_path))
    assert [e.kind for e in logged] == kinds and logged[-2].samples_per_s > 0


def test_shape_training_is_deterministic():
    a = train_shape(spheres(), shape_cfg(epochs=4), TINY)
    b = train_shape(spheres(), shape_cfg(epochs=4), TINY)
    c = train_shape(spheres(), shape_cfg(epochs=4, seed=1), TINY)
    assert a.history == b.history and torch.equal(a.codes, b.codes)
    assert a.history != c.history


def test_presets():
    assert shape_preset("paper").points_per_shape == 50_000 and shape_preset("paper").epochs == 4000
    assert pose_preset("paper").lr_decay_every == 30 and pose_preset("fast") == TrainPoseConfig()
    with pytest.raises(ValueError):
        shape_preset("slow")


def test_cli_preset_choices_are_the_registries():
    import argparse

    from npm_core import cli, train
    from npm_core.models.decoders import MODEL_PRESETS

    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    preset = next(a for a in sub.choices["train"]._actions if a.dest == "preset")
    assert sorted(preset.choices) == sorted(train.PRESETS) == sorted(MODEL_PRESETS) == ["fast", "paper"]


# --------------------------------------------------------------------- pose stage


def test_pose_training_reduces_flow_error(tmp_path):
    flow = deformed_spheres()
    shape_codes = torch.randn(2, TINY.shape.code_dim) * 0.1
    x, y = flow.pairs(torch.arange(flow.num_frames), torch.arange(600).expand(flow.num_frames, -1))
    identity_epe = (x - y).norm(dim=-1).mean()
    cfg = TrainPoseConfig(
        epochs=80,
        batch_frames=4,
        points_per_frame=256,
        lr_net=3e-3,
        lr_codes=3e-2,
        lr_decay_every=40,
        prior_ramp_epochs=5,
        log_every_s=0.0,
    )
    labels = [{"motion": "bend", "frame": t, "shape_index": int(flow.frame_shape[t])} for t in range(flow.num_frames)]
    res = train_pose(flow, None, shape_codes, cfg, TINY, tmp_path, code_labels=labels)
    assert res.history[-1]["flow"] < 0.05 * res.history[0]["flow"]
    with torch.inference_mode():
        dx = res.decoder(shape_codes[flow.frame_shape], res.codes, x)
    epe = (x + dx - y).norm(dim=-1).mean()
    assert epe < 0.25 * identity_epe, (float(epe), float(identity_epe))
    assert layout.checkpoint_stage_path(tmp_path, "pose").exists() and (tmp_path / "meta.yaml").exists()
    assert ckpt.load_train_state(tmp_path, "pose")["epoch"] == 80


# ---------------------------------------------------------------- resume, damage

SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    sys.path[:0] = [{root!r}, {tests!r}]
    from test_train import spheres, shape_cfg, TINY
    from npm_core.train import train_shape
    train_shape(spheres(), shape_cfg(epochs=int(sys.argv[2]), points_per_shape=2048), TINY, sys.argv[1])
""")


def _run_script(tmp_path, out, epochs, **kw):
    script = tmp_path / "run.py"
    if not script.exists():
        script.write_text(SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    return subprocess.Popen(
        [sys.executable, str(script), str(out), str(epochs)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw
    )


def test_resume_after_sigkill(tmp_path):
    out, ref = tmp_path / "run", tmp_path / "ref"
    proc = _run_script(tmp_path, out, 150)
    ref_proc = _run_script(tmp_path, ref, 150)  # uninterrupted, for comparison (runs alongside)
    log = layout.checkpoint_progress_path(out)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:  # kill once a few epochs are saved
        events, _ = read_events(log)
        if any(e.kind == "epoch" and e.epoch >= 3 for e in events):
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed; make the test config slower"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = ckpt.load_train_state(out, "shape")["epoch"]
    assert 3 <= saved < 150 and not layout.checkpoint_stage_path(out, "shape").exists()

    assert _run_script(tmp_path, out, 150).wait() == 0  # the same command resumes
    events, _ = read_events(log)
    resume = [e for e in events if e.kind == "resume"]
    assert len(resume) == 1 and resume[0].epoch == saved
    assert [e.epoch for e in events if e.kind == "epoch"][-1] == 150 and events[-1].done
    state = ckpt.load_train_state(out, "shape")
    assert [h["epoch"] for h in state["history"]] == list(range(1, 151))

    # the loss curve continues exactly where it stopped: same as one uninterrupted run
    assert ref_proc.wait() == 0
    ref_state = ckpt.load_train_state(ref, "shape")
    assert state["history"] == ref_state["history"]
    assert torch.equal(load_model(out).shape_codes, load_model(ref).shape_codes)


def test_damaged_training_state_is_a_clear_error(tmp_path):
    train_shape(spheres(), shape_cfg(epochs=2), TINY, tmp_path)
    path = layout.checkpoint_train_state_path(tmp_path, "shape")
    # more epochs on the same config: resumes from epoch 2
    res = train_shape(spheres(), shape_cfg(epochs=3), TINY, tmp_path)
    assert res.resumed_from_epoch == 2 and len(res.history) == 3
    with pytest.raises(CheckpointError, match="another config"):
        train_shape(spheres(), shape_cfg(epochs=4, lr_net=1e-2), TINY, tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"train_shape\.state\.pt.*delete it.*truncated or corrupted"):
        train_shape(spheres(), shape_cfg(epochs=4), TINY, tmp_path)
    # resume=False ignores (and later overwrites) the damaged state
    res = train_shape(spheres(), shape_cfg(epochs=1), TINY, tmp_path, resume=False)
    assert res.resumed_from_epoch == 0 and ckpt.load_train_state(tmp_path, "shape")["epoch"] == 1


# ------------------------------------------------------------ distributed, fine-tuning

DIST_SCRIPT = textwrap.dedent("""
    import os, sys, torch
    torch.set_num_threads(1)
    sys.path[:0] = [{root!r}, {tests!r}]
    from test_train import spheres, shape_cfg, deformed_spheres, pose_cfg_small, TINY
    from npm_core.cli import _init_distributed
    from npm_core.train import train_pose, train_shape
    os.environ.update(RANK=sys.argv[2], WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=sys.argv[3])
    dist = _init_distributed("cpu")
    out = sys.argv[1] if dist.rank == 0 else sys.argv[1] + "-rank1"  # rank 1 must write nothing
    train_shape(spheres(), shape_cfg(epochs=6), TINY, out)
    train_pose(deformed_spheres(), None, torch.zeros(2, TINY.shape.code_dim), pose_cfg_small(), TINY, out)
    dist.close()
""")


def pose_cfg_small() -> TrainPoseConfig:
    return TrainPoseConfig(epochs=4, batch_frames=3, points_per_frame=256, log_every_s=0.0)


def test_two_gloo_processes_match_one_process(tmp_path):
    """`torchrun --nproc_per_node 2 npms train`: each process takes its rows of every batch and the
    gradients are summed, so two processes follow one process's run up to float summation order."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    script = tmp_path / "dist.py"
    script.write_text(DIST_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    out = tmp_path / "two"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(out), str(r), port], stderr=subprocess.PIPE)
        for r in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read().decode()[-2000:]
    assert not (tmp_path / "two-rank1").exists()

    one = tmp_path / "one"
    shape = train_shape(spheres(), shape_cfg(epochs=6), TINY, one)
    pose = train_pose(deformed_spheres(), None, torch.zeros(2, TINY.shape.code_dim), pose_cfg_small(), TINY, one)
    two = load_model(out)
    assert torch.allclose(two.shape_codes, shape.codes, atol=1e-4), (two.shape_codes - shape.codes).abs().max()
    assert torch.allclose(two.pose_codes, pose.codes, atol=1e-4), (two.pose_codes - pose.codes).abs().max()
    for a, b in zip(two.shape_decoder.state_dict().values(), shape.decoder.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-4)
    logged = ckpt.load_train_state(out, "shape")["history"]
    assert [round(h["sdf"], 5) for h in logged] == [round(h["sdf"], 5) for h in shape.history]
    assert shape.history[-1]["sdf"] < 0.8 * shape.history[0]["sdf"]  # the compared runs did learn


def test_init_from_another_decoder(tmp_path):
    """--init-from: the decoder starts from a trained one (lower first-epoch loss than the default
    init); a decoder of other sizes is refused by name."""
    trained = train_shape(spheres(), shape_cfg(epochs=30), TINY)
    fresh = train_shape(spheres(), shape_cfg(epochs=1), TINY)
    tuned = train_shape(spheres(), shape_cfg(epochs=1), TINY, init_decoder=trained.decoder.state_dict())
    assert tuned.history[0]["sdf"] < 0.7 * fresh.history[0]["sdf"]
    other = ModelConfig(DecoderConfig(96, 4, 8, 4, 2), TINY.pose)
    with pytest.raises(CheckpointError, match="other sizes"):
        train_shape(spheres(), shape_cfg(epochs=1), other, init_decoder=trained.decoder.state_dict())


def test_init_codes_stay_with_a_frozen_code_rate():
    """init_codes: training starts from given codes; with lr_codes 0 they come back unchanged."""
    trained = train_shape(spheres(), shape_cfg(epochs=30), TINY)
    tuned = train_shape(
        spheres(),
        shape_cfg(epochs=2, lr_codes=0.0),
        TINY,
        init_decoder=trained.decoder.state_dict(),
        init_codes=trained.codes,
    )
    assert torch.equal(tuned.codes, trained.codes)
    assert tuned.history[0]["sdf"] < 1.5 * trained.history[-1]["sdf"]
    with pytest.raises(ValueError, match="init_codes"):
        train_shape(spheres(), shape_cfg(epochs=1), TINY, init_codes=trained.codes[:2])


@pytest.mark.parametrize(
    "sizes", [{}, {"width": 80}, {"depth": 6}, {"pe_freqs": 5}, {"width": 96, "depth": 5, "pe_freqs": 6}]
)
def test_grown_shape_decoder_computes_the_same(sizes):
    """grow_shape_decoder: wider, deeper, more PE frequencies, or all three, the same SDF to float
    rounding (batched forward and sdf_fn); shrinking is refused by name."""
    from npm_core.models.decoders import grow_shape_decoder

    torch.manual_seed(0)
    old = ShapeDecoder(TINY.shape)
    with torch.no_grad():  # a non-trivial function: the default output layer is near zero
        old.out.weight.normal_(0, 0.5)
    big = grow_shape_decoder(old, **sizes)
    for k, v in sizes.items():
        assert getattr(big.cfg, k) == v
    codes, x = torch.randn(3, TINY.shape.code_dim), torch.rand(3, 500, 3) - 0.5
    assert old(codes, x).abs().max() > 1e-2
    assert torch.allclose(big(codes, x), old(codes, x), atol=1e-6)
    assert torch.allclose(big.sdf_fn(codes[1])(x[1]), old.sdf_fn(codes[1])(x[1]), atol=1e-6)
    with pytest.raises(ValueError, match="width must grow"):
        grow_shape_decoder(old, width=TINY.shape.width, pe_freqs=TINY.shape.pe_freqs + 1)


def test_tune_shape_keeps_the_codes_and_lowers_the_loss(tmp_path):
    """tune_shape: the decoder (grown here) trains on while the codes stay bit-equal, and the
    loss goes below the trained model's last epoch."""
    from npm_core.train import tune_shape

    trained = train_shape(spheres(), shape_cfg(epochs=30), TINY, tmp_path / "a")
    m = load_model(tmp_path / "a")
    res = tune_shape(m, spheres(), shape_cfg(epochs=10, lr_net=2e-4, lr_codes=1.0), tmp_path / "b", {"depth": 5})
    assert torch.equal(res.codes, trained.codes)
    assert res.decoder.cfg.depth == 5 and load_model(tmp_path / "b").config.shape.depth == 5
    assert res.history[-1]["sdf"] < trained.history[-1]["sdf"]
