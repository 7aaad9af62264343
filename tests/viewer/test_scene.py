"""The scene: one frame index (the State's) drives every node, one visibility rule, structures
updated in place, one camera framing (also used by the headless renderer)."""

import numpy as np
import pytest

from npm_viewer import scene as sc
from npm_viewer.state import State


def test_visibility_rule():
    st = State()
    table = {}
    for view in ("shape", "pose", "transfer", "sequence"):
        for gallery in (False, True):
            st.view, st.gallery = view, gallery
            table[view, gallery] = {g for g in sc.GROUPS if sc.visible(g, st)}
    assert table["shape", False] == table["shape", True] == table["pose", False] == {"body"}
    assert table["transfer", False] == {"body"} and table["transfer", True] == {"gallery"}
    # the truth is off by default; removed points and the orientation arrow are on
    assert table["sequence", False] == {"fit", "points", "removed", "facing"}
    st.view, st.show_gt, st.show_points, st.show_fit = "sequence", True, False, False
    st.show_removed = st.show_facing = False
    assert {g for g in sc.GROUPS if sc.visible(g, st)} == {"gt"}
    st.show_removed = st.show_facing = st.compare = True  # side by side: fit and truth only
    assert {g for g in sc.GROUPS if sc.visible(g, st)} == {"fit", "gt"}
    st.view, st.panel = "shape", "export"  # train/export keep showing the last 3D view
    assert sc.visible("body", st)


def test_framing_centres_the_box_right_of_the_panel():
    lo, hi = (-1.0, -1.0, 0.0), (1.0, 1.0, 0.0)
    eye, target = sc.framing(lo, hi, (800, 800), panel_width=0, margin=1.0, lift=0.0)
    np.testing.assert_allclose(target, (0, 0, 0))
    np.testing.assert_allclose(eye, (0, 0, 1 / np.tan(np.deg2rad(22.5))))  # half-height 1 fills the 45 deg view
    # a 200 px panel: the box fits the remaining 600 px (half-width 1 -> half-height 800/600) and
    # moves right by the panel's share
    eye, target = sc.framing(lo, hi, (800, 800), panel_width=200, margin=1.0, lift=0.1)
    half = 800 / 600
    np.testing.assert_allclose(target, (-half * 200 / 800, 0, 0))
    np.testing.assert_allclose(eye, (-half * 200 / 800, 0.1 * half, half / np.tan(np.deg2rad(22.5))))


def test_grid_offsets_row_major():
    o = sc.grid_offsets(2, 3, (1.5, 2.0))
    assert o.shape == (6, 3) and o.dtype == np.float32
    np.testing.assert_allclose(o[4], (1.5, -2.0, 0.0))  # row 1, column 1
    np.testing.assert_allclose(o[:, 0], [0, 1.5, 3, 0, 1.5, 3])


HANDS = dict(name="hands", source="meshes", model_per_metre=3.0, centre_m=[0.0, 0.1, 0.0], attributes=["length_mm"])


def test_sizes_follow_the_domain_anny_bodies_keep_theirs():
    from npm_core.data.dataset import anny_info
    from npm_core.domain import DomainInfo

    for anny in (DomainInfo(), anny_info()):  # no domain section, and the one an Anny dataset records
        s = sc.sizes_for(anny)
        assert sc.domain_scale(anny) == 1.0 and s == sc.Sizes() and s.box is sc.BODY_BOX
        assert (s.gallery_spacing, s.compare_shift, s.label_lift, s.point_radius) == ((1.3, 1.9), 1.0, 0.08, 0.0025)
    hands = DomainInfo(**HANDS)
    s, k = sc.sizes_for(hands), 0.4 / 3.0
    assert sc.domain_scale(hands) == pytest.approx(k)
    # the model cube [-0.5, 0.5]^3 in metres: 1/3 m wide, around the domain's centre
    np.testing.assert_allclose(s.box, [[-0.5 / 3, 0.1 - 0.5 / 3, -0.5 / 3], [0.5 / 3, 0.1 + 0.5 / 3, 0.5 / 3]])
    np.testing.assert_allclose(s.gallery_spacing, (1.3 * k, 1.9 * k))
    np.testing.assert_allclose(s.row_label, (-0.95 * k, 0.1 * k, 0.0))
    np.testing.assert_allclose(s.column_label, (0.0, 0.1 + 0.42 / 3, 0.0))  # above the shapes (import margin)
    np.testing.assert_allclose(
        [s.compare_shift, s.label_lift, s.point_radius, s.removed_radius], np.array([1.0, 0.08, 0.0025, 0.002]) * k
    )


def _tri(n_frames, shift=0.0):
    """[T, 3, 3] one triangle moving +x by 0.1 per frame."""
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32) + shift
    return np.stack([v + [0.1 * t, 0, 0] for t in range(n_frames)]).astype(np.float32)


@pytest.fixture
def scene(backend):
    s = sc.Scene(State())
    yield s
    for g in sc.GROUPS:
        s.remove_group(g)


