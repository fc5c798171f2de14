"""Follow an engine run: the one loop that tails a run's `events.jsonl`.

`supervise()` is the body of the Monitor's worker and of the headless display: it (optionally)
watches the engine process, tails `events.jsonl` with `EventTail` and hands batches of events to a
callback until the engine has exited or, when only following a log, a final event has been read.
A bad line of the log is skipped and reported through `warn`; the others are applied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.events import EVENTS_FILE, Event, EventTail, Failed, Finished, Resumed
from engine.run_lock import is_running

POLL_S = 0.25  # how often the log is read: matches the 4 Hz redraw ceiling
ENGINE_LOG = "engine.log"  # the engine's stdout + stderr when the dashboard starts it


def read_new(tail: EventTail, warn: Callable[[str], None] = lambda _text: None) -> list[Event]:
    """The events appended since the last read; bad lines are skipped and reported (one warning
    a read, naming the file and the line)."""
    events = tail.poll()
    warning = tail.take_warning()
    if warning is not None:
        warn(warning)
    return events


def never_started(run_dir: Path) -> bool:
    """The run's event log is empty or missing, and no engine holds the run."""
    try:
        empty = (run_dir / EVENTS_FILE).stat().st_size == 0
    except FileNotFoundError:
        empty = True
    return empty and not is_running(run_dir)


def no_events_text(run_dir: Path) -> str:
    """What an attached run with no events and no engine is, in one line."""
    return (
        f"no events in {run_dir / EVENTS_FILE} and no engine holds the run; it never started or "
        "its log was deleted"
    )


def supervise(
    run_dir: Path,
    emit: Callable[[list[Event]], None],
    *,
    process: Any = None,
    cancelled: Callable[[], bool] = lambda: False,
    wake: threading.Event | None = None,
    poll_s: float = POLL_S,
    warn: Callable[[str], None] = lambda _text: None,
    offset: int = 0,
) -> tuple[int | None, bool]:
    """Tail `run_dir/events.jsonl`, calling `emit(batch)` for each non-empty batch.

    With `process` (a Popen we started) the loop ends once it has exited and the log is drained.
    Without one (attach), it ends after a `finished`/`failed` event, or once no engine holds the
    run's lock (`engine.run_lock`: it died without a word). Returns (the process's exit code or
    None, whether a final event was read). `cancelled()` is checked every poll; `wake` (set it
    to poll at once) may shorten the wait. `offset`: the byte of the log to start from (0: all).
    """
    tail = EventTail(run_dir / EVENTS_FILE, offset)
    wake = wake or threading.Event()
    final = False
    idle_polls = 0
    while not cancelled():
        exited = process is not None and process.poll() is not None
        batch = read_new(tail, warn)
        for e in batch:
            if isinstance(e, Finished | Failed):
                final = True
            elif isinstance(e, Resumed):  # a resumed run's old final event is not its last word
                final = False
        if batch:
            emit(batch)
            idle_polls = 0
        else:
            idle_polls += 1
        if process is not None:
            if exited:
                return process.returncode, final
        elif final:
            return None, True
        elif idle_polls >= 8 and not is_running(run_dir):
            return None, False
        wake.wait(poll_s)
        wake.clear()
    return (process.returncode if process is not None else None), final
