"""Segmentation, centring and depth import on scenes made in code: a capsule subject standing on a
floor in front of a wall, with a ball beside it, ray-cast with the project's camera."""

import json

import numpy as np
import pytest
import trimesh
from PIL import Image

from npm_core import cli
from npm_core.data import capture, depth, import_depth

FLOOR_Y, WALL_Z = -0.95, -2.0
SUBJECT = (0.3, -0.4)  # capsule axis x, z (world metres): away from the origin
BALL = (1.0, 0.3, 0.15)  # x, z, radius


def _quad(corners):
    return trimesh.Trimesh(np.array(corners, float), [[0, 1, 2], [0, 2, 3]], process=False)


def _scene(cam, subject=True, scale=1.0):
    """(depth [H,W] metres, subject pixels [H,W] bool, ball pixels [H,W] bool) of the scene."""
    parts = [
        _quad([[-6, FLOOR_Y, WALL_Z], [6, FLOOR_Y, WALL_Z], [6, FLOOR_Y, 6], [-6, FLOOR_Y, 6]]),
        _quad([[-6, FLOOR_Y, WALL_Z], [6, FLOOR_Y, WALL_Z], [6, 4, WALL_Z], [-6, 4, WALL_Z]]),
    ]
    ball = trimesh.creation.icosphere(3, BALL[2])
    ball.apply_translation([BALL[0], FLOOR_Y + BALL[2], BALL[1]])
    cap = trimesh.creation.capsule(height=1.3, radius=0.2)  # 1.7 m tall, along z
    cap.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, [1, 0, 0]))
    cap.apply_translation([SUBJECT[0], FLOOR_Y + 0.85, SUBJECT[1]])
    scene = trimesh.util.concatenate(parts + [ball] + ([cap] if subject else []))
    d = depth.render_depth(cam, scene.vertices, scene.faces)

    def seen(m):
        dm = depth.render_depth(cam, m.vertices, m.faces)
        return (dm > 0) & (np.abs(dm - d) < 1e-4)

    return d * scale, (seen(cap) if subject else np.zeros_like(d, bool)), seen(ball)


def _look_at(cam, eye, target, roll_deg=0.0):
    """cam posed at eye (world) looking at target, rolled about its axis."""
    f = np.subtract(target, eye, dtype=float)
    f /= np.linalg.norm(f)
    right = np.cross(f, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(f, right)
    r = np.deg2rad(roll_deg)
    right, down = np.cos(r) * right + np.sin(r) * down, -np.sin(r) * right + np.cos(r) * down
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, f], 1)
    pose[:3, 3] = eye
    cam.world_from_camera = pose.tolist()
    return cam


def _angle_deg(a, b):
    return np.rad2deg(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1, 1)))


@pytest.fixture(scope="module")
def frontal():
    cam = depth.Camera.looking_at_subject(320, 240)
    return cam, *_scene(cam)


@pytest.fixture(scope="module")
def oblique():
    """A camera 1 m up and to the side, looking down at the subject, rolled 8 degrees."""
    cam = _look_at(depth.Camera.looking_at_subject(320, 240), [1.4, 1.0, 2.0], [SUBJECT[0], -0.1, SUBJECT[1]], 8.0)
    return cam, *_scene(cam)


def test_segmentation_keeps_the_subject_and_removes_floor_wall_and_ball(frontal):
    cam, d, subj, ball = frontal
    s = capture.segment_frame(d, cam)
    other = (d > 0) & ~subj
    assert (s.mask & subj).sum() >= 0.98 * subj.sum()
    assert (s.mask & other).sum() < 0.01 * other.sum() and not (s.mask & ball).any()
    assert s.source == "auto" and s.kept == s.mask.sum() and s.valid == (d > 0).sum()
    assert s.floor + s.background + s.blobs + s.kept == s.valid
    assert s.floor > 10_000 and s.background > 10_000 and s.blobs > 0.9 * ball.sum()  # (its bottom is floor)
    assert _angle_deg(s.floor_normal, [0, -1, 0]) < 1.0
    assert abs(s.centre_m[0] - SUBJECT[0]) < 0.03 and 1.4 < s.size_m < 1.75


