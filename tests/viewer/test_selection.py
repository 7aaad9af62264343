"""State + codes -> what the view shows (pure: no polyscope, no worker)."""

from types import SimpleNamespace

import numpy as np

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
