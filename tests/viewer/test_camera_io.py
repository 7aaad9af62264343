"""Camera save/load: the view round-trips through a JSON file; bad files name the file and field."""

import json

import numpy as np
import pytest

from npm_viewer import camera_io


def view():
    import polyscope as ps

    return json.loads(ps.get_view_as_json())


@pytest.fixture
def keep_view(backend):
    """Restore the shared Polyscope session's camera and window after the test."""
    import polyscope as ps

    before, size = ps.get_view_as_json(), ps.get_window_size()
    yield ps
    ps.set_window_size(*size)
    ps.set_view_from_json(before)
    ps.set_vertical_fov_degrees(json.loads(before)["fov"])


def test_round_trip(keep_view, tmp_path):
    ps = keep_view
    ps.look_at((1.0, 1.5, 2.5), (0.0, 0.8, 0.0))
    ps.set_vertical_fov_degrees(60.0)
    ps.set_view_projection_mode("orthographic")
    ps.set_window_size(640, 480)
    saved = view()
    path = camera_io.save_camera(tmp_path / "cams" / "front.json")
    assert [p.name for p in path.parent.iterdir()] == ["front.json"]  # written atomically, no temp left
    on_disk = json.loads(path.read_text())
    assert on_disk["viewMat"] == saved["viewMat"] and on_disk["fov"] == 60.0

    ps.look_at((-3.0, 0.2, -1.0), (0.5, 0.0, 0.0))
    ps.set_vertical_fov_degrees(45.0)
    ps.set_view_projection_mode("perspective")
    ps.set_window_size(800, 600)
    assert not np.allclose(view()["viewMat"], saved["viewMat"], atol=1e-3)

    camera_io.load_camera(path)
    now = view()
    np.testing.assert_allclose(now["viewMat"], saved["viewMat"], atol=1e-5)
    assert now["fov"] == pytest.approx(60.0)  # Polyscope's JSON reader alone leaves fov at 45
    assert now["projectionMode"] == "Orthographic"
    assert tuple(ps.get_window_size()) == (800, 600)  # the window keeps its size


def test_bad_file_leaves_the_view(keep_view, tmp_path):
    ps = keep_view
    ps.look_at((0.0, 1.0, 3.0), (0.0, 1.0, 0.0))
    before = view()["viewMat"]
    path = tmp_path / "cam.json"
    with pytest.raises(camera_io.CameraFileError, match=r"cam\.json: camera file not found"):
        camera_io.load_camera(path)
    path.write_text("{viewMat: [1, 2")
    with pytest.raises(camera_io.CameraFileError, match=r"cam\.json: not JSON \(Expecting property name"):
        camera_io.load_camera(path)
    good = dict(view(), viewMat=list(np.eye(4).reshape(-1)))
    path.write_text(json.dumps(dict(good, fov=0)))
    with pytest.raises(camera_io.CameraFileError, match=r"cam\.json: field 'fov': expected .*0 < fov < 180, got 0"):
        camera_io.load_camera(path)
    np.testing.assert_allclose(view()["viewMat"], before)  # nothing was applied
    path.write_text(json.dumps(good))
    camera_io.load_camera(path)
    np.testing.assert_allclose(view()["viewMat"], np.eye(4).reshape(-1), atol=1e-6)


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("viewMat", [1.0] * 15, "16 finite numbers"),
        ("viewMat", [1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, None], "16 finite numbers"),
        ("viewMat", [2.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1], "a rigid transform"),
        ("nearClip", -0.1, "a number > 0"),
        ("farClip", 0.001, r"a number > nearClip \(0.005\)"),
        ("projectionMode", "Fisheye", "Perspective or Orthographic"),
        ("upDir", "Up", "one of X Up, Y Up"),
    ],
)
def test_validation_names_the_field(field, value, expected):
    good = {
        "viewMat": list(np.eye(4).reshape(-1)),
        "fov": 45.0,
        "nearClip": 0.005,
        "farClip": 20.0,
        "projectionMode": "Perspective",
        "upDir": "Y Up",
    }
    assert camera_io.validate_view(dict(good), "c.json") == good
    with pytest.raises(camera_io.CameraFileError, match=f"^c.json: field '{field}': expected {expected}"):
        camera_io.validate_view(dict(good, **{field: value}), "c.json")
    missing = {k: v for k, v in good.items() if k != field}
    with pytest.raises(camera_io.CameraFileError, match=f"field '{field}'.*got \"nothing\""):
        camera_io.validate_view(missing, "c.json")
    with pytest.raises(camera_io.CameraFileError, match="expected a JSON object"):
        camera_io.validate_view([1, 2], "c.json")
