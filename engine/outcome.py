"""A run's outcome, told once: `RunStatus` (one vocabulary) and `RunSummary` (one typed record),
both read from the run folder's event stream and its lock (torch-free).

The trainer writes only events; the registry row, `summary.json` and the card are derived from
them (`engine.sinks`). Whether a run is finished, alive, or died without a word is answered here,
for the engine, the registry, the sweep, the supervisor, the printers and the dashboard.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import strict_json
from engine.events import (
    EVENTS_FILE,
    Event,
    Failed,
    Finished,
    field_problems,
    fits_field,
    json_kind,
    last_event,
)
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
    ece: float | None = None  # expected calibration error, 15 bins (engine.calibration)
    per_class_ap: list[float | None] = field(default_factory=list)
    per_class_auc: list[float | None] = field(default_factory=list)
    tta: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: Any) -> RunSummary:
        """The fields of `data` it knows; a value of the wrong type (`summary_problems`) is left
        at its default, and so is everything when `data` is not a JSON object."""
        if not isinstance(data, dict):
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and fits_field(cls, k, v)})

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
    "ece",
    "per_class_ap",
    "per_class_auc",
    "tta",
}


def summary_problems(data: Any) -> list[str]:
    """What is wrong with `data` as a run's summary (none: it is one). It needs a final status."""
    if not isinstance(data, dict):
        return [f"it holds {json_kind(data)}, not an object"]
    problems = field_problems(RunSummary, data)
    if "status" not in data:
        problems.insert(0, "lacks status")
    elif isinstance(data["status"], str) and data["status"] not in Finished.statuses:
        problems.append(f"status {data['status']!r} is not one of {', '.join(Finished.statuses)}")
    return problems


class SummaryError(ValueError):
    """A run's summary is damaged in summary.json and in its finished event (or it has none)."""


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


def read_summary(
    run_dir: Path, warn: Callable[[str], None] = lambda _text: None
) -> RunSummary | None:
    """A finished run's summary: `summary.json` (its sink), else its `finished` event (the record:
    an engine killed between the two); None when it has neither. A damaged summary.json is said
    through `warn` and the event's summary used. Raises SummaryError when neither is usable."""
    path = Path(run_dir) / SUMMARY_FILE
    summary, damage = _summary_file(path)
    if summary is not None:
        return summary
    events = Path(run_dir) / EVENTS_FILE
    last = last_event(events)
    if not isinstance(last, Finished):
        if damage:
            raise SummaryError(f"{path} is damaged ({damage}) and {events} has no finished event")
        return None
    problems = summary_problems(last.summary)
    if problems:
        both = f"{path} is damaged ({damage}) and " if damage else ""
        raise SummaryError(
            f"{both}the finished event in {events} is damaged: {'; '.join(problems)}"
        )
    if damage:
        warn(
            f"{path} is damaged ({damage}); its summary is read from the finished event in {events}"
        )
    return RunSummary.from_dict(last.summary)


def _summary_file(path: Path) -> tuple[RunSummary | None, str]:
    """summary.json's summary, or None and what is wrong with the file ("": there is none)."""
    try:
        data = strict_json.loads(path.read_text())
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "not valid JSON"
    problems = summary_problems(data)
    return (None, "; ".join(problems)) if problems else (RunSummary.from_dict(data), "")


def read_outcome(run_dir: Path) -> Outcome:
    """`run_dir`'s outcome. The lock is asked first: an engine writes its final event before it
    lets go of the lock, so a free lock and no final event is a run that died without a word."""
    running = is_running(run_dir)
    return outcome_of(last_event(Path(run_dir) / EVENTS_FILE), running)
