"""layout.py: where results find their files, metadata without decoders, and clear errors."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from npm_core import layout
from npm_core.data import depth

REPO = Path(__file__).resolve().parents[1]
BODY_V1 = REPO / "checkpoints" / "body-v1"


def _sequence(d: Path, frames: int = 2) -> Path:
    cam = depth.Camera.looking_at_subject(8, 6)
    depth.write_sequence(d, cam, np.full((frames, 6, 8), 2.5, np.float32))
    return d


def _fit(out: Path, seq: Path, frames: int = 2) -> Path:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    f = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]])
    return layout.write_fit(
        out,
        sequence_dir=seq,
        meta={"checkpoint": "none", "frames": frames},
        arrays={
            "shape_code": np.zeros(3),
            "pose_codes": np.ones((frames, 2)),
            "translation": np.zeros((frames, 3)),
            "loss_reconstruction": np.arange(frames),
        },
        canonical_vertices=v,
        faces=f,
        posed_vertices=np.stack([v + t for t in range(frames)]),
    )


def test_fit_stores_the_sequence_relative_and_finds_it_after_a_move(tmp_path, monkeypatch):
    root = tmp_path / "work"
    seq = _sequence(root / "data" / "seq")
    out = _fit(root / "results" / "fit", seq)
    assert layout.read_fit(out).meta["sequence"] == "../../data/seq"  # relative to the fit dir, '/' separators
    shutil.move(root, tmp_path / "moved")  # both move together: the relative path still holds
    monkeypatch.chdir(tmp_path / "moved" / "data")  # any working directory
    fit_dir = tmp_path / "moved" / "results" / "fit"
    assert layout.is_fit(fit_dir) and not layout.is_fit(tmp_path / "moved" / "data" / "seq")
    r = layout.read_fit(fit_dir)
    assert r.sequence_dir() == fit_dir / "../../data/seq" and layout.is_sequence(r.sequence_dir())
    assert r.pose_codes.shape == (2, 2) and r.losses["reconstruction"].tolist() == [0, 1]
    canon, posed, faces = r.meshes()
    assert posed.shape == (2, 4, 3) and np.allclose(posed[1] - canon, 1.0) and faces.shape == (4, 3)


def test_shipped_example_fit_opens_from_another_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fit_dir = REPO / "assets" / "example_fit"
    r = layout.read_fit(fit_dir)
    assert not Path(r.meta["sequence"]).is_absolute()
    seq = layout.fit_sequence_dir(fit_dir)
    assert seq.resolve() == (REPO / "assets" / "example_sequence").resolve()
    cam = depth.read_camera(seq)
    assert (cam.width, cam.height) == (320, 240) and len(layout.sequence_depth_files(seq)) == len(r.pose_codes) == 64


def test_fit_sequence_paths_old_absolute_and_missing(tmp_path):
    seq = _sequence(tmp_path / "seq")
    out = _fit(tmp_path / "fit", seq)
    meta_path = layout.fit_yaml_path(out)
    meta = meta_path.read_text()
    meta_path.write_text(meta.replace("sequence: ../seq", f"sequence: {seq.resolve()}"))  # older versions wrote this
    assert layout.fit_sequence_dir(out) == seq.resolve()
    meta_path.write_text(meta.replace("sequence: ../seq", "sequence: /elsewhere/machine/seq"))
    with pytest.raises(
        layout.FitResultError,
        match=r"fit\.yaml: sequence '/elsewhere/machine/seq' is not a depth-"
        r"sequence directory \(an absolute path from another machine",
    ):
        layout.fit_sequence_dir(out)
    meta_path.write_text(meta.replace("sequence: ../seq", "sequence: ../gone"))
    with pytest.raises(
        layout.FitResultError,
        match=r"sequence '\.\./gone' is not a depth-sequence directory "
        r"\(resolved against .*fit; expected .*gone/camera\.json",
    ):
        layout.fit_sequence_dir(out)
    meta_path.write_text(meta.replace("sequence: ../seq\n", ""))
    with pytest.raises(layout.FitResultError, match="no 'sequence'"):
        layout.fit_sequence_dir(out)
    layout.fit_npz_path(out).unlink()
    with pytest.raises(layout.FitResultError, match=r"not a fit-result directory \(missing fit\.npz\)"):
        layout.read_fit(out)
    with pytest.raises(layout.FitResultError, match="fit-result directory not found"):
        layout.read_fit(tmp_path / "nope")


def test_rewriting_a_fit_replaces_it_and_keeps_its_progress_log(tmp_path):
    seq = _sequence(tmp_path / "seq", frames=3)
    out = _fit(tmp_path / "fit", seq, frames=3)
    layout.fit_progress_path(out).write_text('{"frame": 0}\n')
    _fit(out, seq, frames=2)
    assert len(layout.read_fit(out).pose_codes) == 2 and len(list(layout.fit_meshes_dir(out).iterdir())) == 2
    assert layout.read_fit_progress(out) == ([{"frame": 0}], 13)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit", "seq"]  # no temp or old directories left


def test_fit_progress_log_is_tailed_line_by_line(tmp_path):
    path = layout.fit_progress_path(tmp_path)
    path.write_text(json.dumps({"frame": 0, "energy": 0.5}) + "\n" + '{"frame": 1, "ene')
    lines, offset = layout.read_fit_progress(tmp_path)
    assert lines == [{"frame": 0, "energy": 0.5}]  # the half-written line waits
    with open(path, "a") as f:
        f.write('rgy": 0.25}\n')
    more, offset2 = layout.read_fit_progress(tmp_path, offset)
    assert more == [{"frame": 1, "energy": 0.25}] and offset2 == path.stat().st_size
    path.write_text('{"frame": 0}\n')  # a new run starts the log afresh: read from its start
    assert layout.read_fit_progress(tmp_path, offset2)[0] == [{"frame": 0}]
    assert layout.read_fit_progress(tmp_path / "none") == ([], 0)


def test_checkpoint_info_reads_metadata_without_torch():
    """The shipped checkpoint's labels and sizes, in a fresh process that never imports torch."""
    code = (
        "import sys, json; from npm_core import layout; i = layout.read_checkpoint_info(sys.argv[1]); "
        "print(json.dumps([i.num_shape_codes, i.shape_code_dim, i.num_pose_codes, i.pose_code_dim, i.identities[:2],"
        " i.frame_names[:1], sorted(i.motions), len(i.motions['walk']), i.has_semantics, 'torch' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(BODY_V1)], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == [
        256,
        64,
        5592,
        128,
        ["s0-00001", "s0-00002"],
        ["random 0"],
        ["arm_raise", "random", "squat", "torso_twist", "walk"],
        648,
        True,
        False,
    ]


