"""Training progress events: a callback API and a JSON-lines log that another process can tail.

The training loops call `progress(ProgressEvent)` and append the same event as one JSON line to
the checkpoint's progress log (layout.checkpoint_progress_path; the viewer's Train panel runs
training in a subprocess and reads that file with `read_events`). `npms fit` logs tracked frames
the same way (layout.fit_progress_path). Must not: import torch or the viewer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class ProgressEvent:
    stage: str  # "shape" | "pose"
    step: int  # optimiser steps so far (over the whole run, resumes included)
    epoch: int  # completed epochs
    total_epochs: int
    losses: dict[str, float] = field(default_factory=dict)  # e.g. {"total", "sdf", "prior"} or {"flow", "prior"}
    samples_per_s: float = 0.0  # training samples (points) per second, recent
    eta_s: float = 0.0
    done: bool = False
    kind: str = "step"  # "start" | "resume" | "step" | "epoch" | "done"
    time: float = 0.0  # unix time


ProgressFn = Callable[[ProgressEvent], None]


class JsonlLog:
    """Appends events (ProgressEvent or plain dicts) to a JSON-lines file, one complete line per
    write (flushed). fresh: start the file empty (a new run) instead of continuing it."""

    def __init__(self, path, fresh: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.path.write_bytes(b"")
        elif self.path.exists() and self.path.stat().st_size:  # a killed writer may have left half a line
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def __call__(self, event: ProgressEvent | dict) -> None:
        line = json.dumps(event if isinstance(event, dict) else asdict(event)) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_json_lines(path, offset: int = 0) -> tuple[list[dict], int]:
    """Complete JSON objects from byte `offset` on, and the offset after the last complete line
    (a half-written last line is left for the next call; a file shorter than `offset` was
    started afresh and is read from its beginning)."""
    path = Path(path)
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        if f.seek(0, os.SEEK_END) < offset:
            offset = 0
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].decode(errors="replace").splitlines():
        try:
            obj = json.loads(line)
        except ValueError:  # blank or cut-off line
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out, offset + end


def read_events(path, offset: int = 0) -> tuple[list[ProgressEvent], int]:
    """Complete training events from byte `offset` on, and the offset to continue from (read_json_lines)."""
    lines, offset = read_json_lines(path, offset)
    events = []
    for obj in lines:
        try:
            events.append(ProgressEvent(**obj))
        except TypeError:  # not an event of this version
            continue
    return events, offset
