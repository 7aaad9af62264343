"""The hands domain (npm_core/hands.py): Anny's right hand cut at the wrist and capped, in the hand
frame, posed by named finger/thumb/wrist angles, exported as a mesh folder that `npms data import`
takes like any user's meshes."""

import numpy as np
import pytest
import trimesh
import yaml

from npm_core import hands
from npm_core.config import FlowConfig, SdfConfig
from npm_core.data import dataset
from npm_core.data.meshes import import_meshes


@pytest.fixture(scope="module")
def gestures():
    return hands.hand_meshes({}, hands.gesture_angles(list(hands.GESTURES)))


def _tip(v):
    """The highest point along the fingers (+y)."""
    return v[np.argmax(v[:, 1])]


def test_every_hand_is_one_closed_outward_surface(gestures):
    faces = hands.hand_faces()
    ph = np.array([[0.0, 0.3, 1.0, 1.0, 1.0, 0.0], [1.0, 0.9, 0.0, 0.0, 0.0, 1.0]])  # two ends of the box
    for v in [*gestures, *hands.hand_meshes(ph, hands.sample_hand_poses(2, seed=3))]:
        m = trimesh.Trimesh(v, faces, process=False)
        assert m.is_watertight and m.is_winding_consistent and m.volume > 0
        assert len(m.split(only_watertight=False)) == 1
    assert gestures.shape[1] == faces.max() + 1


def test_hand_frame_and_gestures(gestures):
    """Wrist joint at the origin, the cut 1.5-3 cm below it, fingers along +y, the thumb at +x, the
    palm facing +z; a fist pulls the fingertips in by more than 6 cm towards the palm; spread widens."""
    g = dict(zip(hands.GESTURES, gestures))
    open_hand = g["open"]
    ring = hands._cut()[2]
    assert -0.031 < open_hand[ring, 1].min() and open_hand[ring, 1].max() < -0.01
    length = np.ptp(open_hand[:, 1])
    assert 0.17 < length < 0.23  # wrist stub to the middle fingertip, metres
    assert _tip(open_hand)[1] > 0.14
    assert open_hand[:, 0].max() > -open_hand[:, 0].min()  # the thumb reaches further to +x
    assert _tip(open_hand)[1] - _tip(g["fist"])[1] > 0.06
    assert np.ptp(g["spread"][:, 0]) > np.ptp(open_hand[:, 0]) + 0.02
    assert _tip(g["point"])[1] > _tip(g["fist"])[1] + 0.04  # the index stays out
    # the fingers close towards the palm (+z): the middle fingertip, bent 80 degrees at its base
    tip = np.argmax(open_hand[:, 1])
    assert g["flat_bend"][tip, 2] > open_hand[tip, 2] + 0.05


def test_hand_size_follows_the_body():
    v = hands.hand_meshes(np.array([[0.0, 0.78, 0.5, 0.5, 0.0, 0.5], [0.0, 0.78, 0.5, 0.5, 1.0, 0.5]]))
    short, tall = np.ptp(v[0, :, 1]), np.ptp(v[1, :, 1])
    assert tall > 1.15 * short


def test_bad_angles_are_refused():
    with pytest.raises(ValueError, match="columns"):
        hands.hand_meshes({}, np.zeros((1, 3)))
    with pytest.raises(ValueError, match="unknown gesture 'wave2'"):
        hands.gesture_angles(["wave2"])


def test_export_then_import(tmp_path):
    """The mesh folder goes through `npms data import`: the test gestures and the demo sequence are
    held out for every hand, the test hands entirely; attributes are the phenotypes."""
    cfg = hands.HandsConfig(identities=5, random_poses=1, gesture_steps=1, demo_identities=1, demo_steps=2)
    folder = hands.export_hands(tmp_path / "meshes", cfg)
    split = yaml.safe_load((folder / "split.yaml").read_text())
    assert len(split["test"]) == 1 and "demo/" + split["test"][0] in split["test_sequences"]
    from npm_core.data.dataset import ImportConfig

    res = import_meshes(folder, tmp_path / "ds", ImportConfig(SdfConfig(samples=2000), FlowConfig(100)), workers=1)
    ds = dataset.open_dataset(res.path)
    assert ds.domain.name == "hands" and len(ds.domain.attributes) == 6
    trained = {f["motion"].split("/")[0] for f in ds.frames}
    held = {f["motion"].split("/")[0] for f in ds.test_frames}
    assert not trained & set(hands.TEST_GESTURES) and set(hands.TEST_GESTURES) | {"demo"} <= held
    n_gestures = len(hands.GESTURES) - 1
    n_demo = (len(hands.DEMO_SEQUENCE) - 1) * 2 + 1
    assert len(ds.frames) == 4 * (1 + n_gestures - len(hands.TEST_GESTURES))
    assert len(ds.test_frames) == 4 * len(hands.TEST_GESTURES) + (1 + n_gestures + n_demo)
    # every pose inside the model cube, the largest extent filling it less the margins
    v = np.concatenate([ds.canonical(), np.asarray(ds._npy("posed")), np.asarray(ds._npy("test_posed"))])
    assert np.abs(v).max() <= 0.4 + 1e-5
    lengths = ds.domain.length_to_metres(np.ptp(ds.canonical()[:, :, 1], 1))  # true size, metres
    assert 0.15 < lengths.min() and lengths.max() < 0.3
