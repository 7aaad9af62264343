"""What the UI reads: per-frame point sets made one size (so a point cloud moves in place)."""

import numpy as np
import pytest

from npm_viewer.loading import fixed_count


def test_fixed_count_keeps_repeats_or_fills():
    rng = np.random.default_rng(0)
    big, small = rng.random((50, 3)), rng.random((3, 3))
    out = fixed_count([big, small, np.zeros((0, 3))], 20, fill=[9, 9, 9])
    assert out.shape == (3, 20, 3) and out.dtype == np.float32
    assert len(np.unique(out[0], axis=0)) == 20 and np.isin(out[0], big.astype(np.float32)).all()  # 20 of the 50
    np.testing.assert_allclose(out[1][:6], np.concatenate([small, small]), rtol=1e-6)  # repeated in order
    np.testing.assert_allclose(out[2], 9.0)  # an empty frame: every point at `fill`
    assert fixed_count([small], 15000, fill=[0, 0, 0]).shape == (1, 3, 3)  # no padding beyond the largest frame


def test_motion_rows_play_clip_after_clip():
    from types import SimpleNamespace

    from npm_core.layout import PoseCodeLabel
    from npm_viewer.loading import _motions

    # two identities' walk clips interleaved in the code table, a squat, and one unlabelled code
    labels = [PoseCodeLabel("walk", f, shape_index=s) for s, f in [(5, 0), (2, 0), (5, 1), (2, 1), (5, 2)]]
    labels += [PoseCodeLabel("squat", 0, shape_index=5), PoseCodeLabel()]
    info = SimpleNamespace(motions={"squat": [5], "walk": [0, 1, 2, 3, 4]})  # layout's order: by frame
    got = _motions(info, np.zeros((7, 2)), labels)
    assert got == {"squat": [5], "walk": [0, 2, 4, 1, 3], "unlabelled": [6]}  # identity 5's clip, then 2's


def test_checkpoint_info_cache_is_plain_arrays_and_reads_back_the_same(tiny_ckpt, tmp_path, monkeypatch):
    from npm_viewer import loading

    monkeypatch.setenv("NPM_CACHE_DIR", str(tmp_path))
    first = loading.ModelInfo.read(tiny_ckpt)  # reads the checkpoint, writes the cache
    cached = loading._cache_file(tiny_ckpt)
    assert cached.is_file() and cached.suffix == ".npz"
    with np.load(cached, allow_pickle=False) as z:  # no pickled objects in it
        assert set(z.files) >= {"shape_codes", "info"}
    again = loading.ModelInfo.read(tiny_ckpt)  # from the cache
    direct = loading.ModelInfo.read(tiny_ckpt, cache=False)
    for m in (again, direct):
        np.testing.assert_array_equal(m.shape_codes, first.shape_codes)
        np.testing.assert_array_equal(m.pose_codes, first.pose_codes)
        assert m.shape_labels == first.shape_labels and m.pose_labels == first.pose_labels
        assert m.motions == first.motions and m.info.shape_labels == first.info.shape_labels
        assert m.info.pose_labels == first.info.pose_labels and m.info.config == first.info.config
    cached.write_bytes(b"damaged")  # a damaged cache entry is read around, not fatal
    np.testing.assert_array_equal(loading.ModelInfo.read(tiny_ckpt).shape_codes, first.shape_codes)


