"""Decoders (shapes, skip/PE widths, precomputed code path) and checkpoint I/O (round trip, errors)."""

import math

import pytest
import torch

from npm_core import layout
from npm_core.models import (
    CheckpointError,
    DecoderConfig,
    ModelConfig,
    PoseDecoder,
    ShapeDecoder,
    load_model,
    load_shape_fn,
    model_preset,
    positional_encoding,
    save_stage,
)

TINY = ModelConfig(DecoderConfig(48, 4, 8, 3, 2), DecoderConfig(64, 5, 6, 2, 3))


def naive_forward(dec, code, x):
    """Reference: concatenate [code, PE(x)] per point, run the layers, concatenate again at the skip."""
    inp = torch.cat([code[:, None].expand(-1, x.shape[1], -1), positional_encoding(x, dec.cfg.pe_freqs)], -1)
    h = inp
    for i, layer in enumerate(dec.layers):
        if dec.cfg.skip and i == dec.cfg.skip:
            h = torch.cat([h, inp], -1)
        h = torch.relu(layer(h))
    return dec.out(h)


def test_positional_encoding():
    x = torch.rand(5, 3) - 0.5
    pe = positional_encoding(x, 8)
    assert pe.shape == (5, 51)  # the reference's 51 dims
    assert torch.allclose(pe[:, :3], math.pi * x)
    assert torch.allclose(pe[:, 3 + 3 * 7 + 2], torch.sin(2**7 * math.pi * x[:, 2]))  # sin block: [3, n_freq] flattened
    assert torch.allclose(pe[:, 3 + 24 + 0 * 8 + 5], torch.cos(2**5 * math.pi * x[:, 0]))


def test_decoder_shapes_and_widths():
    cfg = model_preset("paper")
    s = ShapeDecoder(cfg.shape)
    assert s.in_dim == 256 + 51 and len(s.layers) == 8
    assert s.layers[3].weight.shape == (512 - 307, 512)  # layer before the skip makes room for the input
    assert s.layers[4].weight.shape == (512, 512)
    assert all(hasattr(l, "parametrizations") for l in s.layers)  # weight norm on hidden layers
    assert not hasattr(s.out, "parametrizations")
    p = PoseDecoder(cfg.pose, cfg.shape.code_dim)
    assert p.in_dim == 512 + 51 and p.layers[3].weight.shape == (1024 - 563, 1024)
    fs, fp = ShapeDecoder(TINY.shape), PoseDecoder(TINY.pose, TINY.shape.code_dim)
    x = torch.rand(2, 7, 3) - 0.5
    sdf = fs(torch.randn(2, 8), x)
    assert sdf.shape == (2, 7) and sdf.abs().max() < 1
    assert fp(torch.randn(2, 8), torch.randn(2, 6), x).shape == (2, 7, 3)
    with pytest.raises(ValueError):
        ShapeDecoder(DecoderConfig(16, 4, 8, 3, 2))  # width smaller than the input: no room for the skip


@pytest.mark.parametrize("skip", [0, 1, 2, 3])
def test_forward_equals_plain_concatenation(skip):
    torch.manual_seed(0)
    dec = ShapeDecoder(DecoderConfig(48, 4, 8, 3, skip))
    code, x = torch.randn(3, 8), torch.rand(3, 50, 3) - 0.5
    ref = torch.tanh(naive_forward(dec, code, x))[..., 0]
    assert torch.allclose(dec(code, x), ref, atol=1e-5)


def test_precomputed_code_path_equals_forward():
    torch.manual_seed(1)
    fs, fp = ShapeDecoder(TINY.shape), PoseDecoder(TINY.pose, TINY.shape.code_dim)
    with torch.no_grad():  # non-trivial weight-norm gains
        for l in list(fs.layers) + list(fp.layers):
            l.parametrizations.weight.original0.mul_(1.7)
    s, p, x = torch.randn(8), torch.randn(6), torch.rand(1000, 3) - 0.5
    with torch.inference_mode():
        sdf = fs.sdf_fn(s)(x)
        dx = fp.displacement_fn(s, p)(x)
        ref_sdf = torch.tanh(naive_forward(fs, s[None], x[None]))[0, :, 0]
        ref_dx = naive_forward(fp, torch.cat([s, p])[None], x[None])[0]
    assert sdf.shape == (1000,) and dx.shape == (1000, 3)
    assert torch.allclose(sdf, ref_sdf, atol=1e-5) and torch.allclose(sdf, fs(s[None], x[None])[0], atol=1e-5)
    assert torch.allclose(dx, ref_dx, atol=1e-5)


