"""Engine processes and signals, in one place (torch-free).

- `pid_alive`: the one "is this process still there" check;
- `exit_code`: a Popen's status, death by signal N reported as 128+N like a shell;
- `ForwardSignals`: while active, SIGINT / SIGTERM sent to this process go to the engines;
- `live_engine` / `EngineProcess`: an engine some other process started on a run folder, found
  by the run's lock and followed like one of ours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType
from typing import Any

from engine.run_lock import holder_pid

POLL_S = 0.2


def pid_alive(pid: int | None) -> bool:
    """Whether process `pid` exists (another user's counts); False for no pid."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def exit_code(process: subprocess.Popen[bytes]) -> int:
    """The engine's exit status, with death by signal N reported as 128+N like a shell."""
    code = process.wait()
    return 128 - code if code < 0 else code


def live_engine(run_dir: Path) -> int | None:
    """The pid to signal of the engine holding `run_dir` (its run lock, `engine.run_lock`), or
    None when no engine holds it."""
    return holder_pid(run_dir)


class EngineProcess:
    """An engine this process did not start (see `live_engine`), with the bits of Popen a
    follower uses: polled until it exits; signals are forwarded to it like to our own engines."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not pid_alive(self.pid):
            self.returncode = 0  # unknown: the run's log says how it ended
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(POLL_S)
        return 0

    def send_signal(self, signum: int) -> None:
        if self.returncode is not None:  # gone: its pid may be someone else's by now
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    @classmethod
    def ended(cls) -> EngineProcess:
        """An engine that has already exited (no pid is ever signalled)."""
        process = cls(pid=-1)
        process.returncode = 0
        return process


Process = subprocess.Popen[bytes] | EngineProcess  # an engine we watch


class ForwardSignals:
    """While active, SIGINT and SIGTERM sent to this process go to the engines instead (they
    checkpoint and exit). Engines started while it is active join with `add`."""

    def __init__(self, *processes: Process) -> None:
        self.processes: list[Process] = list(processes)
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def add(self, process: Process) -> None:
        self.processes.append(process)
        if self.received is not None:  # the signal came while this one was being started
            process.send_signal(self.received)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signum)

    def __enter__(self) -> ForwardSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
