"""Shared fixtures. The Anny model is built once per machine into ANNY_CACHE_DIR (~90 s the
first time); tests that need it use the `body` fixtures, which are session-scoped."""

import os

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

    cfg = config.from_dict(
        config.DataConfig,
        {
            "identities": {"count": 6},
            "poses": {"random_frames": 12, "motion_identities": 2, "motion_stride": 20},
            "sdf": {"samples": 4000},
            "flow": {"samples_per_sigma": 300},
        },
    )
    root = tmp_path_factory.mktemp("cache")
    dataset.build(cfg, root, workers=1)
    return dataset.load(cfg, root)


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset, tmp_path_factory):
    """(checkpoint dir, dataset) of a tiny model trained for a few seconds on the tiny dataset."""
    import torch

    from npm_core.models import checkpoint
    from npm_core.models.decoders import DecoderConfig, ModelConfig
    from npm_core.train import TrainPoseConfig, TrainShapeConfig, train_pose, train_shape

    tiny = ModelConfig(DecoderConfig(64, 3, 8, 4, 2), DecoderConfig(64, 3, 8, 4, 2))
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    ds = tiny_dataset
    train = ds.split("train")
    train_shape(
        ds.shape_samples(train),
        TrainShapeConfig(epochs=40, batch_shapes=4, points_per_shape=2000),
        tiny,
        out,
        code_labels=ds.shape_code_labels(),
        sections={"data": ds.config},
    )
    m = checkpoint.load_model(out)
    train_pose(
        ds.flow_samples(),
        m.shape_decoder,
        m.shape_codes,
        TrainPoseConfig(epochs=5, batch_frames=8, points_per_frame=256),
        tiny,
        out,
        code_labels=ds.pose_code_labels(),
        sections={"data": ds.config},
    )
    return out, ds
