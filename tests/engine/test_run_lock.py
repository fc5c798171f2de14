"""The run lock: one engine per run folder; a lock held means alive, however the holder ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from engine.run_lock import LOCK_FILE, RunBusyError, RunLock, holder_pid, is_running
from tests.conftest import ROOT

HOLD = (
    "import sys, time; from pathlib import Path; from engine.run_lock import RunLock; "
    "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)"
)


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    with RunLock(tmp_path):
        assert is_running(tmp_path)
        assert holder_pid(tmp_path) == os.getpid()
        with pytest.raises(RunBusyError, match=rf"already running \(engine pid {os.getpid()}\)"):
            RunLock(tmp_path).acquire()
    assert not is_running(tmp_path) and holder_pid(tmp_path) is None
    with RunLock(tmp_path):  # free again
        pass


def test_a_folder_never_locked_is_not_running(tmp_path):
    assert not is_running(tmp_path) and not (tmp_path / LOCK_FILE).exists()


def test_sigkill_of_the_holder_frees_the_run(tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        assert is_running(tmp_path) and holder_pid(tmp_path) == child.pid
        with pytest.raises(RunBusyError):
            RunLock(tmp_path).acquire()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert not is_running(tmp_path)  # the kernel dropped the lock with the process
    with RunLock(tmp_path):
        assert holder_pid(tmp_path) == os.getpid()


def test_the_engine_process_takes_the_lock_before_it_imports_torch():
    code = "import sys, engine.__main__; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