def test_clean_frames_are_left_whole(frontal):
    cam, d, subj, _ = frontal
    only = np.where(subj, d, 0)  # a clean render: nothing to remove
    s = capture.segment_frame(only, cam)
    assert s.mask.sum() == subj.sum() and s.floor == s.background == s.blobs == 0 and s.floor_normal is None


def test_limbs_cut_off_by_depth_steps_are_kept_whole():
    """A torso with a near leg beside it (a 12 cm step), a far leg that disappears behind both (a
    38 cm step: the far leg seen past the near one from the side), a box 1.2 m behind and an
    object 30 cm in front, all touching the torso in the image: the legs are the subject's, whole,
    the box and the object are not."""
    cam = depth.Camera.looking_at_subject(320, 240)
    d = np.zeros((240, 320), np.float32)
    parts = {
        "torso": ((30, 150, 140, 180), 2.6),
        "near leg": ((100, 236, 126, 140), 2.72),  # reaches 0.77 m below the torso
        "far leg": ((150, 236, 140, 152), 2.98),
        "box behind": ((30, 80, 180, 215), 3.8),
        "object in front": ((60, 80, 110, 126), 2.3),
    }
    pixels = {}
    for name, ((r0, r1, c0, c1), z) in parts.items():
        pixels[name] = np.zeros_like(d, bool)
        pixels[name][r0:r1, c0:c1] = d[r0:r1, c0:c1] == 0
        d[pixels[name]] = z
    s = capture.segment_frame(d, cam)
    subject = pixels["torso"] | pixels["near leg"] | pixels["far leg"]
    assert (s.mask == subject).all()
    assert s.blobs == pixels["box behind"].sum() + pixels["object in front"].sum()


def test_a_box_picks_the_subject(frontal):
    cam, d, subj, ball = frontal
    v, u = np.nonzero(ball)
    box = (u.min() - 3, v.min() - 3, u.max() + 4, v.max() + 4)
    s = capture.segment_frame(d, cam, capture.SegmentConfig(min_size_m=0.2), box=box)
    assert s.source == "box" and (s.mask & ball).sum() >= 0.98 * ball.sum() and not (s.mask & subj).any()


def test_user_masks_take_precedence_and_segmentation_is_saved(frontal, tmp_path):
    cam, d, subj, ball = frontal
    depth.write_sequence(tmp_path, cam, [d, d])
    (tmp_path / "masks").mkdir()
    for t, m in enumerate([ball, subj]):
        Image.fromarray(m.astype(np.uint8) * 7).save(tmp_path / "masks" / f"{t:06d}.png")
    seq = depth.read_sequence(tmp_path)
    segs = capture.segment_sequence(seq, capture.SegmentConfig(min_size_m=0.2))
    assert [s.source for s in segs] == ["masks", "masks"]
    assert (segs[0].mask == ball).all() and (segs[1].mask == subj).all()
    saved = np.asarray(Image.open(tmp_path / "segmentation" / "000000.png"))
    assert (saved == np.where(ball, 255, 0)).all()
    summary = json.loads((tmp_path / "segmentation" / "frames.json").read_text())
    assert [f["kept"] for f in summary] == [int(ball.sum()), int(subj.sum())]
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "masks" / "000001.png")
    with pytest.raises(depth.SequenceError, match=r"masks/000001.png: size \(10, 10\)"):
        capture.segment_sequence(depth.read_sequence(tmp_path), capture.SegmentConfig(min_size_m=0.2))


def test_floor_gives_the_up_direction_within_2_degrees(oblique):
    cam, d, subj, _ = oblique
    s = capture.segment_frame(d, cam, up=np.array([0.0, -1.0, 0.0]))  # the camera's -y as the only prior
    true_up = capture.up_in_camera(cam)
    assert _angle_deg(true_up, [0, -1, 0]) > 20  # the prior is well off
    assert _angle_deg(s.floor_normal, true_up) < 2.0
    assert (s.mask & subj).sum() >= 0.98 * subj.sum() and (s.mask & ~subj).sum() < 0.01 * (~subj & (d > 0)).sum()


