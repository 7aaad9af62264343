"""`npms data import`: a folder of registered meshes of a non-body shape family made in code
(capsules of several radii and lengths, one shared topology, bent and twisted by an analytic
deformation) is validated, imported, trained on with tiny decoders, extracted, evaluated and
fitted; and bad folders are refused naming the file, with nothing half-built left."""

from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
import yaml

from npm_core import layout
from npm_core.config import FlowConfig, SdfConfig
from npm_core.data import dataset
from npm_core.data.meshes import ImportConfig, MeshFolderError, import_meshes

RADII_MM = [20.0, 24.0, 28.0, 32.0, 26.0]  # identity c4 (held out) lies inside the training range
LENGTHS_MM = [80.0, 120.0, 100.0, 140.0, 110.0]
POSES = {
    "rest": (0, 0),
    "bend_l": (50, 0),
    "bend_r": (-50, 0),
    "twist": (0, 40),
    "bend_twist": (30, -30),
    "sweep_1": (20, 0),
    "sweep_2": (40, 10),
}


def capsule(radius: float, length: float, seg: int = 16, cap: int = 4, rings: int = 8):
    """(vertices [V,3], faces [F,3]) of a closed capsule along +z, centred; the topology depends only on
    seg/cap/rings. Faces wind outward."""
    prof = [(length / 2 + radius * np.cos(p), radius * np.sin(p)) for p in np.linspace(0, np.pi / 2, cap + 1)[1:]]
    prof += [(length / 2 - k * length / rings, radius) for k in range(1, rings + 1)]
    prof += [(-length / 2 - radius * np.cos(p), radius * np.sin(p)) for p in np.linspace(np.pi / 2, 0, cap + 1)[1:-1]]
    a = np.linspace(0, 2 * np.pi, seg, endpoint=False)
    v = [[0, 0, length / 2 + radius]] + [[r * np.cos(t), r * np.sin(t), z] for z, r in prof for t in a]
    v.append([0, 0, -length / 2 - radius])
    n, f = len(prof), []
    for j in range(seg):
        f.append([0, 1 + j, 1 + (j + 1) % seg])
        for i in range(n - 1):
            p, q = 1 + i * seg, 1 + (i + 1) * seg
            f += [[p + j, q + j, q + (j + 1) % seg], [p + j, q + (j + 1) % seg, p + (j + 1) % seg]]
        f.append([len(v) - 1, 1 + (n - 1) * seg + (j + 1) % seg, 1 + (n - 1) * seg + j])
    return np.array(v), np.array(f)


def deform(v: np.ndarray, bend_deg: float, twist_deg: float, total: float) -> np.ndarray:
    """Twist about z by twist_deg * z / total, then bend in the x-z plane by bend_deg over the length."""
    z = v[:, 2]
    t = np.radians(twist_deg) * z / total
    x, y = v[:, 0] * np.cos(t) - v[:, 1] * np.sin(t), v[:, 0] * np.sin(t) + v[:, 1] * np.cos(t)
    if bend_deg:
        big_r = total / np.radians(bend_deg)
        x, z = big_r - (big_r - x) * np.cos(z / big_r), (big_r - x) * np.sin(z / big_r)
    return np.stack([x, y, z], 1)


