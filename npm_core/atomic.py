"""Atomic writes: every file the project saves goes through `atomic_path`, every folder through
`atomic_dir`.

A writer gets a temp path in the target's folder (same suffix, so format-by-suffix libraries
work), and the temp file replaces the target only when the writer finished; a crash or an
exception leaves the previous file untouched and no temp file behind. Knows no file layouts.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success it is renamed onto `path` (readable by all)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text so that a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temp folder beside `path`; on success it replaces `path` (and whatever was
    there), so readers never see a half-written folder; on failure nothing is left behind."""
    path = Path(path)
    work = path.with_name(f".{path.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
        if path.exists():
            shutil.rmtree(path)
        work.rename(path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
