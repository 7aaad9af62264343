"""State + codes -> what the view shows (pure: no polyscope, no worker)."""

from types import SimpleNamespace

import numpy as np
import pytest

from npm_viewer import selection as sel
from npm_viewer.state import State


def _model():
    S = np.arange(32, dtype=np.float32).reshape(4, 8)
    P = np.arange(24, dtype=np.float32).reshape(6, 4) * -1
    return SimpleNamespace(
        shape_codes=S,
        pose_codes=P,
        motions={"walk": [2, 0, 4], "jump": [1, 3, 5]},
        semantics=None,
        phenotypes=None,
        angles=None,
    )


def test_shape_code_blends_a_to_b_and_the_prior_sample_replaces_a():
    st, m = State(shape_a=1, shape_b=3, alpha=0.25), _model()
    np.testing.assert_allclose(sel.shape_code(st, m), 0.75 * m.shape_codes[1] + 0.25 * m.shape_codes[3])
    st.sampled, st.alpha = [7.0] * 8, 0.0
    np.testing.assert_allclose(sel.shape_code(st, m), 7.0)


def test_pose_code_reads_the_one_frame_index_while_a_motion_is_on():
    st, m = State(pose_a=0, pose_b=5, beta=0.5, motion="walk"), _model()
    np.testing.assert_allclose(sel.pose_code(st, m), 0.5 * m.pose_codes[0] + 0.5 * m.pose_codes[5])
    st.motion_on = True
    for frame, row in ((0, 2), (1, 0), (2, 4), (4, 0)):  # the motion's rows in order, wrapped
        st.frame = frame
        np.testing.assert_allclose(sel.pose_code(st, m), m.pose_codes[row])
    assert sel.timeline(st, m, None) == (0, 0.0)  # the pose view is not showing
    st.view = "pose"
    assert sel.timeline(st, m, None) == (3, st.motion_fps)
    replay = SimpleNamespace(done=True, frames=30, fps=25.0)
    st.view = "sequence"
    assert sel.timeline(st, m, replay) == (30, 25.0)  # the same `frame` replays the sequence


def test_requests_per_view():
    st, m = State(), _model()
    (r,) = sel.requests(st, m)
    assert (r.channel, r.resolution, r.pose_mode, r.items[0][1]) == ("main", 128, "exact", None)
    assert sel.requests(st, m, preview=True)[0].resolution == st.preview_resolution
    st.view = "pose"
    (r,) = sel.requests(st, m, preview=True)
    assert r.resolution == 128 and r.pose_mode == "preview" and r.items[0][1] is not None  # cached mesh, anchors
    st.view, st.transfer_shape, st.transfer_pose = "transfer", 2, 3
    (r,) = sel.requests(st, m)
    np.testing.assert_array_equal(r.items[0][0], m.shape_codes[2])
    np.testing.assert_array_equal(r.items[0][1], m.pose_codes[3])
    st.gallery, st.gallery_shapes, st.gallery_poses = True, [0, 3], [1, 2, 5]
    (r,) = sel.requests(st, m)
    assert r.channel == "gallery" and r.resolution == sel.GALLERY_RESOLUTION and len(r.items) == 6
    np.testing.assert_array_equal(r.items[4][0], m.shape_codes[3])  # row 1 = shape 3, column 1 = pose 2
    np.testing.assert_array_equal(r.items[4][1], m.pose_codes[2])
    st.view = "sequence"
    assert sel.requests(st, m) == [] and sel.requests(State(), None) == []


def _imported_model(names):
    """A model of an imported domain (3 model units per metre, no joint angles) whose semantics
    map len(names) attributes, each identity with its own values."""
    from npm_core.domain import DomainInfo
    from npm_core.semantics import PCA, LinearMap, Semantics

    rng = np.random.default_rng(0)
    attrs = 10.0 * np.arange(1, len(names) + 1) + rng.random((5, len(names)))  # 5 identities
    codes = rng.standard_normal((5, 8)).astype(np.float32)
    sem = Semantics(
        LinearMap.fit(attrs, codes), LinearMap.fit(codes, attrs), PCA.fit(codes), np.stack([attrs.min(0), attrs.max(0)])
    )
    sem.attribute_names = list(names)
    model = _model()
    sem.pose_pca = PCA.fit(np.asarray(model.pose_codes, np.float64))  # as semantics.compute: no angles needed
    model.shape_codes, model.semantics, model.phenotypes, model.note = codes, sem, attrs, ""
    model.domain = DomainInfo(name="hands", source="meshes", model_per_metre=3.0, attributes=list(names))
    return model


def _viewer(model):
    st = State()
    st.reset_semantics(model.semantics)
    return SimpleNamespace(state=st, model=model, request_mesh=lambda preview=False: None)


@pytest.mark.parametrize(
    "names", [["length_mm", "radius_mm"], ["arch", "length_mm", "width_mm"], [f"a{k}" for k in range(8)]]
)
def test_shape_sliders_are_the_attributes_of_an_imported_domain(names):
    from npm_viewer.panels import shape

    m = _imported_model(names)
    v = _viewer(m)
    items = shape.slider_items(m)
    assert [label for _, label, _, _ in items] == names  # one per attribute, in the semantics' order
    lo, hi = m.semantics.phenotype_range
    assert [(i, a, b) for i, _, a, b in items] == [(i, lo[i], hi[i]) for i in range(len(names))]
    assert len(v.state.phenotype_delta) == len(names)
    np.testing.assert_allclose(sel.base_phenotypes(v.state, m), m.phenotypes[0])  # identity 0's own attributes
    base_code, k = sel.shape_code(v.state, m), len(names) - 1
    shape.set_phenotype(v, names[k], m.phenotypes[0, k] + 2.0)  # the last slider moves the last attribute only
    np.testing.assert_allclose(v.state.phenotype_delta, np.eye(len(names))[k] * 2.0, atol=1e-4)
    p2s, base = m.semantics.phenotype_to_shape, m.phenotypes[0]
    np.testing.assert_allclose(
        sel.shape_code(v.state, m), base_code + p2s(base + 2.0 * np.eye(len(names))[k]) - p2s(base), atol=1e-5
    )


def test_anny_shape_sliders_stay_the_six_phenotypes_over_0_1():
    from npm_core import bodies
    from npm_viewer.panels import shape

    m = _imported_model(bodies.PHENOTYPES)
    m.semantics.attribute_names = None  # Anny bodies
    assert shape.slider_items(m) == [(i, n, 0.0, 1.0) for i, n in enumerate(bodies.PHENOTYPES)]


def test_a_domain_without_joints_has_no_joint_sliders_and_poses_by_blending():
    from npm_viewer.panels import pose

    m = _imported_model(["length_mm", "radius_mm"])
    v = _viewer(m)
    assert pose.joint_items(m) == [] and "hands" in pose.no_joints_note(m)
    assert v.state.angle_delta == [] and len(v.state.pose_pca) == len(m.semantics.pose_pca.std)
    with pytest.raises(ValueError, match="no joint-angle sliders"):
        pose.set_joint(v, "knee_bend_l", 30.0)
    v.state.pose_a, v.state.pose_b, v.state.beta = 1, 2, 0.5
    blend = 0.5 * m.pose_codes[1] + 0.5 * m.pose_codes[2]
    np.testing.assert_allclose(sel.pose_code(v.state, m), blend)
    v.state.pose_pca[0] = 2.0  # two standard deviations along the first pose PC
    pc = m.semantics.pose_pca
    np.testing.assert_allclose(sel.pose_code(v.state, m), blend + 2.0 * pc.std[0] * pc.directions[0], atol=1e-5)