def test_prepare_centres_an_off_centre_subject(frontal, tmp_path):
    cam, d, subj, _ = frontal
    gt = np.zeros((2, 4, 3), np.float32)
    depth.write_sequence(tmp_path, cam, [d, d], gt, np.array([[0, 1, 2]]))
    seq = depth.read_sequence(tmp_path)
    prep = capture.prepare(seq)
    # the capsule's axis is at x 0.3, z -0.4; its centre 0.85 m above the floor
    np.testing.assert_allclose(prep.centre_m, [SUBJECT[0], FLOOR_Y + 0.85, SUBJECT[1]], atol=0.08)
    np.testing.assert_allclose(prep.offset_m, -prep.centre_m)
    out = prep.sequence
    assert ((out.depths > 0) == np.stack([subj, subj])).mean() > 0.999
    assert np.linalg.norm(np.median(out.points(1), 0)) < 0.2
    np.testing.assert_allclose(out.gt_vertices, gt + prep.offset_m.astype(np.float32))
    assert (
        json.loads((tmp_path / "segmentation" / "centre.json").read_text())["offset_m"]
        == np.round(prep.offset_m, 4).tolist()
    )
    assert (capture.centring_offset([0.1, 0.05, 0.1]) == 0).all()  # already centred: left alone


def test_errors_name_the_frame_and_what_was_seen(frontal, tmp_path):
    cam, d, subj, _ = frontal
    empty, _, _ = _scene(cam, subject=False)
    depth.write_sequence(tmp_path, cam, [d, empty])
    seen = r"\(76800 pixels with depth, median [\d.]+ m: \d+ floor, \d+ background\)$"
    with pytest.raises(
        capture.SegmentationError,
        match=r"^frame 1: no component of the subject's size \(0.50-3.00 m\) within 1.5 m of the image centre; "
        r"the largest there was \d+ points, 0.2\d m across, 2.4 m away: wrong depth scale\? " + seen,
    ):
        capture.segment_sequence(depth.read_sequence(tmp_path), save=False)
    with pytest.raises(
        capture.SegmentationError,
        match=r"^frame 3: no component larger than 2000 points within 1.5 m of the image centre; "
        r"largest was 10\d\d points at 2.4 m \(\d+ pixels with depth, median 2.\d m: \d+ floor, "
        r"0 background\)$",
    ):  # only the ball is left
        capture.segment_frame(np.where(empty < 4.0, empty, 0), cam, capture.SegmentConfig(min_points=2000), frame=3)
    with pytest.raises(
        capture.SegmentationError,
        match=r"^frame 4: no component larger than 500 points within 1.5 m of the "
        r"image centre apart from 1 spanning the image \(background\); largest "
        r"was 76800 points at 0.5 m; the median depth 0.48 m is outside 0.5-6.0 m: "
        r"wrong depth scale\? \(76800 pixels with depth, median 0.5 m: 0 floor, "
        r"0 background\)$",
    ):
        capture.segment_frame(d / 10, cam, frame=4)  # (the floor and the wall are too small to be either)
    with pytest.raises(
        capture.SegmentationError,
        match=r"^frame 2: no component .*; the median depth 48.\d\d m is outside "
        r"0.5-6.0 m: wrong depth scale\? \(76800 pixels with depth",
    ):
        capture.segment_frame(d * 10, cam, frame=2)
    with pytest.raises(
        capture.SegmentationError,
        match=r"^frame 5: the subject \(\d+ points, 0.3 m from the camera\) is "
        r"0.1\d m across, outside the plausible 0.5-3.0 m: wrong depth scale\?",
    ):
        capture.segment_frame(d / 10, cam, user_mask=subj, frame=5)