def test_gradients_reach_codes_and_weights():
    fs = ShapeDecoder(TINY.shape)
    code = torch.randn(2, 8, requires_grad=True)
    fs(code, torch.rand(2, 10, 3)).sum().backward()
    assert code.grad.abs().sum() > 0
    assert all(p.grad is not None for p in fs.parameters())


# ------------------------------------------------------------------ checkpoints


def _write(tmp_path, with_pose=True):
    torch.manual_seed(2)
    fs, fp = ShapeDecoder(TINY.shape), PoseDecoder(TINY.pose, TINY.shape.code_dim)
    s_codes, p_codes = torch.randn(3, 8), torch.randn(5, 6)
    labels = [{"id": f"s0-{i:05d}", "phenotypes": {"age": 0.1 * i}} for i in range(3)]
    save_stage(tmp_path, "shape", fs, s_codes, TINY, {"train_shape": {"epochs": 1}}, labels, {"sdf_l1": 0.01}, 12.0)
    if with_pose:
        plabels = [{"motion": "walk", "frame": t, "shape_index": t % 3} for t in range(5)]
        save_stage(tmp_path, "pose", fp, p_codes, TINY, {"train_pose": {"epochs": 2}}, plabels)
    return fs, fp, s_codes, p_codes


def test_checkpoint_round_trip(tmp_path):
    fs, fp, s_codes, p_codes = _write(tmp_path)
    m = load_model(tmp_path)
    assert m.config == TINY and m.sections["train_shape"] == {"epochs": 1} and m.sections["train_pose"] == {"epochs": 2}
    assert torch.equal(m.shape_codes, s_codes) and torch.equal(m.pose_codes, p_codes)
    x = torch.rand(1, 20, 3) - 0.5
    assert torch.equal(m.shape_decoder(s_codes[:1], x), fs(s_codes[:1], x))
    assert torch.equal(m.pose_decoder(s_codes[:1], p_codes[:1], x), fp(s_codes[:1], p_codes[:1], x))
    assert m.meta["shape"]["codes"][2]["id"] == "s0-00002" and m.meta["pose"]["codes"][4]["shape_index"] == 1
    assert m.meta["shape"]["metrics"] == {"sdf_l1": 0.01} and "torch" in m.meta["versions"]
    fn = load_shape_fn(tmp_path, 1)
    with torch.inference_mode():
        assert torch.allclose(fn(x[0]), fs(s_codes[1:2], x)[0], atol=1e-5)
    with pytest.raises(CheckpointError, match="out of range"):
        load_shape_fn(tmp_path, 3)


def test_checkpoint_without_pose(tmp_path):
    _write(tmp_path, with_pose=False)
    m = load_model(tmp_path)
    assert m.pose_decoder is None and m.pose_codes is None


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="directory not found"):
        load_model(tmp_path / "nope")
    d = tmp_path / "c"
    _write(d)
    # truncated tensor file
    data = layout.checkpoint_stage_path(d, "pose").read_bytes()
    layout.checkpoint_stage_path(d, "pose").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"pose\.pt.*truncated or corrupted"):
        load_model(d)
    layout.checkpoint_stage_path(d, "pose").unlink()
    # state dict that does not fit config.yaml
    cfg = layout.checkpoint_config_path(d).read_text().replace("width: 48", "width: 40")
    layout.checkpoint_config_path(d).write_text(cfg)
    with pytest.raises(CheckpointError, match=r"shape\.pt: shape decoder weights do not match config\.yaml"):
        load_model(d)
    # missing file
    layout.checkpoint_stage_path(d, "shape").unlink()
    with pytest.raises(CheckpointError, match=r"shape\.pt: file not found"):
        load_model(d)
    layout.checkpoint_config_path(d).write_text("model: {shape: {widht: 3}}\n")
    with pytest.raises(CheckpointError, match="widht"):
        load_model(d)
    layout.checkpoint_config_path(d).unlink()
    with pytest.raises(CheckpointError, match=r"config\.yaml: file not found"):
        load_model(d)


def test_atomic_write_keeps_previous_file(tmp_path, monkeypatch):
    fs, _, s_codes, _ = _write(tmp_path, with_pose=False)
    before = layout.checkpoint_stage_path(tmp_path, "shape").read_bytes()

    def boom(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        save_stage(tmp_path, "shape", fs, s_codes * 2, TINY)
    assert layout.checkpoint_stage_path(tmp_path, "shape").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "meta.yaml", "shape.pt"]
