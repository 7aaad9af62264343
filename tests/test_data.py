import json
import os

import numpy as np
import pytest
import torch
import trimesh

from npm_core import bodies, config
from npm_core.data import dataset, depth, flow, sdf


def test_sdf_signs_agree_with_independent_inside_test(default_body):
    v, f = default_body
    pts, val, n_near = sdf.sdf_samples(v, f, 40_000, seed=5)
    assert pts.shape == (40_000, 3) and n_near == 28_000
    mesh = trimesh.Trimesh(v, f, process=False)
    inside = mesh.contains(pts)  # ray parity (embree), independent of warp's winding number
    assert ((val < 0) == inside).mean() >= 0.999
    # magnitudes: exact distance to the surface
    sub = pts[::97]
    _, d_ref, _ = trimesh.proximity.closest_point(mesh, sub)
    np.testing.assert_allclose(np.abs(val[::97]), d_ref, atol=1e-5)
    # near samples hug the surface (offsets biased small), uniform ones fill the cube
    assert np.abs(val[:n_near]).max() <= 0.0501 and np.median(np.abs(val[:n_near])) < 0.01
    assert np.abs(pts[n_near:]).max() <= 0.5 and (val[n_near:] > 0).mean() > 0.9


def test_flow_zero_offset_lies_on_posed_surface(default_body):
    v0, f = default_body
    posed = bodies.body_meshes({k: 0.5 for k in bodies.PHENOTYPES}, {"knee_bend_l": 70, "shoulder_raise_r": 80})[0]
    face, bary, off, sig = flow.flow_sample_set(v0, f, 2000, seed=1)
    assert face.shape == (4000,) and set(np.unique(sig)) == {0, 1}
    assert np.abs(off[sig == 0]).max() <= 0.002 and np.abs(off[sig == 1]).max() <= 0.01
    on = flow.posed_flow_points(posed, f, face, bary, np.zeros_like(off))
    d = np.abs(sdf.signed_distance(posed, f, on)[0])
    assert d.max() < 1e-6
    # with offsets, the canonical point sits |offset| from its face along the normal
    pc = flow.posed_flow_points(v0, f, face, bary, off)
    d = sdf.signed_distance(v0, f, pc[sig == 0])[0]  # (near edges, another face can be nearer)
    assert (np.abs(d - off[sig == 0]) < 1e-5).mean() > 0.95
    assert (np.abs(d) <= np.abs(off[sig == 0]) + 1e-6).all()


def test_depth_roundtrip_within_1mm(tmp_path, default_body):
    v, f = default_body
    verts_m = v / 0.4
    cam = depth.Camera.looking_at_subject(160, 120, distance=2.5)
    d = depth.render_depth(cam, verts_m, f)
    assert (d > 0).sum() > 1500 and np.abs(d[d > 0] - 2.5).max() < 0.4
    depth.write_sequence(tmp_path / "seq", cam, [d, d], [verts_m, verts_m], f)
    seq = depth.read_sequence(tmp_path / "seq")
    assert len(seq) == 2 and seq.gt_vertices.shape == (2, 13718, 3)
    pts = seq.points(1)
    dist = np.abs(sdf.signed_distance(verts_m, f, pts)[0])
    assert len(pts) == (d > 0).sum() and dist.max() < 1e-3
    u, vv, z = cam.project(pts)  # projection inverts back-projection
    assert np.abs(z - seq.depths[1][seq.depths[1] > 0]).max() < 1e-5


