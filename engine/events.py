"""The event stream: the one contract between the engine and every consumer.

The trainer appends typed events as JSON lines to `<run>/events.jsonl`, flushed per line. The
headless printer, the dashboard, the run registry and `attach` all read that same file.
Torch-free: consumers import it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

EVENTS_FILE = "events.jsonl"


@dataclass
class Event:
    type: ClassVar[str] = ""
    t: float = field(default=0.0, kw_only=True)  # wall-clock time (Unix seconds) of emission

    def to_json(self) -> str:
        return json.dumps({"type": self.type, **dataclasses.asdict(self)}, allow_nan=True)


@dataclass
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_id: str
    preset: str
    dataset: str
    synthetic: bool
    device: str
    model: str
    num_params: int
    epochs: int
    steps_per_epoch: int
    batch_size: int
    train_size: int
    val_size: int
    test_size: int
    config: dict[str, Any]
    pid: int


@dataclass
class Resumed(RunStarted):
    """A run continuing from a checkpoint; carries everything `run_started` does."""

    type: ClassVar[str] = "resumed"
    epoch: int = 0  # epochs complete at the checkpoint
    step: int = 0
    epoch_step: int = 0  # steps done in the next epoch
    checkpoint: str = ""
    warning: str | None = None  # e.g. the last checkpoint was damaged and the previous one used
    config_changes: list[str] = field(default_factory=list)  # keys changed with --force


@dataclass
class Step(Event):
    """Throttled progress inside an epoch; loss/acc are running means over the epoch so far."""

    type: ClassVar[str] = "step"
    epoch: int  # 1-based
    step: int  # optimizer steps done so far in the run
    epoch_step: int  # steps done in this epoch
    steps_per_epoch: int
    total_steps: int
    loss: float
    top1: float
    lr: float
    img_per_s: float
    data_wait: float | None = None  # fraction of this epoch's step time spent waiting for input
    memory_mb: float | None = None  # peak device memory allocated (MiB); None on CPU


@dataclass
class EpochEnd(Event):
    type: ClassVar[str] = "epoch_end"
    epoch: int
    epochs: int
    train_loss: float
    train_top1: float
    val_loss: float | None
    val_top1: float | None
    val_top5: float | None
    lr: float
    epoch_s: float
    img_per_s: float
    best_val_top1: float | None
    best_epoch: int | None
    eta_s: float


@dataclass
class BadStep(Event):
    """A non-finite loss: the update was skipped."""

    type: ClassVar[str] = "bad_step"
    epoch: int
    step: int
    loss: float
    consecutive: int


@dataclass
class CheckpointSaved(Event):
    type: ClassVar[str] = "checkpoint"
    epoch: int  # epochs complete
    step: int
    kind: str  # "last" | "best"
    path: str


@dataclass
class Evaluated(Event):
    type: ClassVar[str] = "evaluated"
    split: str  # "test"
    checkpoint: str  # "best" | "last"
    epoch: int
    loss: float
    top1: float
    top5: float
    count: int
    eval_file: str | None = None  # npz with confusion matrix and PR/ROC data


@dataclass
class Finished(Event):
    type: ClassVar[str] = "finished"
    status: str  # "done" | "interrupted" | "diverged"
    summary: dict[str, Any]


@dataclass
class Failed(Event):
    type: ClassVar[str] = "failed"
    status: str  # "bad_input" | "error"
    message: str
    traceback_path: str | None = None


@dataclass
class TTAEvaluated(Event):
    """Test-time augmentation of one checkpoint (engine.tta): each distinct view and the merge."""

    type: ClassVar[str] = "tta_evaluated"
    split: str  # "test"
    checkpoint: str  # "best"
    epoch: int
    views: list[dict[str, Any]]  # [{"view": name, "top1": ..., "top5": ...}], distinct views
    top1: float  # merged: mean of the views' softmax probabilities
    top5: float
    count: int
    cost: int  # forward passes per image relative to a plain evaluation
    requested: int  # views asked for, duplicates included


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunStarted,
        Resumed,
        Step,
        BadStep,
        EpochEnd,
        CheckpointSaved,
        Evaluated,
        Finished,
        Failed,
        TTAEvaluated,
    )
}


def parse_event(line: str) -> Event | None:
    """One JSON line -> typed event; None for an unknown type (newer writer) or a bad line."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    cls = EVENT_TYPES.get(data.pop("type", None)) if isinstance(data, dict) else None
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class EventWriter:
    """Appends events to a run's events.jsonl, one flushed line each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("a", encoding="utf-8")
        if _ends_mid_line(path):  # a previous writer died mid-line: never glue onto its tail
            self._file.write("\n")

    def emit(self, event: Event) -> Event:
        event.t = time.time()
        self._file.write(event.to_json() + "\n")
        self._file.flush()
        return event

    def close(self) -> None:
        self._file.close()


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return False
        f.seek(-1, 2)
        return f.read(1) != b"\n"


class EventTail:
    """Incremental reader: `poll()` returns the complete lines appended since the last call.

    A partial last line (the writer is mid-write, or crashed mid-write) is left for later.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        """Read `path` from byte `offset` on (0: the whole log)."""
        self.path = path
        self._offset = offset
        self._partial = b""

    def poll(self) -> list[Event]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        events = [parse_event(line.decode("utf-8", "replace")) for line in lines if line.strip()]
        return [e for e in events if e is not None]


def last_event(path: Path, window: int = 1 << 16) -> Event | None:
    """The last complete event of a log, read from its tail (logs of long runs are large)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - window))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines[:-1]):  # the piece after the last newline may be partial
        event = parse_event(line.decode("utf-8", "replace"))
        if event is not None:
            return event
    return None


def read_events(path: Path) -> list[Event]:
    """All complete events in a log (a truncated last line is ignored)."""
    return EventTail(path).poll()
