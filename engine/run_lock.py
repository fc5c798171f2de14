"""The run lock: one engine per run folder, and the one answer to "is this run alive".

The engine holds an exclusive `flock` on `<run>/engine.lock` for its whole life; the kernel
releases it when the process ends, however it ends (SIGKILL included), so a lock held means an
engine is running and a lock free means none is, with no pid to go stale and no `/proc` to scan.
The file also names the holder's pid, for messages and for signalling it. A second engine on the
same folder is refused; the sweep, `--resume`, `attach`, the registry and the dashboard ask
`is_running`. Processes forked by the engine (DataLoader workers) drop their copy of it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

LOCK_FILE = "engine.lock"
_HELD: set[int] = set()  # descriptors of the locks this process holds


def _drop_in_child() -> None:
    """A forked child (a DataLoader worker) closes its copies: the engine alone holds the run,
    so the lock goes the moment the engine dies, whatever its children do."""
    for fd in _HELD:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_in_child)


class RunBusyError(Exception):
    """The run folder is already held by a live engine; the message names it and its pid."""


class RunLock:
    """`with RunLock(run_dir):` holds the run for the block (or call `acquire` / `release`)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self, signal_pid: int | None = None) -> RunLock:
        """Hold the run; the lock file names `signal_pid` (the process to signal to stop the run:
        torchrun's agent under torchrun), by default this process."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = holder_pid(self.path.parent)
            who = f" (engine pid {holder})" if holder else ""
            raise RunBusyError(
                f"run {self.path.parent.name} is already running{who}: one engine per run; "
                "stop it first, or attach to it"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{signal_pid or os.getpid()}\n".encode())
        self._fd = fd
        _HELD.add(fd)
        return self

    def release(self) -> None:
        """Drop the lock; the file is emptied first (it names a holder only while held, so an
        engine that was refused and released leaves it as it found it after a clean end)."""
        if self._fd is not None:
            _HELD.discard(self._fd)
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self if self._fd is not None else self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_running(run_dir: Path) -> bool:
    """Whether an engine holds `run_dir` now (its lock is taken)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # a shared lock we took is dropped with the descriptor
    return False


def holder_pid(run_dir: Path) -> int | None:
    """The pid the lock file names (the process to signal), when an engine holds the lock; None
    otherwise."""
    if not is_running(run_dir):
        return None
    try:
        return int((Path(run_dir) / LOCK_FILE).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
