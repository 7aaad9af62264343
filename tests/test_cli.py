"""The `npms` commands: outputs exist, are written atomically, and bad input is one clear line.

Bad input runs through `cli.main(argv)` in-process against stand-ins (a folder with the file
names of a checkpoint, a small depth sequence, a fit result): the checks under test fail before
any model is loaded, so these cases need no trained model."""

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from npm_core import cli
from npm_core.data import depth

TETRA_V = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]], np.float32)
TETRA_F = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])


def _sequence(path, camera_edit=None, frames=2):
    cam = depth.Camera.looking_at_subject(8, 6)
    depth.write_sequence(path, cam, [np.ones((6, 8))] * frames, np.stack([TETRA_V] * frames), TETRA_F)
    if camera_edit:
        c = json.loads((path / "camera.json").read_text())
        camera_edit(c)
        (path / "camera.json").write_text(json.dumps(c))
    return path


def _fit(path, seq):
    (path / "meshes").mkdir(parents=True)
    np.savez(path / "fit.npz", shape_code=np.zeros(4), pose_codes=np.zeros((2, 4)), translation=np.zeros((2, 3)))
    (path / "fit.yaml").write_text(f"sequence: {seq}\nframes: 2\n")
    trimesh.Trimesh(TETRA_V, TETRA_F, process=False).export(path / "canonical.ply")
    for t in range(2):
        trimesh.Trimesh(TETRA_V, TETRA_F, process=False).export(path / "meshes" / f"{t:06d}.ply")
    return path