def test_import_png_scale_5000_round_trips(oblique, tmp_path):
    cam, d, subj, _ = oblique
    src = tmp_path / "src"
    src.mkdir()
    frames = [d, np.roll(d, 3, axis=1)]
    for t, f in enumerate(frames):
        Image.fromarray(np.round(f * 5000).astype(np.uint16)).save(src / f"frame_{t:03d}.png")
    info = import_depth.import_depth(src, tmp_path / "seq", cam.fx, cam.fy, cam.cx, cam.cy, depth_scale=5000)
    assert info.frames == 2 and info.up_from == "floor (2 frames)"
    assert _angle_deg(info.up_camera, capture.up_in_camera(cam)) < 2.0
    seq = depth.read_sequence(tmp_path / "seq")
    assert seq.camera.depth_scale == 5000 and json.loads((tmp_path / "seq" / "capture.json").read_text())["box"] is None
    for t, f in enumerate(frames):
        back = (seq.points(t) - seq.camera.pose[:3, 3]) @ seq.camera.pose[:3, :3]  # to the camera frame
        v, u = np.nonzero(f > 0)
        ray = np.stack([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, np.ones(len(u))], 1)
        err = np.linalg.norm(back - ray * f[v, u, None], axis=1) / np.linalg.norm(ray, axis=1)
        assert len(back) == len(u) and err.max() <= 0.5 / 5000 + 1e-6
    # the world: y up, the subject near the origin, the camera in front of it (+z)
    world_up = seq.camera.pose[:3, :3] @ capture.up_in_camera(cam)
    assert _angle_deg(world_up, [0, 1, 0]) < 2.0
    subject = seq.points(0)[subj[seq.depths[0] > 0]]
    assert np.linalg.norm(np.median(subject, 0)) < 0.2 and seq.camera.pose[2, 3] > 1.5


def test_import_npy_metres_with_masks_and_box(frontal, tmp_path):
    cam, d, subj, _ = frontal
    src, masks = tmp_path / "src", tmp_path / "masks"
    src.mkdir()
    masks.mkdir()
    np.save(src / "a.npy", d.astype(np.float32))
    Image.fromarray(subj.astype(np.uint8)).save(masks / "a.png")
    info = import_depth.import_depth(
        src, tmp_path / "seq", cam.fx, cam.fy, cam.cx, cam.cy, masks=masks, box=(10, 10, 300, 230), up=[0, -1, 0]
    )
    assert info.up_from == "given"
    seq = depth.read_sequence(tmp_path / "seq")
    assert np.abs(seq.depths[0] - d).max() <= 0.5 / 1000 + 1e-6
    assert (capture.read_mask(tmp_path / "seq" / "masks" / "000000.png", d.shape) == subj).all()
    assert capture.read_box(tmp_path / "seq") == (10, 10, 300, 230)


def test_import_depth_cli_and_its_errors(frontal, tmp_path, capsys):
    cam, d, _, _ = frontal
    src = tmp_path / "src"
    src.mkdir()
    Image.fromarray(np.round(d * 1000).astype(np.uint16)).save(src / "0.png")
    intr = ["--fx", str(cam.fx), "--fy", str(cam.fy), "--cx", str(cam.cx), "--cy", str(cam.cy)]
    assert cli.main(["data", "import-depth", str(src), "--out", str(tmp_path / "seq"), *intr]) == 0
    assert "imported 1 frames to" in capsys.readouterr().out
    assert len(depth.read_sequence(tmp_path / "seq")) == 1

    def error(*args):
        assert cli.main(["data", "import-depth", *map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("npms: error: ")
        return err

    assert "already exists and is not empty" in error(src, "--out", tmp_path / "seq", *intr)
    (tmp_path / "none").mkdir()
    assert "none: no .png or .npy depth frames" in error(tmp_path / "none", "--out", tmp_path / "o", *intr)
    Image.fromarray(np.zeros((240, 320), np.uint8)).save(src / "1.png")
    assert "1.png: expected a 16-bit single-channel depth PNG" in error(src, "--out", tmp_path / "o", *intr)
    Image.fromarray(np.zeros((20, 30), np.uint16)).save(src / "1.png")
    assert "1.png: size (30, 20) (w, h) differs from 0.png's (320, 240)" in error(src, "--out", tmp_path / "o", *intr)
    Image.fromarray(np.zeros((240, 320), np.uint16)).save(src / "1.png")  # an empty frame: imported, warned
    with pytest.warns(
        UserWarning, match=r"1 of the first 2 frames had no subject; first: frame 1: no pixel with depth"
    ):
        assert (
            cli.main(["data", "import-depth", str(src), "--out", str(tmp_path / "seq2"), *intr, "--up", "0,-1,0"]) == 0
        )
    assert "box [0, 0, 400, 10]: expected" in error(src, "--out", tmp_path / "o", *intr, "--box", 0, 0, 400, 10)
    assert "--up" in error(src, "--out", tmp_path / "o", *intr, "--up", "sideways")
    assert "wrong depth scale?" in error(src, "--out", tmp_path / "o", *intr, "--depth-scale", 100)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))