def test_one_frame_index_drives_every_node(scene):
    st, faces = scene.state, np.array([[0, 1, 2]])
    st.view, st.show_gt = "sequence", True
    fit = scene.set_mesh("test fit", "fit", _tri(5), faces, key="fit")
    gt = scene.set_mesh("test gt", "gt", _tri(3, 0.5), faces, key="gt")
    pts = scene.set_points("test points", "points", _tri(5, 2.0))
    body = scene.set_mesh("test body", "body", _tri(1)[0], faces, key="body")
    assert scene.frames() == 5  # the longest visible node
    for k in (3, 4, 0, 2):
        st.frame = k
        scene.sync()
        assert fit.shown_frame == k and pts.shown_frame == k
        assert gt.shown_frame == min(k, 2) and body.shown_frame == 0  # shorter nodes hold their last frame
        np.testing.assert_allclose(scene.mesh_on_screen()[0], _tri(5)[k])
    assert [n.registrations for n in (fit, gt, pts, body)] == [1, 1, 1, 1]  # moved in place, never re-registered


def test_visibility_follows_the_state_at_sync(scene):
    st, faces = scene.state, np.array([[0, 1, 2]])
    fit = scene.set_mesh("test fit", "fit", _tri(2), faces)
    gt = scene.set_mesh("test gt", "gt", _tri(2), faces)
    body = scene.set_mesh("test body", "body", _tri(1)[0], faces)
    assert (body.enabled, fit.enabled, gt.enabled) == (True, False, False)
    st.view = "sequence"
    scene.sync()
    assert (body.enabled, fit.enabled, gt.enabled) == (False, True, False)
    assert scene.ground == "none"  # no shadow pass during replay
    st.show_gt = True
    scene.sync()
    assert gt.enabled
    st.view = "pose"
    scene.sync()
    assert (body.enabled, fit.enabled, gt.enabled) == (True, False, False) and scene.ground == "shadow_only"
    st.frame = 1
    scene.sync()
    assert fit.shown_frame == 0  # a hidden node is not moved ...
    st.view = "sequence"
    scene.sync()
    assert fit.shown_frame == 1  # ... until it is shown


def test_same_topology_moves_in_place_a_new_one_registers(scene):
    faces = np.array([[0, 1, 2]])
    n = scene.set_mesh("test body", "body", _tri(1)[0], faces, key=("code", 128))
    n = scene.set_mesh("test body", "body", _tri(1)[0] * 2, faces, key=("code", 128))
    assert n.registrations == 1
    np.testing.assert_allclose(scene.mesh_on_screen()[0], _tri(1)[0] * 2)
    n = scene.set_mesh("test body", "body", _tri(1)[0], faces, key=("other", 128))
    assert n.registrations == 2
    quad = np.concatenate([_tri(1)[0], [[1, 1, 0]]])
    n = scene.set_mesh("test body", "body", quad, np.array([[0, 1, 2], [1, 3, 2]]), key=("other", 128))
    assert n.registrations == 3  # same key, other vertex count: registered anew


def test_error_colours_follow_the_switch(scene):
    st = scene.state
    st.view = "sequence"
    fit = scene.set_mesh(
        "test fit", "fit", _tri(2), np.array([[0, 1, 2]]), scalars=np.ones((2, 3)), scalar_range=(0.0, 2.0)
    )
    assert fit.colored
    st.color_error = False
    scene.sync()
    assert fit.colored is False
    st.color_error = True
    st.frame = 1
    scene.sync()
    assert fit.colored and fit.shown_frame == 1


def test_camera_framed_once_per_view(scene):
    import polyscope as ps

    st, faces = scene.state, np.array([[0, 1, 2]])
    scene.set_mesh("test gallery", "gallery", _tri(1)[0] * 3, faces)
    st.view, st.gallery = "transfer", True
    scene.sync()
    assert scene.framed == "transfer-gallery"
    view = ps.get_view_as_json()
    scene.sync()
    assert ps.get_view_as_json() == view  # not reframed while the view stays (the user's camera)
    scene.reframe()
    assert scene.framed is None
    scene.sync()
    assert scene.framed == "transfer-gallery"


def test_a_domain_frames_its_own_box_and_shifts_by_its_size(scene):
    from npm_core.domain import DomainInfo

    st, faces = scene.state, np.array([[0, 1, 2]])
    scene.set_mesh("test body", "body", _tri(1)[0] * 0.1, faces)
    np.testing.assert_allclose(scene.view_bounds(), sc.BODY_BOX)  # Anny bodies: the standing-body box
    scene.sizes = sc.sizes_for(DomainInfo(**HANDS))
    assert scene.view_bounds() is scene.sizes.box  # a hand: its model cube in metres
    st.view, st.compare = "sequence", True
    fit = scene.set_mesh("fit", "fit", _tri(2) * 0.1, faces)
    gt = scene.set_mesh("gt", "gt", _tri(2) * 0.1, faces)
    scene.sync()
    assert fit.shifted == 0.0 and gt.shifted == pytest.approx(0.4 / 3.0)  # beside the fit, a hand's width away
    (fpos, _), (gpos, _) = scene.labels()
    assert gpos[0] - fpos[0] == pytest.approx(0.4 / 3.0) and fpos[1] == pytest.approx(0.1 + 0.08 * 0.4 / 3.0)
    assert scene.set_points("test points", "points", _tri(1)[0]).radius == pytest.approx(0.0025 * 0.4 / 3.0)
