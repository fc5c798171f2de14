"""Test hooks read from the environment; inert unless a test sets them."""

from __future__ import annotations

import os
import signal
from pathlib import Path

PAUSE_ENV = "CIFAR_TUI_TEST_PAUSE_AT_STEPS"  # comma-separated global steps


def pause_steps() -> frozenset[int]:
    """With CIFAR_TUI_TEST_PAUSE_AT_STEPS=8,14 the engine stops itself (SIGSTOP) right after
    each of those global steps, so a test can kill it at a known point before the run ends. The
    trainer first waits for the checkpoints it has asked for (and reports them), so what a test
    sees there does not depend on how fast the background writer is."""
    value = os.environ.get(PAUSE_ENV, "")
    return frozenset(int(s) for s in value.split(",") if s.strip())


def pause() -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def is_paused(pid: int) -> bool:
    """Whether process `pid` is stopped (SIGSTOP): the state field of /proc/PID/stat is T
    (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")