def write_folder(d: Path) -> Path:
    """The capsule family in the mesh-folder layout: millimetres, z up, attributes, one sequence, a split."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "domain.yaml").write_text(yaml.safe_dump({"name": "capsules", "units": 0.001, "up": "+z"}))
    attrs = {}
    for k, (r, length) in enumerate(zip(RADII_MM, LENGTHS_MM)):
        ident = f"c{k}"
        v, f = capsule(r, length)
        (d / ident / "poses").mkdir(parents=True, exist_ok=True)
        trimesh.Trimesh(v, f, process=False).export(d / ident / "canonical.ply")
        for name, (b, t) in POSES.items():
            trimesh.Trimesh(deform(v, b, t, length + 2 * r), f, process=False).export(
                d / ident / "poses" / f"{name}.ply"
            )
        attrs[ident] = {"radius_mm": r, "length_mm": length}
    (d / "attributes.yaml").write_text(yaml.safe_dump(attrs))
    (d / "sequences.yaml").write_text(
        yaml.safe_dump({"sweep": {"identity": "c0", "poses": ["rest", "sweep_1", "sweep_2"]}})
    )
    (d / "split.yaml").write_text(yaml.safe_dump({"test": ["c4"], "test_sequences": ["sweep"]}))
    return d


SMALL = ImportConfig(sdf=SdfConfig(samples=20_000), flow=FlowConfig(samples_per_sigma=2000))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("import")
    res = import_meshes(write_folder(tmp / "capsules"), tmp / "dataset", SMALL, workers=1)
    return tmp, res


def test_import_layout_and_transform(imported):
    tmp, res = imported
    ds = dataset.open_dataset(res.path)
    assert [x["id"] for x in ds.identities] == ["c0", "c1", "c2", "c3", "c4"]
    assert [x["split"] for x in ds.identities] == ["train"] * 4 + ["test"]
    assert ds.identities[1]["attributes"] == {"length_mm": 120.0, "radius_mm": 24.0}
    assert (
        ds.domain.name == "capsules" and ds.domain.attributes == ["length_mm", "radius_mm"] and ds.domain.joints == []
    )
    assert ds.domain.capture_rotation == "none"  # no upright axis declared: fits estimate the translation only
    # 4 training identities x 7 poses, minus c0's 3-frame held-out sequence; held out: those 3 + c4's 7
    assert (res.identities, res.frames, res.test_frames) == (5, 25, 10)
    assert {(f["motion"], f["frame"]) for f in ds.test_frames if f["identity"] == 0} == {
        ("sweep", 0),
        ("sweep", 1),
        ("sweep", 2),
    }
    c = ds.canonical()
    # the longest capsule (c3: 140 + 2 * 32 mm) spans the cube less the 0.1 margins, z up -> y up, centred
    assert np.ptp(c[..., 1]) == pytest.approx(0.8, abs=1e-5) and np.abs(c).max() == pytest.approx(0.4, abs=1e-5)
    assert ds.domain.length_to_metres(np.ptp(c[3, :, 1])) == pytest.approx(0.204, abs=1e-6)
    v, _ = capsule(RADII_MM[2], LENGTHS_MM[2])
    np.testing.assert_allclose(ds.domain.model_to_user(c[2]), v, atol=1e-3)  # round trip to the user's mm
    assert ds.faces().shape == (2 * 16 * (4 + 8 + 3), 3) and not list(tmp.glob("*.partial"))
    assert sorted(p.name for p in res.path.iterdir()) == sorted(
        [f"{a}.npy" for a in layout.DATASET_ARRAYS]
        + ["config.yaml", "identities.yaml", "frames.yaml", "test_frames.yaml", "domain.yaml", "DONE"]
    )


TINY = None  # set in `trained`


@pytest.fixture(scope="module")
def trained(imported):
    """A tiny model trained on the imported capsules, as `npms train shape|pose --data` records it."""
    from dataclasses import asdict

    from npm_core.models import DecoderConfig, ModelConfig, load_model
    from npm_core.train import TrainPoseConfig, TrainShapeConfig, train_pose, train_shape

    tmp, res = imported
    ds = dataset.open_dataset(res.path)
    tiny = ModelConfig(DecoderConfig(64, 4, 8, 4, 2), DecoderConfig(64, 4, 8, 3, 2))
    out = tmp / "ckpt"
    sections = {
        "dataset": layout.relative_sequence_path(out, res.path),
        "import": ds.config,
        "domain": asdict(ds.domain),
    }
    torch.manual_seed(0)
    train_shape(
        ds.shape_samples(ds.split("train")),
        TrainShapeConfig(
            epochs=150,
            batch_shapes=4,
            points_per_shape=2048,
            lr_net=3e-3,
            lr_codes=3e-2,
            lr_decay_every=100,
            prior_ramp_epochs=5,
            log_every_s=0.0,
        ),
        tiny,
        out,
        code_labels=ds.shape_code_labels(),
        sections=sections,
    )
    m = load_model(out)
    train_pose(
        ds.flow_samples(),
        m.shape_decoder,
        m.shape_codes,
        TrainPoseConfig(
            epochs=150,
            batch_frames=8,
            points_per_frame=1024,
            lr_net=3e-3,
            lr_codes=3e-2,
            lr_decay_every=100,
            prior_ramp_epochs=5,
            log_every_s=0.0,
        ),
        tiny,
        out,
        code_labels=ds.pose_code_labels(),
        sections=sections,
    )
    return ds, load_model(out), tiny


def test_trained_tiny_model_numbers(trained):
    from npm_core import evaluate
    from npm_core.models.decoders import ShapeDecoder

    ds, m, tiny = trained
    assert m.meta["shape"]["codes"][0] == {"identity": "c0", "attributes": {"length_mm": 80.0, "radius_mm": 20.0}}
    assert m.meta["pose"]["codes"][0]["motion"] == "bend_l" and m.meta["pose"]["codes"][0]["frame"] is None
    train_iou = evaluate.evaluate_shapes(m, ds, "train", 4, resolution=48, iou_points=50_000, chamfer_points=5000)
    test = evaluate.evaluate_shapes(m, ds, "test", 1, resolution=48, iou_points=50_000, chamfer_points=5000)
    print("train IoU", [round(r["iou"], 3) for r in train_iou], "held-out", test)
    torch.manual_seed(0)
    untrained = type(m)(m.config, ShapeDecoder(tiny.shape).eval(), m.shape_codes, meta=m.meta)
    base = evaluate.evaluate_shapes(untrained, ds, "test", 1, resolution=48, iou_points=50_000, chamfer_points=5000)
    poses = evaluate.evaluate_poses(m, ds, max_frames=10, points=300)
    print("untrained", base, "poses", poses)
    assert min(r["iou"] for r in train_iou) > 0.8
    assert test[0]["iou"] > 0.7 > base[0]["iou"]
    assert poses["unseen motions, training identities"]["frames"] == 3 and poses["test identities"]["frames"] == 7
    assert poses["all held-out frames"]["frames"] == 10
    flow = ds.flow_samples(test=True)  # the error of not moving at all, for scale
    still_cm = 100 * ds.domain.length_to_metres(
        (flow.posed_vertices - flow.canonical_vertices[flow.frame_shape]).norm(dim=-1).mean()
    )
    assert still_cm == pytest.approx(0.46, abs=0.01)  # 4.6 mm at the capsules' true scale
    assert poses["unseen motions, training identities"]["mean_vertex_error_cm"] < 0.15  # about 0.9 mm measured
    assert poses["test identities"]["mean_vertex_error_cm"] < 0.15  # about 1.0 mm measured


def _small_folder(d: Path, idents=2, poses=("bend_l",)) -> Path:
    """A minimal mesh folder: `idents` capsules with `poses`, no optional files."""
    for k in range(idents):
        v, f = capsule(RADII_MM[k], LENGTHS_MM[k])
        (d / f"c{k}" / "poses").mkdir(parents=True)
        trimesh.Trimesh(v, f, process=False).export(d / f"c{k}" / "canonical.ply")
        for name in poses:
            b, t = POSES[name]
            trimesh.Trimesh(deform(v, b, t, 100.0), f, process=False).export(d / f"c{k}" / "poses" / f"{name}.ply")
    return d


def test_cli_import_and_mismatched_vertex_count(tmp_path, capsys):
    from npm_core.cli import main

    src = _small_folder(tmp_path / "src")
    cfg = tmp_path / "import.yaml"
    cfg.write_text(yaml.safe_dump({"sdf": {"samples": 2000}, "flow": {"samples_per_sigma": 200}}))
    assert (
        main(["data", "import", str(src), "--out", str(tmp_path / "ds"), "--config", str(cfg), "--workers", "1"]) == 0
    )
    assert "imported 2 identities, 1 training and 1 held-out frames" in capsys.readouterr().out
    ds = dataset.open_dataset(tmp_path / "ds")  # default split: one of two identities held out
    assert sorted(x["split"] for x in ds.identities) == ["test", "train"] and "attributes" not in ds.identities[0]

    bad = tmp_path / "src" / "c1" / "poses" / "bend_l.ply"
    v, f = capsule(RADII_MM[1], LENGTHS_MM[1], seg=12)
    trimesh.Trimesh(v, f, process=False).export(bad)
    assert main(["data", "import", str(src), "--out", str(tmp_path / "ds2"), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("npms: error: ") and err.count("\n") == 1
    assert f"{bad}: 182 vertices and 360 faces; {src / 'c0' / 'canonical.ply'} has 242 vertices and 480 faces" in err
    assert not (tmp_path / "ds2").exists() and not list(tmp_path.glob(".*partial"))


def test_non_watertight_canonical(tmp_path):
    src = _small_folder(tmp_path / "src")
    for path in src.rglob("*.ply"):  # one triangle missing everywhere: filled, and said so
        m = trimesh.load(path, process=False)
        trimesh.Trimesh(m.vertices, m.faces[1:], process=False).export(path)
    res = import_meshes(
        src,
        tmp_path / "ds",
        ImportConfig(sdf=SdfConfig(samples=2000), flow=FlowConfig(samples_per_sigma=200)),
        workers=1,
    )
    assert (
        len(res.notes) == 1
        and "c0/canonical.ply: not watertight (3 boundary edges); filled its holes with 1 faces" in res.notes[0]
    )
    assert dataset.open_dataset(res.path).faces().shape == (480, 3)
    for path in src.rglob("*.ply"):  # the top pole's fan gone: a 16-edge hole fill_holes cannot close
        m = trimesh.load(path, process=False)
        trimesh.Trimesh(m.vertices, m.faces[(m.faces != 0).all(1)], process=False).export(path)
    with pytest.raises(
        MeshFolderError, match=r"c0/canonical.ply: the canonical mesh is not watertight \(16 boundary edges\)"
    ):
        import_meshes(src, tmp_path / "ds3")
    assert not (tmp_path / "ds3").exists()


def test_capture_rotation_is_declared_by_the_domain(tmp_path):
    """domain.yaml `capture_rotation: yaw` (the subject stands upright along +y) lets the fit search
    the yaw; a mesh folder without it, or a checkpoint recorded before the key existed, is fitted
    with the translation only; Anny bodies turn; an unknown value is refused by file and value."""
    from npm_core import fit
    from npm_core.domain import info_from_dict

    src = _small_folder(tmp_path / "src")
    small = ImportConfig(sdf=SdfConfig(samples=2000), flow=FlowConfig(samples_per_sigma=200))
    (src / "domain.yaml").write_text(yaml.safe_dump({"up": "+z", "capture_rotation": "yaw"}))
    upright = dataset.open_dataset(import_meshes(src, tmp_path / "ds", small, workers=1).path).domain
    assert upright.capture_rotation == "yaw"
    assert fit.for_domain(fit.fast_config(), upright).use_rotation
    legacy = {k: v for k, v in vars(upright).items() if k != "capture_rotation"}
    assert info_from_dict(legacy).capture_rotation == "none" and info_from_dict(None).capture_rotation == "yaw"
    cfg = fit.fast_config()
    assert not fit.for_domain(cfg, info_from_dict(legacy)).use_rotation and cfg.use_rotation  # a copy
    (src / "domain.yaml").write_text(yaml.safe_dump({"capture_rotation": "roll"}))
    with pytest.raises(
        MeshFolderError, match=r"domain.yaml: capture_rotation 'roll': expected one of \['yaw', 'none'\]"
    ):
        import_meshes(src, tmp_path / "ds2", small, workers=1)
    assert not (tmp_path / "ds2").exists()


def test_failed_build_leaves_nothing_half_built(tmp_path, monkeypatch):
    from npm_core.data import meshes

    src = _small_folder(tmp_path / "src")
    small = ImportConfig(sdf=SdfConfig(samples=2000), flow=FlowConfig(samples_per_sigma=200))
    first = import_meshes(src, tmp_path / "ds", small, workers=1)
    before = sorted(p.name for p in first.path.iterdir())

    def broken(self, frames):
        raise OSError("disk full")

    monkeypatch.setattr(meshes.MeshFolderSource, "posed", broken)
    for out in [tmp_path / "ds", tmp_path / "new"]:  # an earlier dataset is kept; a new one never appears
        with pytest.raises(OSError, match="disk full"):
            import_meshes(src, out, small, workers=1)
    assert sorted(p.name for p in first.path.iterdir()) == before and layout.is_dataset(first.path)
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["ds", "src"]


def test_cli_eval_model_and_extract_in_the_domains_units(trained, imported, tmp_path, capsys):
    import json

    from npm_core.cli import main

    ds, m, _ = trained
    ckpt = m.path
    assert (
        main(
            [
                "eval-model",
                "--checkpoint",
                str(ckpt),
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
            ]
        )
        == 0
    )  # the dataset the checkpoint records
    out = json.loads((tmp_path / "e.json").read_text())
    assert out["test_identities"]["per_identity"][0]["identity"] == "c4" and out["test_identities"]["iou"] > 0.8
    assert (
        main(
            [
                "extract",
                "--checkpoint",
                str(ckpt),
                "--shape",
                "3",
                "--resolution",
                "64",
                "--out",
                str(tmp_path / "c3.ply"),
            ]
        )
        == 0
    )
    v = trimesh.load(tmp_path / "c3.ply").vertices  # metres, y up, in the user's frame: 0.204 m long, 0.064 m wide
    assert np.ptp(v[:, 1]) == pytest.approx(0.204, abs=0.01) and np.ptp(v[:, 0]) == pytest.approx(0.064, abs=0.006)
    assert np.abs(v.mean(0)).max() < 0.01


def test_fit_depth_of_an_imported_shape_at_its_true_size(trained, tmp_path):
    """c0's held-out 3-frame sweep rendered at the capsule's true size (0.12 m long, the camera 0.3 m
    away; `npms data sequence --data`) and fitted from one view with segmentation on: the fit works in
    the domain's units and sizes the subject by them (at the body's 0.4 units per metre this subject
    would be refused as too small and land 7x too small in the cube)."""
    from npm_core import fit, metrics
    from npm_core.data import depth

    ds, m, _ = trained
    cam = depth.Camera.looking_at_subject(128, 96, distance=0.3)
    seq = depth.dataset_sequence(tmp_path / "seq", ds, "c0", "sweep", cam)
    assert len(seq) == 3 and np.ptp(seq.gt_vertices[0], 0).max() == pytest.approx(0.12, abs=1e-3)  # metres
    cfg = fit.fast_config(use_rotation=False)
    cfg.canonical_samples, cfg.init_resolution, cfg.final_resolution = 5000, 32, 48
    cfg.points_per_frame, cfg.icp_points, cfg.init_candidates = 800, 300, 8
    cfg.first_frame_iters, cfg.frame_iters, cfg.refine_steps = 100, 20, 40
    res = fit.fit(m, seq, cfg)
    out = fit.read_result(fit.write_result(tmp_path / "fit", res, m, cfg, "capsules", seq.path, 48))
    assert out.meta["model_per_metre"] == pytest.approx(ds.domain.model_per_metre)
    _, posed, f = out.meshes()
    assert 0.1 < np.ptp(posed[0], 0).max() < 0.14  # the fitted capsule, in metres
    ev = metrics.evaluate_sequence(
        posed, f, seq.gt_vertices, seq.gt_faces, 20000, model_per_metre=ds.domain.model_per_metre
    )["mean"]
    print(f"fit IoU {ev['iou']:.3f} EPE {ev['epe_cm'] * 10:.2f} mm")
    assert ev["iou"] > 0.75 and ev["epe_cm"] * 10 < 8


def test_semantics_from_attributes(trained, capsys):
    from npm_core import semantics
    from npm_core.cli import main

    _, m, _ = trained
    assert main(["semantics", "--checkpoint", str(m.path), "--shape-map", "linear", "--pose-map", "linear"]) == 0
    assert "shape code -> attribute R^2 (training codes): length_mm" in capsys.readouterr().out
    sem = semantics.load(layout.checkpoint_semantics_path(m.path))
    assert sem.names == ["length_mm", "radius_mm"] and sem.angles_to_pose is None  # no joint angles in this domain
    # the pose PCA needs no labels: its first axis carries the most variance of the training pose codes
    assert sem.pose_pca is not None and sem.pose_pca.explained[0] >= sem.pose_pca.explained[-1] > 0
    np.testing.assert_allclose(sem.phenotype_range, [[80.0, 20.0], [140.0, 32.0]])
    code = sem.shape_code({"length_mm": 100.0, "radius_mm": 28.0})
    near = np.linalg.norm(code - m.shape_codes[2].numpy()) / np.linalg.norm(m.shape_codes[2].numpy())
    print("attribute map: distance to the code of c2 (100 mm, 28 mm), relative", near)
    assert code.shape == (1, 8) and near < 0.5
    assert sem.out_of_range({"length_mm": 200.0, "radius_mm": 28.0}) == ["length_mm"]


def test_cli_train_on_an_imported_dataset(tmp_path):
    """`npms train shape --data DATASET`, then `npms train pose` on the dataset the checkpoint records."""
    from npm_core.cli import main

    src = _small_folder(tmp_path / "src", idents=3, poses=("bend_l", "twist"))
    (src / "attributes.yaml").write_text(yaml.safe_dump({f"c{k}": {"radius_mm": RADII_MM[k]} for k in range(3)}))
    import_meshes(
        src,
        tmp_path / "ds",
        ImportConfig(sdf=SdfConfig(samples=2000), flow=FlowConfig(samples_per_sigma=200)),
        workers=1,
    )
    cfg = tmp_path / "t.yaml"
    cfg.write_text(
        yaml.safe_dump({"shape": {"epochs": 1, "points_per_shape": 256}, "pose": {"epochs": 1, "points_per_frame": 64}})
    )
    ck = tmp_path / "ck"
    assert (
        main(
            ["train", "shape", "--data", str(tmp_path / "ds"), "--out", str(ck), "--config", str(cfg), "--threads", "1"]
        )
        == 0
    )
    assert main(["train", "pose", "--out", str(ck), "--config", str(cfg), "--threads", "1"]) == 0
    info = layout.read_checkpoint_info(ck)
    assert info.config["dataset"] == "../ds" and info.config["domain"]["attributes"] == ["radius_mm"]
    assert "data" not in info.config and info.config["import"]["margin"] == 0.1
    ds = dataset.open_dataset(tmp_path / "ds")
    train = [ds.identities[i]["id"] for i in ds.split("train")]
    assert [(x.identity, x.attributes) for x in info.shape_labels] == [
        (i, {"radius_mm": RADII_MM[int(i[1])]}) for i in train
    ]
    assert info.num_pose_codes == 2 * len(train) and sorted({x.name for x in info.pose_labels}) == ["bend_l", "twist"]
