"""Disk cache of extracted canonical meshes, so that a second start shows a body at once.

Entries are `<cache root>/meshes/<key>.npz` (cache root: $NPM_CACHE_DIR, default
~/.cache/npm_explorer) holding vertices [V, 3] float32 (model units, canonical frame) and
faces [F, 3] int32. key_for() hashes what decides the mesh: the content of the checkpoint's
shape stage (not its path: a copied checkpoint shares entries, a retrained one gets new ones),
the shape code's float32 values, the resolution and the extractor settings.
Writes are atomic (temp file + rename); get/put mark an entry as used (its mtime) and put
evicts the least recently used entries beyond max_bytes; an unreadable or malformed entry is
deleted and reported as a miss, so the caller extracts again and put() replaces it. Writing is
best effort: a cache that cannot be written logs a warning and the caller carries on.

Must not: extract meshes (the caller does on a miss), import the viewer, or key on paths.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from npm_core import layout

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the entry layout or the meaning of a key changes
DEFAULT_MAX_BYTES = 512 << 20  # about 450 body meshes at 256^3 (1.1 MB each, benchmarks/bench_startup.py)
STALE_TEMP_S = 3600.0  # temp files older than this are left over from a killed writer
_KEY = re.compile(r"[0-9a-f]{64}")
_digests: dict[tuple, str] = {}  # (path, inode, size, mtime_ns) -> content digest of shape.pt


def default_root() -> Path:
    """<cache root>/meshes: $NPM_CACHE_DIR/meshes, default ~/.cache/npm_explorer/meshes (read at call time)."""
    return layout.mesh_cache_dir()


def checkpoint_digest(checkpoint_dir) -> str:
    """sha256 of the checkpoint's shape.pt bytes, remembered per (path, inode, size, mtime) in this process."""
    path = layout.checkpoint_stage_path(checkpoint_dir, "shape")
    st = path.stat()
    stamp = (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[stamp] = h.hexdigest()
    return _digests[stamp]


def key_for(checkpoint_dir, code, resolution: int, **settings) -> str:
    """Cache key (64 hex digits) of the canonical mesh of `code` [Ds] extracted at `resolution`.

    settings: the extractor's other arguments that change the mesh (bound, lipschitz, level,
    ...), each a str, bool, int, float or None; numbers are compared as floats (1 == 1.0).
    """
    items = {}
    for name, value in sorted(settings.items()):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif not isinstance(value, (str, bool, type(None))):
            raise TypeError(f"mesh cache setting {name}={value!r}: expected str, bool, int, float or None")
        items[name] = value
    code = np.ascontiguousarray(np.asarray(code, dtype=np.float32).reshape(-1))
    ident = {
        "format": FORMAT,
        "checkpoint": checkpoint_digest(checkpoint_dir),
        "code": hashlib.sha256(code.tobytes()).hexdigest(),
        "code_dim": int(code.size),
        "resolution": int(resolution),
        "settings": items,
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()


class MeshCache:
    """The mesh entries under `root` (default default_root()), kept under max_bytes (LRU)."""

    def __init__(self, root=None, max_bytes: int = DEFAULT_MAX_BYTES):
        self.root = Path(root) if root is not None else default_root()
        self.max_bytes = int(max_bytes)

    def path(self, key: str) -> Path:
        if not isinstance(key, str) or not _KEY.fullmatch(key):
            raise ValueError(f"mesh cache key: expected 64 lowercase hex digits from key_for(), got {key!r}")
        return self.root / f"{key}.npz"

    def get(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(vertices [V, 3] float32, faces [F, 3] int32) stored under key, or None (missing or damaged)."""
        path = self.path(key)
        try:
            with np.load(path, allow_pickle=False) as z:
                v, f, stored = z["vertices"], z["faces"], str(z["key"])
            problem = _check(v, f) or (stored != key and f"stored key {stored[:12]}... does not match the file name")
        except OSError:  # missing, or the cache directory cannot be read: a miss, nothing to repair
            return None
        except (zipfile.BadZipFile, ValueError, KeyError, EOFError) as e:  # truncated, not a zip, arrays missing
            problem = f"{type(e).__name__}: {e}"
        if problem:
            log.warning("mesh cache: %s is damaged (%s); removed", path, problem)
            path.unlink(missing_ok=True)
            return None
        _touch(path)
        return v, f

    def put(self, key: str, vertices, faces) -> Path | None:
        """Store vertices [V, 3] (model units) and faces [F, 3] under key; evict LRU entries over max_bytes.

        Returns the entry's path, or None when the cache cannot be written (logged).
        """
        path = self.path(key)
        v = np.ascontiguousarray(vertices, dtype=np.float32)
        f = np.ascontiguousarray(faces, dtype=np.int32)
        problem = _check(v, f)
        if problem:
            raise ValueError(f"mesh cache put: {problem}")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{key}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.savez(fh, vertices=v, faces=f, key=np.array(key))
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as e:
            log.warning("mesh cache: cannot write %s (%s); continuing without caching", path, e)
            return None
        _touch(path)
        self.evict(keep=path)
        return path

    def entries(self) -> list[tuple[Path, int, int]]:
        """(path, bytes, last use in ns) of every entry, least recently used first."""
        out = []
        for p in self.root.glob("*.npz"):
            try:
                st = p.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            out.append((p, st.st_size, st.st_mtime_ns))
        return sorted(out, key=lambda e: e[2])

    def size_bytes(self) -> int:
        return sum(e[1] for e in self.entries())

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete least recently used entries until the total is <= max_bytes (never `keep`), and stale temp files."""
        now = time.time()
        for tmp in self.root.glob(".*.tmp"):
            try:
                if now - tmp.stat().st_mtime > STALE_TEMP_S:
                    tmp.unlink()
            except FileNotFoundError:
                pass
        entries = self.entries()
        total = sum(e[1] for e in entries)
        removed = []
        for p, size, _ in entries:
            if total <= self.max_bytes:
                break
            if p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size
            removed.append(p)
        return removed


def _check(v: np.ndarray, f: np.ndarray) -> str | None:
    """Why (vertices, faces) is not a mesh, or None."""
    if v.ndim != 2 or v.shape[1] != 3 or v.dtype != np.float32:
        return f"vertices: expected float32 [V, 3], got {v.dtype} {v.shape}"
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        return f"faces: expected integer [F, 3], got {f.dtype} {f.shape}"
    if not np.isfinite(v).all():
        return "vertices: not all finite"
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        return f"faces: indices in [{f.min()}, {f.max()}], expected [0, {len(v)})"
    return None


def _touch(path: Path) -> None:
    """Mark as just used (explicit ns, not the file system's coarse clock, so the LRU order is exact)."""
    try:
        now = time.time_ns()
        os.utime(path, ns=(now, now))
    except OSError:  # evicted by another process meanwhile
        pass
