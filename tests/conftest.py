"""Shared fixtures. The Anny model is built once per machine into ANNY_CACHE_DIR (~90 s the
first time); tests that need it use the `body` fixtures, which are session-scoped."""

import os

import numpy as np
import pytest

os.environ.setdefault("NPM_CACHE_DIR", os.path.expanduser("~/.cache/npm_explorer"))


@pytest.fixture(scope="session")
def default_body():
    """(vertices [V,3] model units, faces [F,3]) of the average rest-pose body."""
    from npm_core import bodies

    return bodies.body_meshes({k: 0.5 for k in bodies.PHENOTYPES})[0], bodies.faces()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A tiny but complete built dataset (6 identities, few samples and frames)."""
    from npm_core import config
    from npm_core.data import dataset

    cfg = config.from_dict(config.DataConfig, {
        "identities": {"count": 6},
        "poses": {"random_frames": 12, "motion_identities": 2, "motion_stride": 20},
        "sdf": {"samples": 4000},
        "flow": {"samples_per_sigma": 300},
    })
    root = tmp_path_factory.mktemp("cache")
    dataset.build(cfg, root, workers=1)
    return dataset.load(cfg, root)
