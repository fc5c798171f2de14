"""Control requests from a UI to a running engine: one empty file per request, torch-free.

A consumer calls `request(run_dir, "stop_after_epoch")`; the trainer polls (`serve`) a few
times per second and removes each request once it has acted on it. Signals remain the other
way in: SIGINT/SIGTERM stop after the current step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

CONTROL_DIR = "control"
COMMANDS = ("stop_after_epoch", "checkpoint_now")


def request(run_dir: Path, command: str) -> None:
    if command not in COMMANDS:
        raise ValueError(f"unknown control command {command!r} (valid: {', '.join(COMMANDS)})")
    folder = Path(run_dir) / CONTROL_DIR
    folder.mkdir(exist_ok=True)
    (folder / command).touch()


def pending(run_dir: Path) -> set[str]:
    folder = Path(run_dir) / CONTROL_DIR
    if not folder.is_dir():
        return set()
    return {p.name for p in folder.iterdir() if p.name in COMMANDS}


def done(run_dir: Path, command: str) -> None:
    (Path(run_dir) / CONTROL_DIR / command).unlink(missing_ok=True)


def serve(run_dir: Path, checkpoint_now: Callable[[], None]) -> bool:
    """Act on the pending requests: `checkpoint_now()` for one, then it is removed; returns
    whether a stop after the epoch was asked for (that request is removed too)."""
    requests = pending(run_dir)
    if "checkpoint_now" in requests:
        checkpoint_now()
        done(run_dir, "checkpoint_now")
    if "stop_after_epoch" in requests:
        done(run_dir, "stop_after_epoch")
        return True
    return False