def test_replay_shows_what_segmentation_kept_and_the_body_orientation(tiny_ckpt, tmp_path):
    """A fit whose sequence holds segmentation masks (the left half of each image kept) and whose
    frame 2 faces +x: the replay splits the depth points into kept and removed, reports the kept
    share per frame, and its orientation arrow and yaw follow the fitted rotation."""
    import tiny
    from PIL import Image

    from npm_core import layout
    from npm_viewer.loading import FitReplay

    fit_dir = tiny.make_fit(tiny_ckpt, tmp_path / "fit", tmp_path / "seq", frames=4, resolution=32)
    seg = layout.sequence_segmentation_dir(tmp_path / "seq")
    seg.mkdir()
    for t in range(4):
        mask = np.zeros((120, 160), np.uint8)
        mask[:, :80] = 255
        Image.fromarray(mask).save(layout.sequence_segmentation_path(tmp_path / "seq", t))
    with np.load(layout.fit_npz_path(fit_dir)) as z:
        arrays = dict(z)
    arrays["rotation"][2] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]  # 90 degrees about y: front +z -> +x
    np.savez(layout.fit_npz_path(fit_dir), **arrays)

    rp = FitReplay(fit_dir)
    while not rp.done:
        rp.load_step(1.0)
    assert rp.points.shape[0] == rp.removed.shape[0] == 4
    kept_x, removed_x = rp.points[0, :, 0], rp.removed[0, :, 0]
    assert kept_x.max() < removed_x.min() or removed_x.max() < kept_x.min()  # the two image halves
    assert np.all((rp.kept_fraction > 0.2) & (rp.kept_fraction < 0.8))
    np.testing.assert_allclose(rp.yaw_deg, [0, 0, 90, 0], atol=1e-4)
    np.testing.assert_allclose(rp.metrics["body yaw (deg)"], rp.yaw_deg)
    arrows, faces = rp.facing
    assert arrows.shape[0] == 4 and faces.max() < arrows.shape[1]
    reach = arrows - rp.posed.mean(1)[:, None]
    assert reach[2, :, 0].max() == pytest.approx(0.45, abs=1e-3) and reach[0, :, 2].max() == pytest.approx(
        0.45, abs=1e-3
    )


def test_imported_domain_checkpoint_reads_its_domain_and_attributes(imported_ckpt, tmp_path, monkeypatch):
    """A checkpoint of an imported mesh domain: its DomainInfo, its identities' attributes in the
    order of the semantics (sorted, not the order meta.yaml lists them in), labels naming them."""
    import tiny

    from npm_core.domain import DomainInfo
    from npm_viewer import loading

    monkeypatch.setenv("NPM_CACHE_DIR", str(tmp_path))
    names = ["arch", "length_mm", "width_mm"]
    for m in (loading.ModelInfo.read(imported_ckpt), loading.ModelInfo.read(imported_ckpt)):  # then from the cache
        assert (m.domain.source, m.domain.model_per_metre, m.domain.centre_m) == ("meshes", 3.0, [0.0, 0.1, 0.0])
        assert m.semantics.names == names and m.semantics.angles_to_pose is None
        want = [[tiny.imported_attributes(i)[n] for n in names] for i in range(len(tiny.SCALES))]
        np.testing.assert_allclose(m.phenotypes, want)
        np.testing.assert_allclose(m.semantics.phenotype_range, [np.min(want, 0), np.max(want, 0)])
        assert m.shape_labels[1] == "1 hand1  arch 0.5  length_mm 171  width_mm 85" and m.angles is None
    assert loading.read_domain(imported_ckpt) == m.domain
    assert loading.read_domain(tmp_path / "missing") == DomainInfo()  # unreadable: Anny bodies


def test_orientation_arrow_is_sized_to_the_subject():
    """A hand's arrow (fit.yaml model_per_metre 2.94 -> size 0.4 / 2.94) is that share of a body's 0.45 m."""
    from npm_viewer.loading import facing_arrows

    rot = np.eye(3, dtype=np.float32)[None]
    body, _ = facing_arrows(np.zeros((1, 3)), rot)
    hand, _ = facing_arrows(np.zeros((1, 3)), rot, 0.4 / 2.94)
    assert body[0, :, 2].max() == pytest.approx(0.45, abs=1e-4)
    assert hand[0, :, 2].max() == pytest.approx(0.45 * 0.4 / 2.94, abs=1e-4)
    assert np.abs(hand[0, :, :2]).max() == pytest.approx(0.035 * 0.4 / 2.94, abs=1e-4)  # the cone's radius
