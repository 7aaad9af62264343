"""Pure state helpers: labels, recent lists, playback, panels; the State holds every panel's fields."""

import dataclasses

import pytest

from npm_core.layout import PoseCodeLabel, ShapeCodeLabel
from npm_viewer import state as S


def test_labels():
    e = ShapeCodeLabel("s0-00004", {"gender": 0.8, "weight": 0.98, "height": 0.37}, 59.4)
    assert S.shape_label(3, e) == "3 s0-00004  m 59y  w.98 h.37"
    assert S.shape_label(2, None) == "2 shape 2" and S.shape_label(2, ShapeCodeLabel()) == "2 shape 2"
    assert S.pose_label(0, PoseCodeLabel("walk", 3)) == "0 walk #3"
    assert S.pose_label(5, PoseCodeLabel()) == "5 pose 5"


def test_labels_of_an_imported_domain_name_the_identity_and_its_attributes():
    e = ShapeCodeLabel("hand07", attributes={"width_mm": 84.5, "length_mm": 182.0})
    assert S.shape_label(7, e) == "7 hand07  length_mm 182  width_mm 84.5"  # sorted, as semantics orders them
    assert S.shape_label(7, e).split("  ")[0] == "7 hand07"  # what the gallery writes beside a row
    assert S.shape_label(1, ShapeCodeLabel("hand01")) == "1 hand01"


def test_recent_filter_panels():
    assert S.push_recent(["a", "b", "c"], "b", n=2) == ["b", "a"]
    labels = ["0 s0-0001  m 30y", "1 s0-0002  f 41y", "2 s1-0003  M 22y"]
    assert S.filter_items(labels, "") == [0, 1, 2]
    assert S.filter_items(labels, "s0") == [0, 1] and S.filter_items(labels, " m  s1 ") == [2]
    assert S.filter_items(labels, "zz") == []
    st = S.State()
    st.set_panel("train")
    assert st.panel == "train" and st.view == "shape"
    st.set_panel("sequence")
    assert st.view == "sequence"
    with pytest.raises(ValueError):
        st.set_panel("nope")
    for i in range(60):
        st.error(f"e{i}")
    assert len(st.messages) == 50 and st.messages[0] == ("error", "e10") and st.messages[-1] == ("error", "e59")


def test_every_panel_field_is_in_the_state():
    names = {f.name for f in dataclasses.fields(S.State)}
    assert {
        "train_config",
        "train_out",
        "train_stage",
        "export_dir",
        "export_source",
        "export_frames",
        "export_gif",
        "export_mp4",
        "export_ui",
    } <= names
    assert "motion_pos" not in names  # one frame index for every timeline
    st = S.State()
    assert st.export_source in S.EXPORT_SOURCES and st.train_stage in S.TRAIN_STAGES
    # two States do not share their lists
    a, b = S.State(), S.State()
    a.gallery_shapes.append(9)
    assert b.gallery_shapes == [0, 1, 2]
