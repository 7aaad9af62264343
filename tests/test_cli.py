"""The `npms` commands on the tiny model: outputs exist and bad input is one clear line."""

import trimesh

from npm_core import cli


def test_extract_canonical_and_posed(tiny_model, tmp_path, capsys):
    ck, _ = tiny_model
    assert cli.main(["extract", "--checkpoint", str(ck), "--shape", "0", "--resolution", "32", "--out", str(tmp_path / "a.ply"),
                     "--threads", "1"]) == 0
    assert cli.main(["extract", "--checkpoint", str(ck), "--shape", "1", "--pose", "2", "--resolution", "32",
                     "--out", str(tmp_path / "b.obj"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "decoder evaluations" in out and "posed in" in out
    a, b = trimesh.load(tmp_path / "a.ply"), trimesh.load(tmp_path / "b.obj")
    assert len(a.faces) > 100 and len(b.faces) > 100
    assert a.bounds[1, 1] - a.bounds[0, 1] > 0.5  # metres: a body-sized thing, not model units


def test_eval_model_reports_all_groups(tiny_model, tmp_path, capsys, monkeypatch):
    ck, ds = tiny_model
    monkeypatch.setenv("NPM_CACHE_DIR", str(ds.path.parent.parent))
    assert cli.main(["eval-model", "--checkpoint", str(ck), "--identities", "1", "--frames", "4", "--resolution", "32",
                     "--iou-points", "20000", "--json", str(tmp_path / "e.json"), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for key in ["test_identities", "train_identities", "held_out_poses", "mean_vertex_error_cm"]:
        assert key in out


def test_bad_input_is_one_line(tiny_model, tmp_path, capsys):
    ck, _ = tiny_model
    assert cli.main(["extract", "--checkpoint", str(ck), "--shape", "99", "--out", str(tmp_path / "x.ply")]) == 2
    assert cli.main(["extract", "--checkpoint", str(tmp_path / "nope"), "--shape", "0", "--out", str(tmp_path / "x.ply")]) == 2
    (tmp_path / "t.yaml").write_text("shape:\n  epochz: 3\n")
    assert cli.main(["train", "shape", "--config", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("npms: error: ") for line in err)
    assert "out of range" in err[0] and "not found" in err[1] and "epochz" in err[2]