def test_depth_bad_input(tmp_path):
    with pytest.raises(depth.SequenceError, match="no camera.json"):
        depth.read_sequence(tmp_path)
    cam = depth.Camera.looking_at_subject(8, 6)
    depth.write_sequence(tmp_path / "s", cam, [np.ones((6, 8)), np.ones((6, 8))])
    np.save(tmp_path / "n.npy", np.zeros(3))
    os.makedirs(tmp_path / "t" / "depth")
    (tmp_path / "t" / "camera.json").write_text((tmp_path / "s" / "camera.json").read_text())
    np.save(tmp_path / "t" / "depth" / "000000.npy", np.full((6, 8), np.nan, np.float32))
    np.save(tmp_path / "t" / "depth" / "000001.npy", np.ones((5, 8), np.float32))
    with pytest.raises(depth.SequenceError, match=r"000001.npy: size \(8, 5\) .* differs"):
        depth.read_sequence(tmp_path / "t")
    with pytest.warns(UserWarning, match="48 non-finite pixels"):
        seq = depth.read_sequence(tmp_path / "t", frames=slice(0, 1))
    assert (seq.depths == 0).all()
    bad = json.loads((tmp_path / "s" / "camera.json").read_text())
    del bad["fx"]
    (tmp_path / "s" / "camera.json").write_text(json.dumps(bad))
    with pytest.raises(depth.SequenceError, match=r"missing field\(s\) \['fx'\]"):
        depth.read_sequence(tmp_path / "s")


def test_dataset_build_load_and_noop(tiny_dataset):
    ds = tiny_dataset
    assert (ds.path / "DONE").exists()
    train = ds.split("train")
    assert len(train) + len(ds.split("test")) == 6
    sh = ds.shape_samples(train)
    assert sh.points.shape == (len(train), 4000, 3) and sh.n_near == 2800
    fl = ds.flow_samples()
    assert fl.posed_vertices.shape[0] == len(ds.frames) and len(ds.frames) >= 12
    assert {f["motion"] for f in ds.frames} & set(ds.config.test_motions) == set()
    assert {f["motion"] for f in ds.test_frames} & set(ds.config.test_motions)
    # pairs: zero-offset posed points lie on the posed surface of that frame
    frames = torch.tensor([0, 5])
    idx = torch.randint(0, 600, (2, 50), generator=torch.Generator().manual_seed(0))
    x, y = fl.pairs(frames, idx)
    assert x.shape == y.shape == (2, 50, 3)
    assert ((x - y).norm(dim=-1) > 1e-3).float().mean() > 0.2  # the random pose moved something
    mtime = (ds.path / "sdf_points.npy").stat().st_mtime
    dataset.build(ds.config, ds.path.parent.parent, workers=1)  # second build: no-op
    assert (ds.path / "sdf_points.npy").stat().st_mtime == mtime


def test_dataset_rejects_overlapping_motions(tmp_path):
    cfg = config.from_dict(config.DataConfig, {"train_motions": ["walk"], "test_motions": ["walk"]})
    with pytest.raises(ValueError, match=r"\['walk'\] are in both"):
        dataset.build(cfg, tmp_path)
    cfg = config.from_dict(config.DataConfig, {"test_motions": ["moonwalk"]})
    with pytest.raises(ValueError, match="unknown motion 'moonwalk'"):
        dataset.build(cfg, tmp_path)


def test_compact_gt_meshes_roundtrip(tmp_path, default_body):
    v, f = default_body
    verts_m = np.stack([v / 0.4, v / 0.4 + [0, 0.1, 0]])
    cam = depth.Camera.looking_at_subject(40, 30)
    d = [depth.render_depth(cam, x, f) for x in verts_m]
    depth.write_sequence(tmp_path / "c", cam, d, verts_m, f, compact=True)
    assert (tmp_path / "c" / "gt" / "meshes.npz").exists() and not list((tmp_path / "c" / "gt").glob("*.ply"))
    seq = depth.read_sequence(tmp_path / "c")
    assert np.abs(seq.gt_vertices - verts_m).max() < 1e-3  # float16 at body scale: sub-millimetre
    assert np.array_equal(seq.gt_faces, f)
    assert depth.read_sequence(tmp_path / "c", frames=slice(1, 2)).gt_vertices.shape == (1, 13718, 3)