@pytest.fixture
def places(tmp_path):
    """Names for the argv templates: stand-in inputs, good and damaged, and kinds of wrong path."""
    t = tmp_path
    (t / "ck").mkdir()
    (t / "ck" / "config.yaml").write_text("model: {}\n")
    (t / "ck" / "shape.pt").write_bytes(b"")
    for name, data in [("ck_empty_pt", b""), ("ck_bad_pt", b"PK\x03\x04 not a torch file")]:
        (t / name).mkdir()
        (t / name / "config.yaml").write_text("model: {}\n")
        (t / name / "shape.pt").write_bytes(data)
    (t / "ck_bad_yaml").mkdir()
    (t / "ck_bad_yaml" / "config.yaml").write_text("model: [\n")
    (t / "ck_bad_yaml" / "shape.pt").write_bytes(b"")
    seq = _sequence(t / "seq")
    _sequence(t / "fx_text", lambda c: c.update(fx="500"))
    _sequence(t / "width_float", lambda c: c.update(width=320.5))
    _sequence(t / "pose_3x3", lambda c: c.update(world_from_camera=np.eye(3).tolist()))
    _sequence(t / "cam_list").joinpath("camera.json").write_text("[1, 2]")
    _sequence(t / "not_png").joinpath("depth", "000001.png").write_text("hello")
    trunc = _sequence(t / "trunc_png").joinpath("depth", "000000.png")
    Image.fromarray(np.random.default_rng(0).integers(1, 60000, (6, 8)).astype(np.uint16)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:-40])  # the end of the image data cut
    npy = _sequence(t / "npy_obj")
    for f in (npy / "depth").glob("*.png"):
        f.unlink()
    np.save(npy / "depth" / "000000.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    _sequence(t / "no_frames")
    for f in (t / "no_frames" / "depth").glob("*"):
        f.unlink()
    bad_gt = _sequence(t / "bad_gt")
    for f in (bad_gt / "gt").glob("*"):
        f.unlink()
    (bad_gt / "gt" / "meshes.npz").write_bytes(b"PK\x03\x04 not a zip")
    _fit(t / "fit", seq)
    _fit(t / "fit_npz", seq).joinpath("fit.npz").write_text("garbage")
    _fit(t / "fit_ply", seq).joinpath("canonical.ply").write_text("garbage")
    _fit(t / "fit_yaml", seq).joinpath("fit.yaml").write_text("sequence: [\n")
    (t / "empty").mkdir()
    (t / "full").mkdir()
    (t / "full" / "keep.txt").write_text("mine")
    (t / "file").write_text("a file")
    (t / "dir.ply").mkdir()
    (t / "bad.yaml").write_text("shape: [\n")
    (t / "list.yaml").write_text("- 1\n")
    (t / "preset.yaml").write_text("preset: huge\n")
    return {"t": str(t)}


CK, SEQ = "--checkpoint {t}/ck", "--sequence {t}/seq"
X = f"extract {CK} --shape 0 --out {{t}}/a.ply"
FIT = f"fit {CK} {SEQ} --out {{t}}/f"
EVAL = "eval --fit {t}/fit --sequence {t}/seq"
SEQ_OUT = "data sequence --identity s0-00003 --motion walk --out {t}/s"
IMPORT = "data import-depth {t}/seq/depth --out {t}/i --fx 100 --fy 100 --cx 4 --cy 3"

# (argv template, texts the single error line must contain: the argument or file, the value, what was expected)
BAD = [
    (X + " --resolution 0", ["argument --resolution", "0:", "integer >= 8"]),
    (X + " --resolution -5", ["argument --resolution", "-5:", "integer >= 8"]),
    (X + " --resolution 10000", ["argument --resolution", "10000:", "at most 1024", "3,726.4 GiB"]),
    (X + " --resolution 1e3", ["argument --resolution", "'1e3'", "expected an integer"]),
    (X + " --threads 0", ["argument --threads", "0:", "from 1 to 1024"]),
    (X + " --threads 100000", ["argument --threads", "100000:", "from 1 to 1024"]),
    (X + " --shape -1", ["argument --shape", "-1:", ">= 0"]),
    (X + " --pose x", ["argument --pose", "'x'", "integer"]),
    (
        "extract --checkpoint {t}/ck_empty_pt --shape 0 --out {t}/a.ply",
        ["ck_empty_pt/shape.pt", "cannot be read as a torch file"],
    ),
    (
        "extract --checkpoint {t}/ck_bad_pt --shape 0 --out {t}/a.ply",
        ["ck_bad_pt/shape.pt", "cannot be read as a torch file"],
    ),
    ("extract --checkpoint {t}/ck_bad_yaml --shape 0 --out {t}/a.ply", ["ck_bad_yaml/config.yaml", "not valid YAML"]),
    (
        f"extract {CK} --shape 0 --out {{t}}/x.xyz",
        ["argument --out", "x.xyz", "'.xyz' not supported", ".ply, .obj, .stl, .off, .glb"],
    ),
    (f"extract {CK} --shape 0 --out {{t}}/empty", ["argument --out", "empty", "(no suffix)"]),
    (f"extract {CK} --shape 0 --out {{t}}/dir.ply", ["argument --out", "dir.ply", "is a folder, expected a file name"]),
    (f"extract {CK} --shape 0 --out {{t}}/file/a.ply", ["argument --out", "file is a file, not a folder"]),
    (
        "extract --checkpoint {t}/empty --shape 0 --out {t}/a.ply",
        ["argument --checkpoint", "empty", "not a checkpoint", "shape.pt"],
    ),
    ("extract --checkpoint {t}/file --shape 0 --out {t}/a.ply", ["argument --checkpoint", "file", "expected a folder"]),
    ("extract --checkpoint {t}/nope --shape 0 --out {t}/a.ply", ["argument --checkpoint", "nope", "no such folder"]),
    (FIT + " --frames 0", ["argument --frames", "0:", ">= 1"]),
    (FIT + " --iterations -1", ["argument --iterations", "-1:", ">= 1"]),
    (FIT + " --resolution 4", ["argument --resolution", "4:", ">= 8"]),
    (FIT + " --device tpu", ["argument --device", "'tpu'", "cpu, cuda or cuda:N"]),
    (FIT + " --schedule slow", ["argument --schedule", "'slow'"]),
    (f"fit {CK} {SEQ} --out {{t}}/full", ["argument --out", "full", "not a fit result"]),
    (f"fit {CK} {SEQ} --out {{t}}/file", ["argument --out", "file", "expected a folder"]),
    (
        f"fit {CK} --sequence {{t}}/empty --out {{t}}/f",
        ["argument --sequence", "empty", "not a depth sequence", "camera.json"],
    ),
    (
        f"fit {CK} --sequence {{t}}/seq/camera.json --out {{t}}/f",
        ["argument --sequence", "camera.json", "expected a folder"],
    ),
    (f"fit {CK} --sequence {{t}}/fx_text --out {{t}}/f", ["fx_text/camera.json", "'fx'", '"500"', "positive number"]),
    (
        f"fit {CK} --sequence {{t}}/width_float --out {{t}}/f",
        ["width_float/camera.json", "'width'", "320.5", "positive integer"],
    ),
    (f"fit {CK} --sequence {{t}}/pose_3x3 --out {{t}}/f", ["pose_3x3/camera.json", "'world_from_camera'", "4x4"]),
    (f"fit {CK} --sequence {{t}}/cam_list --out {{t}}/f", ["cam_list/camera.json", "JSON object", "list"]),
    (f"fit {CK} --sequence {{t}}/not_png --out {{t}}/f", ["not_png/depth/000001.png", "not a readable depth PNG"]),
    (
        f"fit {CK} --sequence {{t}}/trunc_png --out {{t}}/f",
        ["trunc_png/depth/000000.png", "not a readable depth PNG", "truncated"],
    ),
    (f"fit {CK} --sequence {{t}}/npy_obj --out {{t}}/f", ["npy_obj/depth/000000.npy", "not a readable depth .npy"]),
    (f"fit {CK} --sequence {{t}}/no_frames --out {{t}}/f", ["no_frames/depth", "no .png or .npy depth frames"]),
    (EVAL + " --iou-points 0", ["argument --iou-points", "0:", "from 1000 to 100000000"]),
    (EVAL + " --json {t}/empty", ["argument --json", "empty", "is a folder"]),
    ("eval --fit {t}/empty --sequence {t}/seq", ["argument --fit", "empty", "not a fit result", "fit.npz"]),
    ("eval --fit {t}/fit_npz --sequence {t}/seq", ["fit_npz/fit.npz", "cannot be read"]),
    ("eval --fit {t}/fit_yaml --sequence {t}/seq", ["fit_yaml/fit.yaml", "not valid YAML"]),
    ("eval --fit {t}/fit_ply --sequence {t}/seq", ["fit_ply/canonical.ply", "cannot be read as a mesh"]),
    ("eval --fit {t}/fit --sequence {t}/bad_gt", ["bad_gt/gt/meshes.npz", "cannot be read as meshes"]),
    (f"eval-model {CK} --identities 0", ["argument --identities", "0:", ">= 1"]),
    (f"eval-model {CK} --frames -1", ["argument --frames", "-1:", ">= 1"]),
    (f"eval-model {CK} --iou-points 1000000000", ["argument --iou-points", "1000000000:", "from 1000 to 100000000"]),
    (f"eval-model {CK} --resolution 2048", ["argument --resolution", "2048:", "at most 1024", "32.0 GiB"]),
    (f"semantics {CK} --ridge -1", ["argument --ridge", "-1:", ">= 0"]),
    (f"semantics {CK} --ridge nan", ["argument --ridge", "nan:", ">= 0"]),
    (f"semantics {CK} --threads 0", ["argument --threads", "0:"]),
    ("data build --workers 0", ["argument --workers", "0:", "from 1 to 256"]),
    ("data build --config {t}/empty", ["argument --config", "empty", "expected a file"]),
    ("data build --config {t}/bad.yaml", ["bad.yaml", "not valid YAML"]),
    ("data build --config {t}/list.yaml", ["list.yaml", "expected a mapping"]),
    ("data sequence --identity s0-00003 --motion moonwalk --out {t}/s", ["unknown motion 'moonwalk'", "walk"]),
    (SEQ_OUT + " --width 0", ["argument --width", "0:", "from 8 to 4096"]),
    (SEQ_OUT + " --height 100000", ["argument --height", "100000:", "from 8 to 4096"]),
    (SEQ_OUT + " --distance 0", ["argument --distance", "0:", "> 0 and <= 60"]),
    (SEQ_OUT + " --distance inf", ["argument --distance", "inf:", "> 0 and <= 60"]),
    (SEQ_OUT + " --frames 0", ["argument --frames", "0:", "from 1 to 10000"]),
    (
        "data sequence --identity s0-00003 --motion walk --out {t}/full",
        ["argument --out", "full", "new or empty folder"],
    ),
    (IMPORT + " --fx 0", ["argument --fx", "0:", "> 0"]),
    (IMPORT + " --fps -30", ["argument --fps", "-30:", "> 0"]),
    (IMPORT + " --up 0,0,0", ["argument --up", "'0,0,0'", "nonzero vector"]),
    (IMPORT + " --up 1,2", ["argument --up", "'1,2'", "x,y,z"]),
    ("data import-depth {t}/file --out {t}/i --fx 1 --fy 1 --cx 1 --cy 1", ["file: not a folder", "depth PNGs"]),
    (
        "data import-depth {t}/seq/depth --out {t}/full --fx 1 --fy 1 --cx 1 --cy 1",
        ["full: already exists and is not empty"],
    ),
    ("train shape --out {t}/c --threads 0", ["argument --threads", "0:"]),
    ("train shape --out {t}/c --config {t}/bad.yaml", ["bad.yaml", "not valid YAML"]),
    ("train shape --out {t}/c --config {t}/list.yaml", ["list.yaml", "expected a mapping", "list"]),
    ("train shape --out {t}/c --config {t}/preset.yaml", ["preset.yaml", "preset 'huge'", "fast or paper"]),
    ("train shape --out {t}/full", ["argument --out", "full", "not a checkpoint"]),
    ("train pose --out {t}/empty", ["--out", "empty", "no trained shape stage", "npms train shape"]),
    ("extract", ["required", "--checkpoint", "--shape", "--out"]),
    ("fly", ["argument command", "invalid choice: 'fly'"]),
]


@pytest.mark.parametrize("template, expect", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_error_line(template, expect, places, capsys):
    argv = shlex.split(template.format(**places))
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("npms: error: "), captured.err
    for text in expect:
        assert text in err[0], err[0]
    assert "Traceback" not in captured.out + captured.err


def test_refused_outputs_leave_what_was_there(places, capsys):
    t = places["t"]
    assert cli.main(shlex.split(f"fit {CK.format(t=t)} --sequence {t}/seq --out {t}/full")) == 2
    assert cli.main(shlex.split(f"data sequence --identity s0-00003 --motion walk --out {t}/full")) == 2
    assert sorted(p.name for p in (depth.Path(t) / "full").iterdir()) == ["keep.txt"]
    assert (depth.Path(t) / "full" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    "template",
    [
        FIT,
        f"fit {CK} {SEQ} --out {{t}}/fit",
        f"fit {CK} {SEQ} --out {{t}}/empty",
        f"fit {CK} {SEQ} --out {{t}}/new/deeper",
        "train shape --out {t}/ck",
        "train shape --out {t}/empty",
        EVAL + " --json {t}/new/m.json",
        X + " --resolution 1024",
        f"extract {CK} --shape 0 --out {{t}}/a.GLB",
        "data build --cache {t}/new_cache --workers 256",
    ],
)
def test_good_input_passes_the_checks(template, places):
    """Outputs may be new (folders made), empty, or an earlier result of the same kind."""
    args = cli.build_parser().parse_args(shlex.split(template.format(**places)))
    cli.check_paths(args)


def test_sequence_that_fails_leaves_no_folder(places, capsys, monkeypatch):
    """A depth sequence is written under a temp name and renamed when complete."""
    t = depth.Path(places["t"])

    def fail_halfway(directory, *a, **k):
        depth.Path(directory, "depth").mkdir(parents=True)
        depth.Path(directory, "depth", "000000.png").write_bytes(b"half")
        raise depth.SequenceError("frame 1: the renderer gave up")

    monkeypatch.setattr(depth, "synthesize_sequence", fail_halfway)
    assert cli.main(shlex.split(f"data sequence --identity s0-00003 --motion walk --out {t}/new/s")) == 2
    assert capsys.readouterr().err == "npms: error: frame 1: the renderer gave up\n"
    assert list((t / "new").iterdir()) == []


def test_help_states_limits_and_folders(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["extract", "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in ["8..1024", "1..1024", ".ply .obj .stl .off .glb", "missing folders on the way are created"]:
        assert text in out


def test_extract_canonical_and_posed(tiny_model, tmp_path, capsys):
    ck, _ = tiny_model
    assert (
        cli.main(
            [
                "extract",
                "--checkpoint",
                str(ck),
                "--shape",
                "0",
                "--resolution",
                "32",
                "--out",
                str(tmp_path / "a.ply"),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    assert (
        cli.main(
            [
                "extract",
                "--checkpoint",
                str(ck),
                "--shape",
                "1",
                "--pose",
                "2",
                "--resolution",
                "32",
                "--out",
                str(tmp_path / "new" / "sub" / "b.obj"),
                "--threads",
                "1",
            ]
        )
        == 0
    )  # folders created
    out = capsys.readouterr().out
    assert "decoder evaluations" in out and "posed in" in out
    a, b = trimesh.load(tmp_path / "a.ply"), trimesh.load(tmp_path / "new" / "sub" / "b.obj")
    assert len(a.faces) > 100 and len(b.faces) > 100
    assert a.bounds[1, 1] - a.bounds[0, 1] > 0.5  # metres: a body-sized thing, not model units
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ply", "new"]  # no temp files left


def test_extract_that_fails_keeps_the_old_file(tiny_model, tmp_path, capsys, monkeypatch):
    """The mesh is written to a temp file and renamed: a failed write leaves the previous file as it was."""
    ck, _ = tiny_model
    (tmp_path / "a.ply").write_text("the previous mesh")

    def half_write(self, path, *a, **k):
        open(path, "w").write("half a mesh")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trimesh.Trimesh, "export", half_write)
    assert (
        cli.main(
            [
                "extract",
                "--checkpoint",
                str(ck),
                "--shape",
                "0",
                "--resolution",
                "16",
                "--out",
                str(tmp_path / "a.ply"),
                "--threads",
                "1",
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.strip() == "npms: error: [Errno 28] No space left on device"
    assert (tmp_path / "a.ply").read_text() == "the previous mesh"
    assert [p.name for p in tmp_path.iterdir()] == ["a.ply"]


def test_eval_model_reports_all_groups(tiny_model, tmp_path, capsys, monkeypatch):
    ck, ds = tiny_model
    monkeypatch.setenv("NPM_CACHE_DIR", str(ds.path.parent.parent))
    assert (
        cli.main(
            [
                "eval-model",
                "--checkpoint",
                str(ck),
                "--identities",
                "1",
                "--frames",
                "4",
                "--resolution",
                "32",
                "--iou-points",
                "20000",
                "--json",
                str(tmp_path / "e.json"),
                "--threads",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for key in ["test_identities", "train_identities", "held_out_poses", "mean_vertex_error_cm"]:
        assert key in out


def test_bad_input_found_after_loading_is_one_line(tiny_model, tmp_path, capsys):
    ck, _ = tiny_model
    assert cli.main(["extract", "--checkpoint", str(ck), "--shape", "99", "--out", str(tmp_path / "x.ply")]) == 2
    assert (
        cli.main(
            ["extract", "--checkpoint", str(ck), "--shape", "0", "--pose", "99999", "--out", str(tmp_path / "x.ply")]
        )
        == 2
    )
    (tmp_path / "t.yaml").write_text("shape:\n  epochz: 3\n")
    assert cli.main(["train", "shape", "--config", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("npms: error: ") for line in err)
    assert (
        "--shape 99 out of range [0, " in err[0] and "--pose 99999 out of range [0, " in err[1] and "epochz" in err[2]
    )
    assert not (tmp_path / "x.ply").exists()


def test_eval_model_groups_tail_identities(tiny_model):
    """Tail identities get their own shape group and pose group; every pose group draws up to
    max_frames frames, and "all held-out frames" pools them."""
    import copy

    from npm_core import evaluate
    from npm_core.models import checkpoint

    ck, ds = tiny_model
    m = checkpoint.load_model(ck)
    tailed = copy.copy(ds)
    tailed.identities = [dict(x) for x in ds.identities]
    t = ds.split("test")[0]
    tailed.identities[t]["split"] = "tail"
    codes = {}
    rows = evaluate.evaluate_shapes(
        m, tailed, "tail", 5, resolution=32, iou_points=20000, chamfer_points=2000, codes_out=codes
    )
    assert [r["identity"] for r in rows] == [ds.identities[t]["id"]] and list(codes) == [t]
    poses = evaluate.evaluate_poses(m, tailed, max_frames=3, points=100, test_codes=codes)
    own = sum(f["identity"] == t for f in ds.test_frames)
    assert poses["tail identities, unseen motions"]["frames"] == min(3, own) > 0
    assert "test identities" not in poses  # no code was given for the remaining test identities
    groups = [v["frames"] for k, v in poses.items() if k != "all held-out frames"]
    assert poses["all held-out frames"]["frames"] == sum(groups) and max(groups) <= 3


def test_eval_shapes_of_named_identities(tiny_model):
    """identities= evaluates those ids of the split, in that order; an id outside the split is named."""
    from npm_core import evaluate
    from npm_core.models import checkpoint

    ck, ds = tiny_model
    m = checkpoint.load_model(ck)
    names = [ds.identities[i]["id"] for i in ds.split("test")[:2]][::-1]
    rows = evaluate.evaluate_shapes(
        m, ds, "test", 2, resolution=32, iou_points=20000, chamfer_points=2000, identities=names
    )
    assert [r["identity"] for r in rows] == names
    train_id = ds.identities[ds.split("train")[0]]["id"]
    with pytest.raises(ValueError, match=train_id):
        evaluate.evaluate_shapes(m, ds, "test", 1, identities=[train_id])


def test_data_sequence_config_may_be_a_training_config(tmp_path):
    """`npms data sequence --config` reads identities from a data config or a training config's data section."""
    root = Path(cli.__file__).resolve().parents[1]
    v2 = cli._identities_config(str(root / "configs" / "train_body_v2.yaml"))
    assert v2.identities.tails and v2.identities.count == 400 and v2.surface == "outer"
    (tmp_path / "d.yaml").write_text("identities: {count: 12}\n")
    assert cli._identities_config(str(tmp_path / "d.yaml")).identities.count == 12
    assert cli._identities_config(None).identities.count == 320


def test_pose_codes_are_fitted_to_convergence():
    """Held-out pose error measures the pose space only if code inference converges: from the mean
    code, fit_pose_codes' defaults reach flow pairs that a training code of the shipped checkpoint
    generated to within 1.5e-3 model units (4 mm; the mean code is 1.4 cm away), where 200 steps
    at 1e-2 stop at 2.4e-3."""
    import torch

    from npm_core import evaluate
    from npm_core.models import checkpoint

    torch.manual_seed(0)
    m = checkpoint.load_model(Path(__file__).parents[1] / "checkpoints" / "body-v2")
    m.pose_decoder.requires_grad_(False)
    frames = torch.tensor([0, 1000, 3000, 6000])  # training frames: random poses and motions
    s = m.shape_codes[torch.tensor([0, 50, 100, 150])]
    x = torch.empty(4, 300, 3).uniform_(-0.15, 0.15)
    with torch.no_grad():
        y = x + m.pose_decoder(s, m.pose_codes[frames], x)  # what the training codes decode to
    mean = m.pose_codes.mean(0).expand(4, -1)

    def error(codes):
        with torch.no_grad():
            return float((x + m.pose_decoder(s, codes, x) - y).norm(dim=-1).mean())

    start = error(mean)
    assert start > 0.03  # 1.4 cm
    assert error(evaluate.fit_pose_codes(m.pose_decoder, s, x, y, mean)) < 1.5e-3  # 200 steps at 1e-2: 2.4e-3


def test_tune_shape_makes_a_checkpoint_with_the_pose_stage(tiny_model, tmp_path, monkeypatch, capsys):
    """`npms tune-shape`: the new checkpoint has the grown, further trained shape decoder, the same
    codes, and the source's pose stage, so it poses; the source is left as it was."""
    import torch

    from npm_core.models import checkpoint

    ck, ds = tiny_model
    monkeypatch.setenv("NPM_CACHE_DIR", str(ds.path.parent.parent))
    before = (ck / "shape.pt").read_bytes()
    out = tmp_path / "tuned"
    args = ["tune-shape", "--checkpoint", str(ck), "--out", str(out), "--epochs", "2", "--width", "80"]
    assert cli.main([*args, "--threads", "1"]) == 0
    assert "codes and pose stage kept" in capsys.readouterr().out
    src, new = checkpoint.load_model(ck), checkpoint.load_model(out)
    assert new.config.shape.width == 80 and torch.equal(new.shape_codes, src.shape_codes)
    assert torch.equal(new.pose_codes, src.pose_codes) and new.pose_decoder is not None
    assert new.sections["tuned_from"] == {"checkpoint": str(ck), "width": 80}
    assert new.meta["pose"] == src.meta["pose"] and (ck / "shape.pt").read_bytes() == before
    assert cli.main(["tune-shape", "--checkpoint", str(ck), "--out", str(ck)]) != 0
    assert "must differ from --checkpoint" in capsys.readouterr().err
