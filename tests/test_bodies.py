import numpy as np
import pytest
import trimesh

from npm_core import bodies, space


def test_identities_realistic_seeded_and_split():
    a = bodies.sample_identities(200, seed=3)
    b = bodies.sample_identities(200, seed=3)
    assert [x.id for x in a] == [x.id for x in b] and a[7].phenotypes == b[7].phenotypes
    assert bodies.sample_identities(200, seed=4)[7].phenotypes != a[7].phenotypes
    ph = bodies.phenotype_array(a)
    assert ph.min() >= 0 and ph.max() <= 1
    ages = np.array([x.age_years for x in a])
    assert ages.min() < 20 and ages.max() > 75  # teens to elderly
    g = ph[:, bodies.PHENOTYPES.index("gender")]
    assert (g < 0.3).sum() > 20 and (g > 0.7).sum() > 20  # both genders
    w = ph[:, bodies.PHENOTYPES.index("weight")]
    assert w.min() < 0.2 and w.max() > 0.8  # thin to heavy
    assert sum(x.split == "test" for x in a) == 40


def test_canonical_bodies_fit_cube_are_watertight_and_differ_in_height():
    ids = bodies.sample_identities(40, seed=0)
    v = bodies.body_meshes(bodies.phenotype_array(ids))
    assert v.shape == (40, 13718, 3) and v.dtype == np.float32
    assert not space.outside_cube(v, margin=0.02).any()
    heights_m = space.model_to_metres(v[:, :, 1].max(1) - v[:, :, 1].min(1))
    assert heights_m.min() < 1.55 and heights_m.max() > 1.75  # short to tall
    m = trimesh.Trimesh(v[0], bodies.faces(), process=False)
    assert m.is_watertight and m.is_winding_consistent and m.volume > 0
    # pelvis at the origin: the body's vertical middle is near 0, symmetric in x
    assert abs(v[:, :, 0].mean()) < 0.01


def _region(v, mask):
    return v[mask].mean(0)


def test_joint_angle_signs_are_anatomical(default_body):
    v0, _ = default_body
    left_hand = v0[:, 0] > np.quantile(v0[:, 0], 0.99)  # A-pose: outermost +x = left hand
    left_foot = (v0[:, 1] < np.quantile(v0[:, 1], 0.01)) & (v0[:, 0] > 0)
    head = v0[:, 1] > np.quantile(v0[:, 1], 0.98)
    ph = {k: 0.5 for k in bodies.PHENOTYPES}

    def moved(joint, deg, region):
        v = bodies.body_meshes(ph, {joint: deg})[0]
        return _region(v, region) - _region(v0, region)

    assert moved("shoulder_raise_l", 90, left_hand)[1] > 0.1  # hand goes up (+y)
    assert moved("shoulder_flex_l", 80, left_hand)[2] > 0.05  # arm swings forward (+z)
    d = moved("elbow_bend_l", 90, left_hand)  # forearm folds up towards the shoulder
    assert d[1] > 0.1 and d[0] < -0.1
    assert moved("hip_flex_l", 80, left_foot)[2] > 0.1  # leg forward
    assert moved("knee_bend_l", 90, left_foot)[2] < -0.05  # shin backwards
    assert moved("hip_abduct_l", 35, left_foot)[0] > 0.05  # leg out to the left (+x)
    assert moved("spine_bend", 40, head)[2] > 0.05  # bend forward
    right_of_left = moved("shoulder_raise_r", 90, left_hand)
    assert np.abs(right_of_left).max() < 1e-4  # right joints leave the left hand alone


def test_pose_sampler_within_limits_and_seeded():
    a = bodies.sample_poses(500, seed=2)
    assert a.shape == (500, len(bodies.JOINT_NAMES))
    lo = np.array([bodies.JOINTS[n].lo for n in bodies.JOINT_NAMES])
    hi = np.array([bodies.JOINTS[n].hi for n in bodies.JOINT_NAMES])
    assert (a >= lo).all() and (a <= hi).all()
    assert np.array_equal(a, bodies.sample_poses(500, seed=2))
    assert a.std(0).min() > 2.0  # every joint actually varies


def test_motions():
    assert len(bodies.MOTIONS) >= 7
    for name in bodies.MOTIONS:
        m = bodies.motion(name)
        assert m.num_frames >= 60 and m.angles.shape == (m.num_frames, len(bodies.JOINT_NAMES))
        assert m.translation.shape == (m.num_frames, 3)
        assert np.ptp(m.angles, axis=0).max() > 20, name  # it moves
    with pytest.raises(ValueError, match="unknown motion 'moonwalk'"):
        bodies.motion("moonwalk")