def test_an_unsegmented_body_scene_is_segmented_and_centred(default_body, tmp_path):
    v, f = default_body
    shift = np.array([0.6, 0.0, -0.7])
    body = trimesh.Trimesh(v / 0.4 + shift, f, process=False)  # model units -> metres, off the origin
    y = body.vertices[:, 1].min()
    ball = trimesh.creation.icosphere(3, 0.2)
    ball.apply_translation([-0.9, y + 0.2, 0.0])
    scene = trimesh.util.concatenate(
        [
            body,
            ball,
            _quad([[-6, y, -2.5], [6, y, -2.5], [6, y, 6], [-6, y, 6]]),
            _quad([[-6, y, -2.5], [6, y, -2.5], [6, 4, -2.5], [-6, 4, -2.5]]),
        ]
    )
    cam = depth.Camera.looking_at_subject(320, 240)
    d = depth.render_depth(cam, scene.vertices, scene.faces)
    only = depth.render_depth(cam, body.vertices, f)
    subj = (only > 0) & (np.abs(only - d) < 1e-4)
    depth.write_sequence(tmp_path, cam, [d])
    prep = capture.prepare(depth.read_sequence(tmp_path))
    kept = prep.sequence.depths[0] > 0
    assert (kept & subj).sum() >= 0.98 * subj.sum() and (kept & ~subj).sum() < 0.01 * ((d > 0) & ~subj).sum()
    np.testing.assert_allclose(prep.offset_m[[0, 2]], -shift[[0, 2]], atol=0.03)


def test_fill_dropped_puts_back_the_silhouette_ring():
    from npm_core.data.sensor import fill_dropped

    d = np.zeros((7, 7), np.float32)
    d[2:5, 2:5] = 2.0
    d[2, 2] = 0.0  # a dropped corner pixel of the body
    d[3, 3] = 3.0
    out = fill_dropped(d)
    assert out[2, 2] == pytest.approx((2.0 * 2 + 3.0) / 3)  # its 3 measured neighbours
    assert out[1, 3] == pytest.approx((2.0 + 2.0 + 2.0) / 3) and out[0, 3] == 0.0  # one ring grown, not two
    assert out[0, 0] == 0.0 and out.dtype == np.float32  # one measured neighbour is not enough
    assert (fill_dropped(d, rounds=2)[0, 3]) > 0


def test_segment_config_for_a_domain_of_another_size():
    """Subject lengths scale with the domain (a hand: 2.94 model units per metre -> x 0.136); the
    camera's range, pixel counts and angles do not; bodies (0.4) keep the defaults."""
    assert capture.SegmentConfig.for_scale(0.4) == capture.SegmentConfig()
    hand = capture.SegmentConfig.for_scale(2.94)
    k = 0.4 / 2.94
    assert hand.min_size_m == pytest.approx(0.5 * k) and hand.max_size_m == pytest.approx(3.0 * k)
    assert hand.attach_m == pytest.approx(0.15 * k) and hand.behind_m == pytest.approx(0.1 * k)
    assert hand.floor_tol_m == pytest.approx(0.03 * k)  # the floor band, thinner than a hand
    assert (hand.max_depth_m, hand.min_points, hand.floor_max_tilt_deg) == (6.0, 500, 45.0)