def test_checkpoint_info_motions_and_codes_without_decoders(tmp_path, monkeypatch):
    import torch

    from npm_core.models import checkpoint, decoders

    d = tmp_path / "c"
    cfg = decoders.ModelConfig(decoders.DecoderConfig(16, 2, 3, 2, 0), decoders.DecoderConfig(16, 2, 2, 2, 0))
    shape_codes, pose_codes = torch.randn(2, 3), torch.randn(4, 2)
    labels = [{"motion": "walk", "frame": 2}, {"motion": "kick", "frame": 0}, {"motion": "walk", "frame": 0}, {}]
    checkpoint.save_stage(
        d,
        "shape",
        decoders.ShapeDecoder(cfg.shape),
        shape_codes,
        cfg,
        code_labels=[{"identity": "a", "phenotypes": {"age": 0.5}}, {"identity": "b"}],
    )
    assert layout.is_checkpoint(d) and not layout.read_checkpoint_info(d).has_pose
    checkpoint.save_stage(d, "pose", decoders.PoseDecoder(cfg.pose, 3), pose_codes, cfg, code_labels=labels)

    def no_decoders(*a, **k):
        raise AssertionError("a decoder was built")

    monkeypatch.setattr(decoders.ShapeDecoder, "__init__", no_decoders)
    monkeypatch.setattr(decoders.PoseDecoder, "__init__", no_decoders)
    info = layout.read_checkpoint_info(d)
    assert info.identities == ["a", "b"] and info.shape_labels[0].phenotypes == {"age": 0.5}
    assert info.motions == {"kick": [1], "walk": [2, 0]} and info.frame_names == ["walk 2", "kick 0", "walk 0", ""]
    assert (info.num_shape_codes, info.num_pose_codes, info.pose_code_dim, info.has_pose) == (2, 4, 2, True)
    s, p = checkpoint.load_codes(d)
    assert torch.equal(s, shape_codes) and torch.equal(p, pose_codes)
    assert layout.list_checkpoints(tmp_path) == [d] and layout.list_checkpoints(tmp_path / "none") == []


def test_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(layout.CheckpointError, match="checkpoint directory not found"):
        layout.read_checkpoint_info(tmp_path / "nope")
    folder, tmp_path = tmp_path, tmp_path / "c"
    tmp_path.mkdir()
    layout.checkpoint_config_path(tmp_path).write_text("model: {shape: {width: 3}}\n")
    assert not layout.is_checkpoint(tmp_path) and layout.list_checkpoints(folder) == []
    with pytest.raises(layout.CheckpointError, match=r"shape\.pt: file not found \(a checkpoint needs a trained shape"):
        layout.read_checkpoint_info(tmp_path)
    layout.checkpoint_stage_path(tmp_path, "shape").write_bytes(b"")
    layout.checkpoint_meta_path(tmp_path).write_text("shape: [unclosed\n")
    with pytest.raises(layout.CheckpointError, match=r"meta\.yaml: not valid YAML"):
        layout.read_checkpoint_info(tmp_path)
    layout.checkpoint_meta_path(tmp_path).write_text("shape: {codes: [1, 2]}\n")
    with pytest.raises(layout.CheckpointError, match=r"meta\.yaml shape\.codes: expected a list of mappings"):
        layout.read_checkpoint_info(tmp_path)
    layout.checkpoint_config_path(tmp_path).write_text("shape: {}\n")
    with pytest.raises(layout.CheckpointError, match=r"config\.yaml: no 'model' section"):
        layout.read_checkpoint_info(tmp_path)
    with pytest.raises(ValueError, match="stage must be one of"):
        layout.checkpoint_stage_path(tmp_path, "posed")


def test_dataset_paths(tmp_path, monkeypatch):
    from npm_core.config import DataConfig, config_hash

    monkeypatch.setenv("NPM_CACHE_DIR", str(tmp_path))
    d = layout.dataset_dir(DataConfig())
    assert d == tmp_path / "datasets" / config_hash(DataConfig()) and not layout.is_dataset(d)
    assert layout.dataset_array_path(d, "posed") == d / "posed.npy"
    with pytest.raises(ValueError, match="unknown dataset array 'poses'"):
        layout.dataset_array_path(d, "poses")
