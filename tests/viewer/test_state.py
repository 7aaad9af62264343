"""Pure state helpers: interpolation, prior samples, labels, motion groups, playback."""

import numpy as np
import pytest

from npm_viewer import state as S


def test_mix_and_prior():
    a, b = np.zeros(4), np.ones(4)
    assert np.allclose(S.mix(a, b, 0.25), 0.25) and S.mix(a, b, 0).dtype == np.float32
    codes = np.random.default_rng(0).normal(2.0, 0.5, (500, 3))
    s = np.stack([S.prior_sample(codes, np.random.default_rng(i)) for i in range(300)])
    assert np.allclose(s.mean(0), 2.0, atol=0.1) and np.allclose(s.std(0), 0.5, atol=0.1)


def test_labels_and_groups():
    e = {"identity": "s0-00004", "phenotypes": {"gender": 0.8, "weight": 0.98, "height": 0.37}, "age_years": 59.4}
    assert S.shape_label(3, e) == "3 s0-00004  m 59y  w.98 h.37"
    assert S.shape_label(2, None) == "2 shape 2"
    g = S.group_motions([{"motion": "walk", "frame": 2}, {"motion": "squat", "frame": 0}, {"motion": "walk", "frame": 1}])
    assert g == {"squat": [1], "walk": [2, 0]}
    assert S.pose_label(0, {"motion": "walk", "frame": 3}) == "0 walk #3"


def test_recent_advance_panels():
    assert S.push_recent(["a", "b", "c"], "b", n=2) == ["b", "a"]
    pos, f = S.advance(9.5, 0.1, 10, 1.0, 10)
    assert f == 0 and np.isclose(pos, 0.5)
    st = S.State()
    st.set_panel("train")
    assert st.panel == "train" and st.view == "shape"
    st.set_panel("sequence")
    assert st.view == "sequence"
    with pytest.raises(ValueError):
        st.set_panel("nope")
    for i in range(8):
        st.error(f"e{i}")
    assert len(st.messages) == 5 and st.messages[-1] == ("error", "e7")