def test_bad_phenotypes_and_joints():
    with pytest.raises(ValueError, match=r"unknown phenotype\(s\) \['hight'\]"):
        bodies.check_phenotypes({"hight": 0.5})
    with pytest.raises(ValueError, match="'weight' = 1.5 is outside"):
        bodies.check_phenotypes({"weight": 1.5})
    with pytest.raises(ValueError, match=r"unknown joint\(s\) \['knee'\]"):
        bodies.check_joint_angles({"knee": 10})


def test_outer_surface_closes_the_mouth_and_drops_inner_parts():
    """`outer`: one watertight skin; a point 2-10 mm behind the lip line is in the mouth cavity
    (outside) for Anny's skin and inside for the outer surface."""
    v = bodies.body_meshes({})[0]
    full, outer = bodies.body_faces("full"), bodies.body_faces("outer")
    assert len(outer) < len(full) and outer.max() < len(v)
    m = trimesh.Trimesh(v, outer, process=False)
    assert m.is_watertight and m.is_winding_consistent and m.volume > 0
    assert len(m.split(only_watertight=False)) == 1  # no eyeballs or teeth
    skin_parts = trimesh.Trimesh(v, full, process=False).split(only_watertight=False)
    assert len(skin_parts) > 1
    skin = max(skin_parts, key=lambda p: len(p.faces))
    new = np.array(sorted({tuple(sorted(f)) for f in outer.tolist()} - {tuple(sorted(f)) for f in full.tolist()}))
    lip = v[new].mean((0, 1))  # the strip closing the lips
    assert abs(lip[0]) < 0.005 and lip[1] > 0.2  # on the midline of the face
    behind = lip + np.array([[0, 0, -0.002], [0, 0, -0.005], [0, 0, -0.01]]) / space.model_to_metres(1.0)
    assert not skin.contains(behind).any() and m.contains(behind).all()
    # the same triangles serve every body: other phenotypes stay watertight
    other = bodies.body_meshes({"weight": 1.0, "age": 0.95, "gender": 1.0})[0]
    assert trimesh.Trimesh(other, outer, process=False).is_watertight
    with pytest.raises(ValueError, match="unknown body surface 'skin'"):
        bodies.body_faces("skin")


def test_tail_identities_are_the_named_extremes():
    tails = bodies.tail_identities()
    ids = [t.id for t in tails]
    assert len(ids) == len(set(ids)) == 4 * len(bodies.TAIL_EXTREMES) + 4 and {t.split for t in tails} == {"tail"}
    by = {t.id: t for t in tails}
    assert by["tail-weight-hi-f"].phenotypes["weight"] == 1.0 and by["tail-weight-hi-f"].phenotypes["gender"] == 1.0
    assert by["tail-age-hi-m"].age_years == pytest.approx(85.0, abs=0.5)
    assert by["tail-age-lo-m"].age_years == pytest.approx(13.0, abs=0.5)
    v = bodies.body_meshes(bodies.phenotype_array([by[f"tail-height-{e}-{g}"] for e in ("lo", "hi") for g in "mf"]))
    heights = space.model_to_metres(v[:, :, 1].max(1) - v[:, :, 1].min(1))
    assert np.allclose(heights, [1.40, 1.40, 2.00, 2.00], atol=0.01), heights
    assert not space.outside_cube(v, margin=0.0).any()
    # appended after the sampled identities; the sampled ones do not change
    plain, with_tails = bodies.sample_identities(20, seed=0), bodies.sample_identities(20, seed=0, tails=True)
    assert with_tails[:20] == plain and [t.id for t in with_tails[20:]] == ids


def test_box_identities_cover_the_phenotype_box():
    mixed = bodies.sample_identities(60, seed=0, box_fraction=0.5, box_heights_m=(1.35, 2.05))
    ph = bodies.phenotype_array(mixed[30:])
    v = bodies.body_meshes(ph)
    heights = space.model_to_metres(v[:, :, 1].max(1) - v[:, :, 1].min(1))
    assert heights.min() >= 1.35 and heights.max() <= 2.05 and heights.max() > 1.9
    assert not space.outside_cube(v, margin=0.0).any()
    for k in ("weight", "muscle", "proportions"):  # uniform over the box: both ends reached
        col = ph[:, bodies.PHENOTYPES.index(k)]
        assert col.min() < 0.15 and col.max() > 0.85, (k, col.min(), col.max())
    ages = np.array([x.age_years for x in mixed[30:]])
    assert ages.min() >= 13.0 - 1e-6 and ages.max() <= 85.0 + 1e-6
    assert sum(x.split == "test" for x in mixed) == 12
