"""Auto-decoder training of an NPM (NPMs section 3.2): the shape stage, then the pose stage.

Shape stage: one learned code s_i per training identity, and f_s(s_i, x) fitted to SDF samples
    L = | clamp(f_s(s_i, x), +-c) - clamp(sdf, +-c) |  +  w * min(1, epoch / ramp) * mean(s_i^2)
with points drawn per step: 70% from the near-surface columns, 30% uniform in the cube.
Pose stage: shape decoder and shape codes frozen; one code p_t per training frame, and
    L = mean ||x + f_p(s_i(t), p_t, x) - y||^2 / 2  +  w * min(1, epoch / ramp) * mean(p_t^2)
over flow pairs (canonical x -> posed y), half from each sigma set.
Both: Adam with two parameter groups (network, codes), lr x decay every `lr_decay_every` epochs,
codes initialised N(0, (1/D)^2). Presets (PRESETS): `paper` (the reference's settings,
docs/design.md "Training") and `fast` (ours, the default, about an hour per stage on 2 CPU cores).

Resumable: after every `checkpoint_every_epochs` epochs the whole training state (network,
codes, optimiser, epoch, sampling RNG, loss history, time) is written atomically to the
checkpoint directory, so a SIGKILL loses at most that many epochs and the same call resumes.
Seeded and deterministic on CPU: the same seed gives the same losses, resumed or not.
Progress: `progress(ProgressEvent)` callbacks, and the same events in <out_dir>/progress.jsonl.

Must not: know file names (layout.py does) or build data (data/ does).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from . import layout
from .config import to_dict
from .data.samples import FlowSamples, ShapeSamples
from .models import checkpoint as ckpt
from .models.decoders import ModelConfig, PoseDecoder, ShapeDecoder, grow_shape_decoder, model_preset
from .progress import JsonlLog, ProgressEvent, ProgressFn


@dataclass
class TrainShapeConfig:
    epochs: int = 120  # one epoch = every training identity once
    batch_shapes: int = 8
    points_per_shape: int = 4096
    near_fraction: float = 0.7
    lr_net: float = 1e-3
    lr_codes: float = 1e-2
    lr_decay: float = 0.5
    lr_decay_every: int = 40  # epochs
    clamp: float = 0.1  # model units
    prior_weight: float = 1e-4
    prior_ramp_epochs: int = 20
    seed: int = 0
    checkpoint_every_epochs: int = 1
    log_every_s: float = 2.0
    device: str = "cpu"


@dataclass
class TrainPoseConfig:
    epochs: int = 60  # one epoch = every training frame once
    batch_frames: int = 16
    points_per_frame: int = 512
    lr_net: float = 1e-3
    lr_codes: float = 1e-2
    lr_decay: float = 0.5
    lr_decay_every: int = 20
    prior_weight: float = 1e-4
    prior_ramp_epochs: int = 10
    seed: int = 0
    checkpoint_every_epochs: int = 1
    log_every_s: float = 2.0
    device: str = "cpu"


@dataclass(frozen=True)
class TrainPreset:
    shape: Callable[[], TrainShapeConfig]
    pose: Callable[[], TrainPoseConfig]


PRESETS = {
    "fast": TrainPreset(TrainShapeConfig, TrainPoseConfig),
    "paper": TrainPreset(
        lambda: TrainShapeConfig(
            epochs=4000,
            batch_shapes=4,
            points_per_shape=50_000,
            lr_net=5e-4,
            lr_codes=1e-3,
            lr_decay_every=500,
            prior_ramp_epochs=100,
        ),
        lambda: TrainPoseConfig(
            epochs=200,
            batch_frames=2,
            points_per_frame=50_000,
            lr_net=5e-4,
            lr_codes=1e-3,
            lr_decay_every=30,
            prior_ramp_epochs=100,
        ),
    ),
}


def _preset(name: str) -> TrainPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown training preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


def shape_preset(name: str) -> TrainShapeConfig:
    return _preset(name).shape()


def pose_preset(name: str) -> TrainPoseConfig:
    return _preset(name).pose()


@dataclass
class TrainResult:
    decoder: nn.Module
    codes: torch.Tensor  # [K, D]
    history: list[dict] = field(default_factory=list)  # per epoch: {"epoch", "lr_net", losses...}
    seconds: float = 0.0  # training time over all sessions
    resumed_from_epoch: int = 0  # 0 = started fresh


# ------------------------------------------------------------------ shape stage


def train_shape(
    samples: ShapeSamples,
    cfg: TrainShapeConfig | None = None,
    model_cfg: ModelConfig | None = None,
    out_dir=None,
    progress: ProgressFn | None = None,
    resume: bool = True,
    code_labels: list[dict] | None = None,
    sections: dict | None = None,
    init_decoder: dict | None = None,
    init_codes: torch.Tensor | None = None,
) -> TrainResult:
    """Train f_s and one code per identity on `samples` (points [I, N, 3] canonical, sdf [I, N]).

    Writes <out_dir>/shape.pt (+ config.yaml, meta.yaml) at the end; resumes from the training
    state in out_dir when `resume`. code_labels: one dict per identity for meta.yaml;
    sections: extra config.yaml sections (e.g. {"data": DataConfig}); init_decoder: a state dict of
    the same decoder (another checkpoint's) to start from instead of the default init; init_codes
    [I, D]: codes to start from (with lr_codes 0 they stay, so a trained pose stage stays valid)."""
    cfg, model_cfg = cfg or TrainShapeConfig(), model_cfg or model_preset("fast")
    dev = torch.device(cfg.device)
    I, N, D = samples.num_shapes, samples.points.shape[1], model_cfg.shape.code_dim

    # model and codes: default PyTorch init, codes ~ N(0, (1/D)^2)
    torch.manual_seed(cfg.seed)
    decoder = ShapeDecoder(model_cfg.shape).to(dev)
    _init_from(decoder, init_decoder)
    codes = nn.Parameter((torch.randn(I, D) / D).to(dev))
    if init_codes is not None:
        if tuple(init_codes.shape) != (I, D):
            raise ValueError(f"init_codes: expected [{I}, {D}] (identities, code size), got {list(init_codes.shape)}")
        with torch.no_grad():
            codes.copy_(init_codes)
    opt = torch.optim.Adam(
        [{"params": decoder.parameters(), "lr": cfg.lr_net}, {"params": [codes], "lr": cfg.lr_codes}]
    )
    gen = torch.Generator().manual_seed(cfg.seed)  # drives all sampling (CPU, so runs are reproducible)
    run = _Run("shape", out_dir, cfg, model_cfg, progress, steps_per_epoch=math.ceil(I / cfg.batch_shapes))
    run.restore(resume, decoder, codes, opt, gen)

    points, sdf = samples.points.to(dev), samples.sdf.to(dev)
    n_near = samples.n_near
    k_near = (
        round(cfg.points_per_shape * cfg.near_fraction) if 0 < n_near < N else (cfg.points_per_shape if n_near else 0)
    )
    k_unif = cfg.points_per_shape - k_near
    c = cfg.clamp
    for epoch in range(run.epoch, cfg.epochs):
        for g, lr in zip(opt.param_groups, (cfg.lr_net, cfg.lr_codes)):
            g["lr"] = lr * cfg.lr_decay ** (epoch // cfg.lr_decay_every)
        prior_w = (
            cfg.prior_weight * min(1.0, epoch / cfg.prior_ramp_epochs) if cfg.prior_ramp_epochs else cfg.prior_weight
        )
        for batch in torch.randperm(I, generator=gen).split(cfg.batch_shapes):
            # K points per shape: near-surface columns [:n_near], uniform columns [n_near:]
            cols = torch.cat(
                [
                    torch.randint(0, n_near, (len(batch), k_near), generator=gen),
                    torch.randint(n_near, N, (len(batch), k_unif), generator=gen),
                ],
                1,
            ).to(dev)
            mine = run.share(len(batch))  # this process's rows of the batch (all of them unless distributed)
            b, cols = batch[mine].to(dev), cols[mine]
            x = torch.gather(points[b], 1, cols[..., None].expand(-1, -1, 3))  # [b, K, 3] canonical
            y = torch.gather(sdf[b], 1, cols)  # [b, K]

            pred = decoder(codes[b], x)
            # batch means written as sums over this process's rows / the whole batch's size
            loss_sdf = (pred.clamp(-c, c) - y.clamp(-c, c)).abs().mean(-1).sum() / len(batch)
            loss_prior = prior_w * codes[b].square().mean(-1).sum() / len(batch)
            loss = loss_sdf + loss_prior
            opt.zero_grad(set_to_none=False)
            loss.backward()
            run.reduce_gradients(decoder, codes)
            opt.step()
            run.step(len(batch) * cfg.points_per_shape, run.reduce_losses(total=loss, sdf=loss_sdf, prior=loss_prior))
        run.end_epoch(epoch, opt, decoder, codes, gen)

    return run.finish(decoder, codes, code_labels, sections, metrics={"sdf_l1_last_epoch": run.last("sdf")})


def tune_shape(
    model,
    samples: ShapeSamples,
    cfg: TrainShapeConfig,
    out_dir=None,
    sizes: dict | None = None,
    progress: ProgressFn | None = None,
    code_labels: list[dict] | None = None,
    sections: dict | None = None,
) -> TrainResult:
    """Train a trained model's shape decoder further with its shape codes frozen, so its pose stage
    (conditioned on those codes) stays valid; first grown to `sizes`
    ({"width", "depth", "pe_freqs"}; grow_shape_decoder) when given. cfg's lr_codes and prior
    ramp are ignored (0). Resumes from out_dir like train_shape."""
    big = grow_shape_decoder(model.shape_decoder, **(sizes or {}))
    x = torch.rand(1, 4096, 3, generator=torch.Generator().manual_seed(0)) - 0.5
    with torch.no_grad():
        gap = (big(model.shape_codes[:1], x) - model.shape_decoder(model.shape_codes[:1], x)).abs().max().item()
    if gap > 1e-5:
        raise RuntimeError(f"the grown shape decoder differs from the trained one by {gap:.1e} before training")
    model_cfg = ModelConfig(big.cfg, model.config.pose)
    cfg = replace(cfg, lr_codes=0.0, prior_ramp_epochs=0)
    res = train_shape(
        samples,
        cfg,
        model_cfg,
        out_dir,
        progress,
        code_labels=code_labels,
        sections=sections,
        init_decoder=big.state_dict(),
        init_codes=model.shape_codes,
    )
    if not torch.equal(res.codes, model.shape_codes.to(res.codes.device)):
        raise RuntimeError("the shape codes moved; the pose stage would no longer match them")
    return res


# ------------------------------------------------------------------- pose stage


def train_pose(
    flow: FlowSamples,
    shape_decoder: ShapeDecoder | None,
    shape_codes: torch.Tensor,
    cfg: TrainPoseConfig | None = None,
    model_cfg: ModelConfig | None = None,
    out_dir=None,
    progress: ProgressFn | None = None,
    resume: bool = True,
    code_labels: list[dict] | None = None,
    sections: dict | None = None,
    init_decoder: dict | None = None,
) -> TrainResult:
    """Train f_p and one code per frame on flow pairs; shape codes [I, Ds] (rows = flow.frame_shape) frozen.

    The shape decoder is frozen and not needed by the flow loss (it may be None); it is part
    of the signature so a caller hands the pose stage the whole trained shape model."""
    cfg, model_cfg = cfg or TrainPoseConfig(), model_cfg or model_preset("fast")
    dev = torch.device(cfg.device)
    T, D = flow.num_frames, model_cfg.pose.code_dim
    if shape_codes.shape[1] != model_cfg.shape.code_dim:
        raise ValueError(
            f"shape codes have {shape_codes.shape[1]} dims, the model config says {model_cfg.shape.code_dim}"
        )
    if shape_decoder is not None:
        shape_decoder.requires_grad_(False)
    shape_codes = shape_codes.detach().to(dev)

    torch.manual_seed(cfg.seed)
    decoder = PoseDecoder(model_cfg.pose, model_cfg.shape.code_dim).to(dev)
    _init_from(decoder, init_decoder)
    codes = nn.Parameter((torch.randn(T, D) / D).to(dev))
    opt = torch.optim.Adam(
        [{"params": decoder.parameters(), "lr": cfg.lr_net}, {"params": [codes], "lr": cfg.lr_codes}]
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    run = _Run("pose", out_dir, cfg, model_cfg, progress, steps_per_epoch=math.ceil(T / cfg.batch_frames))
    run.restore(resume, decoder, codes, opt, gen)

    # flow samples split by sigma set; each step draws the same number from every set
    sets = [torch.nonzero(flow.sigma_index == k)[:, 0] for k in torch.unique(flow.sigma_index)]
    per_set = [cfg.points_per_frame // len(sets)] * len(sets)
    per_set[0] += cfg.points_per_frame - sum(per_set)
    frame_shape = flow.frame_shape.to(dev)
    for epoch in range(run.epoch, cfg.epochs):
        for g, lr in zip(opt.param_groups, (cfg.lr_net, cfg.lr_codes)):
            g["lr"] = lr * cfg.lr_decay ** (epoch // cfg.lr_decay_every)
        prior_w = (
            cfg.prior_weight * min(1.0, epoch / cfg.prior_ramp_epochs) if cfg.prior_ramp_epochs else cfg.prior_weight
        )
        for frames in torch.randperm(T, generator=gen).split(cfg.batch_frames):
            idx = torch.cat(
                [s[torch.randint(0, len(s), (len(frames), k), generator=gen)] for s, k in zip(sets, per_set)], 1
            )
            mine = run.share(len(frames))
            x, y = flow.pairs(frames[mine], idx[mine])  # [b, K, 3] canonical -> posed
            x, y, f = x.to(dev), y.to(dev), frames[mine].to(dev)

            dx = decoder(shape_codes[frame_shape[f]], codes[f], x)
            sq = (x + dx - y).square().sum(-1)  # [b, K]
            loss_flow = (sq / 2).mean(-1).sum() / len(frames)
            loss_prior = prior_w * codes[f].square().mean(-1).sum() / len(frames)
            loss = loss_flow + loss_prior
            opt.zero_grad(set_to_none=False)
            loss.backward()
            run.reduce_gradients(decoder, codes)
            opt.step()
            epe = sq.detach().sqrt().mean(-1).sum() / len(frames)
            run.step(
                len(frames) * cfg.points_per_frame,
                run.reduce_losses(total=loss, flow=loss_flow, prior=loss_prior, epe=epe),
            )
        run.end_epoch(epoch, opt, decoder, codes, gen)

    return run.finish(
        decoder,
        codes,
        code_labels,
        sections,
        metrics={"flow_loss_last_epoch": run.last("flow"), "epe_last_epoch": run.last("epe")},
    )


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) of a torch.distributed run (`torchrun ... npms train`), else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _init_from(decoder: nn.Module, state: dict | None) -> None:
    """Start from another checkpoint's decoder weights (fine-tuning); the codes start afresh."""
    if state is None:
        return
    try:
        decoder.load_state_dict(state)
    except RuntimeError as e:
        raise ckpt.CheckpointError(f"the decoder to start from has other sizes ({str(e)[:300]})") from None


# ----------------------------------------------------- bookkeeping (state, progress)


_NOT_COMPARED = {"epochs", "checkpoint_every_epochs", "log_every_s", "device"}  # may change between resumes


class _Run:
    """Epoch counter, loss history, timing, progress events and the resumable state of one stage."""

    def __init__(self, stage, out_dir, cfg, model_cfg, progress, steps_per_epoch):
        self.stage, self.cfg, self.model_cfg = stage, cfg, model_cfg
        self.rank, self.world = distributed_rank()
        self.out = Path(out_dir) if out_dir is not None else None
        self.writes = self.out is not None and self.rank == 0  # one process writes state, log and result
        self.callbacks = [
            c
            for c in (progress, JsonlLog(layout.checkpoint_progress_path(self.out)) if self.writes else None)
            if c and self.rank == 0
        ]
        self.steps_per_epoch = steps_per_epoch
        self.epoch, self.global_step, self.history, self.prior_seconds, self.resumed_from = 0, 0, [], 0.0, 0
        self.sums, self.count = {}, 0
        self.t0 = self.t_log = time.time()
        self.steps_here = self.samples_window = self.samples_epoch = 0
        self.t_epoch = self.t0

    def _state_cfg(self):
        d = to_dict(self.cfg)
        return {k: v for k, v in d.items() if k not in _NOT_COMPARED}

    def restore(self, resume, decoder, codes, opt, gen):
        state = ckpt.load_train_state(self.out, self.stage) if (resume and self.out) else None
        kind = "start"
        if state is not None:
            path = layout.checkpoint_train_state_path(self.out, self.stage)
            if state["train_config"] != self._state_cfg() or state["model_config"] != to_dict(self.model_cfg):
                raise ckpt.CheckpointError(
                    f"{path}: saved by a run with another config; resume with the same config "
                    f"or delete it to start over (saved {state['train_config']}, "
                    f"model {state['model_config']})"
                )
            try:
                decoder.load_state_dict(state["decoder"])
                with torch.no_grad():
                    codes.copy_(state["codes"])
                opt.load_state_dict(state["optimizer"])
            except (RuntimeError, KeyError, ValueError) as e:
                raise ckpt.CheckpointError(f"{path}: does not match this model ({str(e)[:300]})") from None
            gen.set_state(state["rng"])
            self.epoch, self.global_step = int(state["epoch"]), int(state["step"])
            self.history, self.prior_seconds = list(state["history"]), float(state["seconds"])
            self.resumed_from, kind = self.epoch, "resume"
        self.emit(kind)

    def share(self, n: int) -> torch.Tensor:
        """Indices of this process's rows of a batch of n: every world-th row from its rank. Every
        process draws the same batches and samples (one seeded generator), so the rows partition it."""
        return torch.arange(self.rank, n, self.world)

    def reduce_gradients(self, decoder, codes):
        """Sum the gradients over the processes: with losses written as sums over rows / the batch size,
        the sum is the whole batch's gradient, so every process takes the same optimiser step."""
        if self.world == 1:
            return
        import torch.distributed as dist

        grads = [p.grad for p in decoder.parameters()] + [codes.grad]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def reduce_losses(self, **losses) -> dict:
        """The whole batch's losses (summed over the processes) as floats."""
        values = torch.stack([v.detach().reshape(()) for v in losses.values()])
        if self.world > 1:
            import torch.distributed as dist

            dist.all_reduce(values)
        return dict(zip(losses, values.tolist()))

    def step(self, n_samples, losses):
        self.global_step += 1
        self.steps_here += 1
        self.samples_window += n_samples
        self.samples_epoch += n_samples
        for k, v in losses.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.count += 1
        now = time.time()
        if now - self.t_log >= self.cfg.log_every_s:
            self.emit("step", losses, self.samples_window / (now - self.t_log))
            self.t_log, self.samples_window = now, 0

    def end_epoch(self, epoch, opt, decoder, codes, gen):
        self.epoch = epoch + 1
        row = {
            "epoch": self.epoch,
            "lr_net": opt.param_groups[0]["lr"],
            **{k: v / self.count for k, v in self.sums.items()},
        }
        self.history.append(row)
        self.sums, self.count = {}, 0
        if self.rank == 0:
            print(
                f"{self.stage} epoch {self.epoch}/{self.cfg.epochs} "
                + " ".join(f"{k} {v:.3g}" for k, v in row.items() if k != "epoch")
                + f" | {self.samples_epoch / max(time.time() - self.t_epoch, 1e-9):.0f} points/s",
                flush=True,
            )
        last = self.epoch == self.cfg.epochs
        if self.writes and (last or self.epoch % self.cfg.checkpoint_every_epochs == 0):
            ckpt.save_train_state(
                self.out,
                self.stage,
                {
                    "epoch": self.epoch,
                    "step": self.global_step,
                    "decoder": decoder.state_dict(),
                    "codes": codes.detach().cpu(),
                    "optimizer": opt.state_dict(),
                    "rng": gen.get_state(),
                    "history": self.history,
                    "seconds": self.seconds(),
                    "train_config": self._state_cfg(),
                    "model_config": to_dict(self.model_cfg),
                },
            )
        now = time.time()
        rate = self.samples_epoch / max(now - self.t_epoch, 1e-9)
        self.t_epoch, self.samples_epoch = now, 0
        self.emit("epoch", {k: v for k, v in row.items() if k not in ("epoch", "lr_net")}, rate)

    def seconds(self):
        return self.prior_seconds + time.time() - self.t0

    def last(self, key):
        return float(self.history[-1][key]) if self.history and key in self.history[-1] else None

    def emit(self, kind, losses=None, samples_per_s=0.0):
        here = time.time() - self.t0
        remaining = self.cfg.epochs * self.steps_per_epoch - self.global_step
        eta = here / self.steps_here * remaining if self.steps_here else 0.0
        ev = ProgressEvent(
            self.stage,
            self.global_step,
            self.epoch,
            self.cfg.epochs,
            dict(losses or {}),
            samples_per_s,
            eta,
            kind == "done",
            kind,
            time.time(),
        )
        for cb in self.callbacks:
            cb(ev)

    def finish(self, decoder, codes, code_labels, sections, metrics) -> TrainResult:
        seconds = self.seconds()
        if self.writes:
            secs = {f"train_{self.stage}": to_dict(self.cfg), **(sections or {})}
            ckpt.save_stage(
                self.out,
                self.stage,
                decoder,
                codes.detach(),
                self.model_cfg,
                secs,
                code_labels,
                metrics={k: v for k, v in metrics.items() if v is not None},
                training_s=seconds,
                extra_meta={"epochs": self.epoch, "steps": self.global_step},
            )
        self.emit(
            "done",
            {k: v for k, v in (self.history[-1] if self.history else {}).items() if k not in ("epoch", "lr_net")},
        )
        decoder.eval()
        return TrainResult(decoder, codes.detach(), self.history, seconds, self.resumed_from)
