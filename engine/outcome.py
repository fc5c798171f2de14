"""A run's outcome, told once: `RunStatus` (one vocabulary) and `RunSummary` (one typed record),
both read from the run folder's event stream and its lock (torch-free).

The trainer writes only events; the registry row, `summary.json` and the card are derived from
them (`engine.sinks`). Whether a run is finished, alive, or died without a word is answered here,
for the engine, the registry, the sweep, the supervisor, the printers and the dashboard.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.events import EVENTS_FILE, Event, Failed, Finished, last_event
from engine.run_lock import is_running

SUMMARY_FILE = "summary.json"  # written by engine.sinks.SummarySink


class RunStatus(enum.StrEnum):
    """Where a run stands. The first three are not final: the run can go on (`--resume`)."""

    NOT_STARTED = "not_started"  # a run folder (or a sweep's plan) with no event yet
    RUNNING = "running"  # an engine holds the run's lock
    CRASHED = "crashed"  # no engine, and no final event: killed (SIGKILL, power), resumable
    DONE = "done"
    INTERRUPTED = "interrupted"  # stopped on request (Ctrl-C, SIGTERM, `s`); resumable
    DIVERGED = "diverged"  # non-finite losses; its last good checkpoint is kept
    BAD_INPUT = "bad_input"  # refused before or while starting: config, data, checkpoint
    ERROR = "error"  # an unexpected failure; traceback.txt in the run folder

    @property
    def final(self) -> bool:
        """The engine said its last word (a `finished` or `failed` event)."""
        return self not in (RunStatus.NOT_STARTED, RunStatus.RUNNING, RunStatus.CRASHED)

    @property
    def resumable(self) -> bool:
        return self in (RunStatus.CRASHED, RunStatus.INTERRUPTED)

    @property
    def failed(self) -> bool:
        return self in (RunStatus.BAD_INPUT, RunStatus.ERROR, RunStatus.DIVERGED)


@dataclass
class RunSummary:
    """The `finished` event's summary: what the run did and scored (fractions, not percent)."""

    run_id: str = ""
    status: str = ""
    preset: str = ""
    dataset: str = ""
    synthetic: bool = False
    model: str = ""
    num_params: int | None = None
    device: str = ""
    epochs: int | None = None
    epochs_done: int = 0
    step: int = 0
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    best_val_top1: float | None = None
    best_epoch: int | None = None
    img_per_s: float | None = None
    train_s: float | None = None
    wall_s: float | None = None
    run_dir: str = ""
    test_top1: float | None = None
    test_top5: float | None = None
    test_loss: float | None = None
    test_top1_last: float | None = None
    test_top5_last: float | None = None
    macro_ap: float | None = None
    macro_auc: float | None = None
    per_class_ap: list[float | None] = field(default_factory=list)
    per_class_auc: list[float | None] = field(default_factory=list)
    tta: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, keys in field order; the test pass's fields only when it ran."""
        out = dataclasses.asdict(self)
        return {k: v for k, v in out.items() if k not in _TEST_FIELDS or v not in (None, [])}


_TEST_FIELDS = {
    "test_top1",
    "test_top5",
    "test_loss",
    "test_top1_last",
    "test_top5_last",
    "macro_ap",
    "macro_auc",
    "per_class_ap",
    "per_class_auc",
    "tta",
}


@dataclass
class Outcome:
    """A run folder's story so far: its status and its final event (if any)."""

    status: RunStatus
    final: Finished | Failed | None = None

    @property
    def summary(self) -> RunSummary | None:
        if isinstance(self.final, Finished):
            return RunSummary.from_dict(self.final.summary)
        return None


def outcome_of(last: Event | None, running: bool) -> Outcome:
    """The outcome told by a run's last event, its engine alive (lock held) or not."""
    final = last if isinstance(last, Finished | Failed) else None
    if running:
        return Outcome(RunStatus.RUNNING)
    if final is not None:
        return Outcome(RunStatus(final.status), final)
    return Outcome(RunStatus.CRASHED if last is not None else RunStatus.NOT_STARTED)


def read_summary(run_dir: Path) -> RunSummary | None:
    """A finished run's summary: `summary.json` (its sink), else its `finished` event (an engine
    killed between the two); None when it has neither."""
    try:
        data = json.loads((Path(run_dir) / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        return RunSummary.from_dict(data)
    last = last_event(Path(run_dir) / EVENTS_FILE)
    return RunSummary.from_dict(last.summary) if isinstance(last, Finished) else None


def read_outcome(run_dir: Path) -> Outcome:
    """`run_dir`'s outcome. The lock is asked first: an engine writes its final event before it
    lets go of the lock, so a free lock and no final event is a run that died without a word."""
    running = is_running(run_dir)
    return outcome_of(last_event(Path(run_dir) / EVENTS_FILE), running)
