"""Training progress events: a callback API and a JSON-lines log that another process can tail.

The training loops call `progress(ProgressEvent)` and append the same event as one JSON line to
<checkpoint>/progress.jsonl (the viewer's Train panel runs training in a subprocess and reads
that file with `read_events`). Must not: import torch or the viewer.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable


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
    """Appends events to a JSON-lines file, one complete line per write (flushed)."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:  # a killed writer may have left half a line
            with open(self.path, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def __call__(self, event: ProgressEvent) -> None:
        line = json.dumps(asdict(event)) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_events(path, offset: int = 0) -> tuple[list[ProgressEvent], int]:
    """Complete events from byte `offset` on, and the offset after the last complete line
    (a half-written last line is left for the next call)."""
    path = Path(path)
    if not path.exists():
        return [], offset
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    end = data.rfind(b"\n") + 1
    events = []
    for line in data[:end].decode(errors="replace").splitlines():
        try:
            events.append(ProgressEvent(**json.loads(line)))
        except (ValueError, TypeError):  # blank or cut-off line
            continue
    return events, offset + end
