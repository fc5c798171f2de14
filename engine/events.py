"""The event stream: the one contract between the engine and every consumer.

The trainer appends typed events as JSON lines to `<run>/events.jsonl`, flushed per line. The
headless printer, the dashboard, the run registry and `attach` all read that same file.
Torch-free: consumers import it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO

from engine import strict_json

EVENTS_FILE = "events.jsonl"


@dataclass
class Event:
    type: ClassVar[str] = ""
    statuses: ClassVar[tuple[str, ...]] = ()  # a final event's allowed `status` values
    t: float = field(default=0.0, kw_only=True)  # wall-clock time (Unix seconds) of emission

    def to_json(self) -> str:
        return strict_json.dumps({"type": self.type, **dataclasses.asdict(self)})


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
    edited: bool = False  # changed in Setup after it was loaded from `preset` (run.json says so)


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
    statuses: ClassVar[tuple[str, ...]] = ("done", "interrupted", "diverged")
    status: str  # "done" | "interrupted" | "diverged"
    summary: dict[str, Any]


@dataclass
class Failed(Event):
    type: ClassVar[str] = "failed"
    statuses: ClassVar[tuple[str, ...]] = ("bad_input", "error", "interrupted")
    status: str  # "bad_input" | "error" | "interrupted" (before training started)
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


@dataclass
class Phase(Event):
    """The engine starts a pass that is not training: `validating` (each epoch's end), `testing`
    (the test pass of checkpoint `detail`: "last" or "best"), `results` (the confusion matrix,
    PR/ROC curves and eval.npz), `tta` (test-time augmentation).
    Training resumes with the next `step` event. `images`: images the pass reads; `passes`:
    forward passes per image (TTA: its distinct views)."""

    type: ClassVar[str] = "phase"
    phase: str  # "validating" | "testing" | "results" | "tta"
    images: int = 0
    passes: int = 1
    detail: str = ""  # testing: "last" | "best"; tta: the views, comma-separated


@dataclass
class SystemSample(Event):
    """What the engine process and its GPU use (engine.system_stats), at most about once a
    second; a number that could not be read is None (no NVML: no GPU fields)."""

    type: ClassVar[str] = "system"
    cpu_pct: float | None = None  # CPU time / wall time since the last sample, % of one core
    rss_mb: float | None = None  # resident memory of the engine process, MiB
    gpu_util: float | None = None  # %
    gpu_mem_mb: float | None = None  # used on the device (all processes), MiB
    gpu_mem_total_mb: float | None = None
    gpu_temp_c: float | None = None


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
        Phase,
        SystemSample,
    )
}


class BadEvent(ValueError):
    """A line of the log that is not an event: not a JSON object with a `type`, or an event of a
    known type whose fields are missing or of the wrong type."""


def parse_event(line: str) -> Event | None:
    """One JSON line -> typed event; None for an unknown type (a newer writer's).

    Raises BadEvent for a line that is not an event, or a known event gone wrong."""
    try:
        data = strict_json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise BadEvent("not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise BadEvent("not an event (a JSON object with a type)")
    cls = EVENT_TYPES.get(data.pop("type"))
    if cls is None:
        return None
    problems = field_problems(cls, data)
    if cls.statuses and data.get("status") not in (None, *cls.statuses):
        problems.append(f"status {_short(data['status'])} is not one of {', '.join(cls.statuses)}")
    if problems:
        raise BadEvent(f"{cls.type} event: {'; '.join(problems)}")
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def field_problems(cls: type, data: dict[str, Any]) -> list[str]:
    """What is wrong with `data` as the fields of dataclass `cls`: required fields missing and
    values of the wrong type (keys `cls` does not know are a newer writer's: ignored)."""
    schema = _schema(cls)
    missing = [name for name in schema.required if name not in data]
    problems = [f"lacks {', '.join(missing)}"] if missing else []
    for name, check in schema.checks.items():
        if name in data and not check(data[name]):
            problems.append(f"{name} = {_short(data[name])} is not {_kind(schema.hints[name])}")
    return problems


def fits_field(cls: type, name: str, value: Any) -> bool:
    """`value` (parsed JSON) is of the type of field `name` of dataclass `cls`."""
    return _schema(cls).checks[name](value)


def json_kind(value: Any) -> str:
    """What a parsed JSON value is, in words: "a list", "a string", "null"."""
    return _kind(type(value))


@dataclass(frozen=True)
class _Schema:
    """A dataclass's fields as parsed JSON must give them: built once per class."""

    required: tuple[str, ...]
    hints: dict[str, Any]
    checks: dict[str, Callable[[Any], bool]]


@functools.cache
def _schema(cls: type) -> _Schema:
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = tuple(
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return _Schema(required, hints, {f.name: _checker(hints[f.name]) for f in fields})


def _checker(hint: Any) -> Callable[[Any], bool]:
    """A test that a parsed JSON value is of type `hint` (a field's annotation); JSON gives no
    subclasses, so `type(v) is int` tells an integer from true and false."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        parts = [_checker(h) for h in typing.get_args(hint)]
        return lambda v: any(part(v) for part in parts)
    if origin is list:
        item = _checker(typing.get_args(hint)[0])
        return lambda v: isinstance(v, list) and all(item(x) for x in v)
    if origin is dict or hint is dict:
        return lambda v: isinstance(v, dict)
    if hint is Any:
        return lambda v: True
    if hint is float:
        return lambda v: type(v) in (int, float)
    if hint is type(None):
        return lambda v: v is None
    return lambda v: type(v) is hint


_KINDS = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "an object",
}


def _kind(hint: Any) -> str:
    """A type annotation in words: "a number or null"."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_kind(h) for h in typing.get_args(hint))
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    return _KINDS.get(hint) or {list: "a list", dict: "an object"}.get(origin, str(hint))


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


class EventWriter:
    """Appends events to a run's events.jsonl, one flushed line each. The file is opened at the
    first event: a writer that emits none (a refused resume) leaves the log as it was."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO | None = None

    def emit(self, event: Event) -> Event:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
            if _ends_mid_line(self.path):  # a writer died mid-line: never glue onto its tail
                self._file.write("\n")
        event.t = time.time()
        self._file.write(event.to_json() + "\n")
        self._file.flush()
        return event

    def close(self) -> None:
        if self._file is not None:
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

    A partial last line (the writer is mid-write, or crashed mid-write) is left for later. A bad
    line (BadEvent) is skipped, and said once by `take_warning()`; the other lines are read.
    """

    def __init__(self, path: Path, offset: int = 0) -> None:
        """Read `path` from byte `offset` on (0: the whole log)."""
        self.path = path
        self._offset = offset
        self._partial = b""
        self._line = _lines_before(path, offset)  # the number of the last line read
        self._skipped: list[tuple[int, str]] = []  # (line number, what is wrong)

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
        events = []
        for line in lines:
            self._line += 1
            if not line.strip():
                continue
            try:
                event = parse_event(line.decode("utf-8", "replace"))
            except BadEvent as exc:
                self._skipped.append((self._line, str(exc)))
                continue
            if event is not None:
                events.append(event)
        return events

    def take_warning(self) -> str | None:
        """One line on the bad lines skipped since the last call (None: there were none)."""
        if not self._skipped:
            return None
        (first, reason), count = self._skipped[0], len(self._skipped)
        self._skipped.clear()
        if count == 1:
            return f"skipped line {first} of {self.path}: {reason}"
        return f"skipped {count} bad lines of {self.path}, the first line {first}: {reason}"


def _lines_before(path: Path, offset: int) -> int:
    """The number of lines in the first `offset` bytes of `path` (0 when it is missing)."""
    count, left = 0, offset
    try:
        with path.open("rb") as f:
            while left > 0 and (chunk := f.read(min(left, 1 << 20))):
                count += chunk.count(b"\n")
                left -= len(chunk)
    except FileNotFoundError:
        return 0
    return count


def last_event(path: Path, window: int = 1 << 16) -> Event | None:
    """The last complete, well-formed event of a log, read from its tail (logs of long runs are
    large)."""
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - window))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines[:-1]):  # the piece after the last newline may be partial
        try:
            event = parse_event(line.decode("utf-8", "replace"))
        except BadEvent:
            continue
        if event is not None:
            return event
    return None


def read_events(path: Path) -> list[Event]:
    """All complete, well-formed events in a log (a truncated last line, bad lines skipped)."""
    return EventTail(path).poll()
