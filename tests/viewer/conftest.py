"""Viewer test fixtures: a tiny checkpoint + fit made in code, and ONE Polyscope session per test
process (EGL if it initialises, else the mock backend; rendering tests skip on mock) with one
App and its mesh worker, shared by the tests (each resets the state it uses)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    import tiny

    return tiny.make_checkpoint(tmp_path_factory.mktemp("viewer") / "ckpt")


@pytest.fixture(scope="session")
def imported_ckpt(tiny_ckpt, tmp_path_factory):
    """The tiny checkpoint as one of an imported mesh domain (tiny.IMPORTED: attributes, no joints)."""
    import tiny

    return tiny.make_imported(tiny_ckpt, tmp_path_factory.mktemp("viewer_imported") / "ckpt")


@pytest.fixture(scope="session")
def tiny_fit(tiny_ckpt, tmp_path_factory):
    import tiny

    root = tmp_path_factory.mktemp("viewer_fit")
    return tiny.make_fit(tiny_ckpt, root / "fit", root / "seq")


@pytest.fixture(scope="session")
def backend():
    import polyscope as ps

    from npm_viewer.app import init_polyscope

    try:
        name = init_polyscope("openGL3_egl", (800, 600))
    except Exception:  # no EGL here: logic tests still run on the mock backend
        try:
            ps.shutdown()
        except Exception:
            pass
        name = init_polyscope("openGL_mock", (800, 600))
    ps.set_frame_tick_limit_fps_mode("ignore_limits")
    yield name
    ps.shutdown()


@pytest.fixture(scope="session")
def mesh_cache_root(tmp_path_factory):
    """A cache root of this test session (mesh and checkpoint-info caches), set before the worker starts."""
    import os

    root = tmp_path_factory.mktemp("npm_cache")
    os.environ["NPM_CACHE_DIR"] = str(root)
    return root


@pytest.fixture(scope="session")
def session_app(backend, tiny_ckpt, mesh_cache_root):
    from npm_viewer.app import App

    app = App(str(tiny_ckpt), None)
    app.attach()
    app.settle(timeout=60)
    yield app
    app.close()


@pytest.fixture
def app(session_app, tiny_ckpt):
    """The shared app with a fresh state on the tiny checkpoint, on the shape panel."""
    from npm_viewer import state as S

    a = session_app
    a.state = S.State()  # the scene reads the new State too
    a.recorder, a.train_run, a.replay = None, None, None
    for group in ("fit", "gt", "points", "gallery"):
        a.scene.remove_group(group)
    a.scene.reframe()
    a.open_checkpoint(str(tiny_ckpt))
    a.select_panel("shape")
    a.settle(timeout=60)
    return a


@pytest.fixture
def rendering(backend):
    if backend != "openGL3_egl":
        pytest.skip("EGL rendering unavailable (mock backend)")
