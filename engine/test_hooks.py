"""Test hooks read from the environment; inert unless a test sets them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from engine.events import Event, Finished
from engine.sinks import Sink

PAUSE_ENV = "CIFAR_TUI_TEST_PAUSE_AT_STEPS"  # comma-separated global steps
PAUSE_AT_ENV = "CIFAR_TUI_TEST_PAUSE_AT"  # comma-separated points of the end of a run


def pause_steps() -> frozenset[int]:
    """With CIFAR_TUI_TEST_PAUSE_AT_STEPS=8,14 the engine stops itself (SIGSTOP) right after
    each of those global steps, so a test can kill it at a known point before the run ends. The
    trainer first waits for the checkpoints it has asked for (and reports them), so what a test
    sees there does not depend on how fast the background writer is."""
    value = os.environ.get(PAUSE_ENV, "")
    return frozenset(int(s) for s in value.split(",") if s.strip())


def pause_at(point: str) -> None:
    """Stop here (SIGSTOP) when CIFAR_TUI_TEST_PAUSE_AT names `point`. The points of a run's end:
    `test_pass` (training over, its checkpoints on disk), `test_batch:N` (before the N-th batch
    of the test pass), `tta:N` (after the N-th forward pass of TTA), `finished` (the `finished`
    event on disk, before its sinks) and `sink:N` (after its N-th sink)."""
    if point in os.environ.get(PAUSE_AT_ENV, "").split(","):
        pause()


class _PausePoint:
    """A sink that only pauses, at `point`, on the `finished` event."""

    def __init__(self, point: str) -> None:
        self.point = point

    def on_event(self, event: Event) -> None:
        if isinstance(event, Finished):
            pause_at(self.point)


def with_pause_points(sinks: list[Sink]) -> list[Sink]:
    """`sinks` with the `finished` and `sink:N` pause points around them; unchanged unless
    CIFAR_TUI_TEST_PAUSE_AT is set."""
    if not os.environ.get(PAUSE_AT_ENV):
        return sinks
    out: list[Sink] = [_PausePoint("finished")]
    for n, sink in enumerate(sinks, 1):
        out += [sink, _PausePoint(f"sink:{n}")]
    return out


def pause() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def is_paused(pid: int) -> bool:
    """Whether process `pid` is stopped (SIGSTOP): the state field of /proc/PID/stat is T
    (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")
