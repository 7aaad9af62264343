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
