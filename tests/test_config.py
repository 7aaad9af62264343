import pytest

from npm_core import config


def test_roundtrip_and_hash(tmp_path):
    cfg = config.DataConfig()
    cfg.identities.count = 17
    config.save(cfg, tmp_path / "c.yaml")
    back = config.load(config.DataConfig, tmp_path / "c.yaml")
    assert back == cfg
    assert config.config_hash(back) == config.config_hash(cfg)
    assert config.config_hash(config.DataConfig()) != config.config_hash(cfg)


def test_unknown_key_names_the_dotted_path(tmp_path):
    (tmp_path / "c.yaml").write_text("sdf:\n  sampels: 10\n")
    with pytest.raises(config.ConfigError, match=r"c.yaml: sdf: unknown key\(s\) \['sampels'\]"):
        config.load(config.DataConfig, tmp_path / "c.yaml")


def test_wrong_type_names_key_and_expected(tmp_path):
    (tmp_path / "c.yaml").write_text("identities:\n  count: many\n")
    with pytest.raises(config.ConfigError, match=r"identities.count: expected int, got 'many'"):
        config.load(config.DataConfig, tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("flow:\n  sigmas: [0.1, yes]\n")
    with pytest.raises(config.ConfigError, match=r"flow.sigmas\[1\]: expected float"):
        config.load(config.DataConfig, tmp_path / "d.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(config.ConfigError, match="config file not found"):
        config.load(config.DataConfig, tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(config.ConfigError, match="not valid YAML"):
        config.load(config.DataConfig, tmp_path / "bad.yaml")


def test_int_accepted_for_float():
    cfg = config.from_dict(config.SdfConfig, {"near_fraction": 1})
    assert isinstance(cfg.near_fraction, float)


def test_atomic_write_keeps_old_file_on_failure(tmp_path, monkeypatch):
    p = tmp_path / "f.txt"
    config.write_text_atomic(p, "old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(config.os, "replace", boom)
    with pytest.raises(OSError):
        config.write_text_atomic(p, "new")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["f.txt"]
