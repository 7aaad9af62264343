"""Disk mesh cache: content keys, exact round trip, LRU eviction under a size cap, damaged entries."""

import os
import time

import numpy as np
import pytest

from npm_core.mesh import cache as C


def _ckpt(path, payload: bytes):
    path.mkdir(parents=True, exist_ok=True)
    (path / "shape.pt").write_bytes(payload)  # key_for reads the bytes only
    return path


def _mesh(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, 3)).astype(np.float32)
    f = rng.integers(0, n, size=(2 * n, 3)).astype(np.int32)
    return v, f


def test_key_depends_on_content_not_path(tmp_path):
    code = np.linspace(-1, 1, 64, dtype=np.float32)
    a = _ckpt(tmp_path / "a", b"weights-1")
    b = _ckpt(tmp_path / "elsewhere" / "b", b"weights-1")
    k = C.key_for(a, code, 128, lipschitz=1.0, bound=0.5)
    assert len(k) == 64 and int(k, 16) >= 0
    assert C.key_for(b, code, 128, lipschitz=1.0, bound=0.5) == k  # copied checkpoint shares entries
    assert C.key_for(a, code, 128, bound=0.5, lipschitz=1) == k  # 1 == 1.0, argument order irrelevant
    assert C.key_for(a, code.astype(np.float64), 128, lipschitz=1.0, bound=0.5) == k
    code2 = code.copy()
    code2[7] = np.nextafter(code2[7], np.float32(2))  # one ulp
    others = {
        C.key_for(a, code2, 128, lipschitz=1.0, bound=0.5),
        C.key_for(a, code, 256, lipschitz=1.0, bound=0.5),
        C.key_for(a, code, 128, lipschitz=2.0, bound=0.5),
        C.key_for(a, code, 128, lipschitz=1.0),
        C.key_for(_ckpt(tmp_path / "c", b"weights-2"), code, 128, lipschitz=1.0, bound=0.5),
    }
    assert k not in others and len(others) == 5
    with pytest.raises(TypeError, match="lipschitz"):
        C.key_for(a, code, 128, lipschitz=[1.0])


def test_key_follows_a_rewritten_checkpoint(tmp_path):
    a = _ckpt(tmp_path / "a", b"weights-1")
    k1 = C.key_for(a, np.zeros(4), 64)
    (a / "shape.pt").write_bytes(b"weights-2")  # retrained in place: same size, new content
    st = (a / "shape.pt").stat()
    os.utime(a / "shape.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert C.key_for(a, np.zeros(4), 64) != k1


def test_default_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NPM_CACHE_DIR", str(tmp_path / "npm"))
    assert C.default_root() == tmp_path / "npm" / "meshes"
    assert C.MeshCache().root == tmp_path / "npm" / "meshes"


def test_round_trip_is_exact_and_atomic(tmp_path):
    cache = C.MeshCache(tmp_path / "meshes")
    key = "ab" * 32
    assert cache.get(key) is None
    v, f = _mesh(0)
    path = cache.put(key, v.astype(np.float64), f.astype(np.int64))
    assert path == tmp_path / "meshes" / f"{key}.npz"
    got_v, got_f = cache.get(key)
    assert got_v.dtype == np.float32 and got_f.dtype == np.int32
    np.testing.assert_array_equal(got_v, v)
    np.testing.assert_array_equal(got_f, f)
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == [f"{key}.npz"]  # no temp file left


def test_bad_keys_and_meshes_are_refused(tmp_path):
    cache = C.MeshCache(tmp_path)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        cache.get("../../etc/passwd")
    v, f = _mesh(0)
    with pytest.raises(ValueError, match=r"vertices: expected float32 \[V, 3\]"):
        cache.put("0" * 64, v[:, :2], f)
    with pytest.raises(ValueError, match=r"faces: indices in \[0, 300\], expected \[0, 300\)"):
        cache.put("0" * 64, v, np.array([[0, 1, 300]]))


def test_lru_eviction_keeps_recently_used(tmp_path):
    meshes = {k: _mesh(i) for i, k in enumerate(["a" * 64, "b" * 64, "c" * 64])}
    probe = C.MeshCache(tmp_path / "probe")
    size = probe.put("f" * 64, *meshes["a" * 64]).stat().st_size  # all three have the same size
    cache = C.MeshCache(tmp_path / "m", max_bytes=2 * size + size // 2)  # room for two
    cache.put("a" * 64, *meshes["a" * 64])
    cache.put("b" * 64, *meshes["b" * 64])
    assert cache.get("a" * 64) is not None  # a is now more recent than b
    cache.put("c" * 64, *meshes["c" * 64])
    assert cache.get("b" * 64) is None
    assert cache.get("a" * 64) is not None and cache.get("c" * 64) is not None
    assert cache.size_bytes() == 2 * size
    tiny = C.MeshCache(tmp_path / "t", max_bytes=1)  # smaller than one entry: keeps only the newest
    tiny.put("a" * 64, *meshes["a" * 64])
    tiny.put("b" * 64, *meshes["b" * 64])
    assert [p.name[:1] for p, _, _ in tiny.entries()] == ["b"]


def test_stale_temp_files_are_removed(tmp_path):
    cache = C.MeshCache(tmp_path)
    old, fresh = tmp_path / f".{'a' * 64}.x1.tmp", tmp_path / f".{'a' * 64}.x2.tmp"
    old.write_bytes(b"partial")
    fresh.write_bytes(b"partial")
    t = time.time() - 2 * C.STALE_TEMP_S
    os.utime(old, (t, t))
    cache.put("b" * 64, *_mesh(1))
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "bad faces", "other key"])
def test_damaged_entry_is_a_miss_and_replaced(tmp_path, damage, caplog):
    cache = C.MeshCache(tmp_path)
    key = "c" * 64
    v, f = _mesh(2)
    path = cache.put(key, v, f)
    if damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "bad faces":
        with open(path, "wb") as fh:
            np.savez(fh, vertices=v, faces=f + len(v), key=np.array(key))
    else:  # an entry copied under another name
        cache.put("d" * 64, v, f).rename(path)
    assert cache.get(key) is None
    assert not path.exists()
    assert "damaged" in caplog.text and key in caplog.text
    cache.put(key, v, f)
    np.testing.assert_array_equal(cache.get(key)[0], v)


def test_unwritable_cache_is_not_fatal(tmp_path, caplog):
    (tmp_path / "file").write_text("x")
    cache = C.MeshCache(tmp_path / "file" / "meshes")  # its parent is a file: mkdir fails
    assert cache.put("e" * 64, *_mesh(3)) is None
    assert "cannot write" in caplog.text
    assert cache.get("e" * 64) is None
