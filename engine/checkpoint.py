"""Checkpoints: written atomically (in the background), loaded with `weights_only=True` only.

The file format and its torch-free verification are `engine.checkpoint_files`. Writes go to a
temp file in the same folder, are fsynced, renamed over the target, and the folder is fsynced.
The previous `last.pt` is kept as `last.prev.pt`, so a damaged `last.pt` falls back to it.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from engine.checkpoint_files import CheckpointError, fsync_dir, header, previous_path, read_verified
from engine.events import CheckpointSaved, EventWriter


def save_atomic(state: dict[str, Any], path: Path, keep_previous: bool = False) -> None:
    """Write `state` so that `path` is always either the old or the new file, never half.

    With `keep_previous`, the file being replaced is first kept as `<stem>.prev.pt`.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            f.write(header(payload))
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def load(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Verify, then load with `weights_only=True` (tensors and plain values only)."""
    payload = read_verified(path)
    try:
        with warnings.catch_warnings():  # e.g. torch's note on the pickle protocol
            warnings.simplefilter("ignore")
            state = torch.load(io.BytesIO(payload), map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} refused: {_reason(exc)}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"checkpoint {path} is not a cifar-tui training checkpoint")
    return state


def _reason(exc: Exception) -> str:
    """The informative line of torch's weights_only refusal (its first lines are boilerplate)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            detail = line.split("WeightsUnpickler error:", 1)[1].strip()
            return f"it holds more than tensors and plain values ({detail.split('. ')[0]})"
    return lines[0] if lines else type(exc).__name__


def load_with_fallback(
    path: Path, map_location: Any = "cpu"
) -> tuple[dict[str, Any], Path, str | None]:
    """Load `path`, else its `.prev` sibling. Returns (state, the path used, a warning or None)."""
    try:
        return load(path, map_location), path, None
    except CheckpointError as first:
        prev = previous_path(path)
        if not prev.exists():
            raise
        state = load(prev, map_location)
        return state, prev, f"{first}; resuming from the previous checkpoint {prev}"


def host_copy(value: Any) -> Any:
    """A copy of a checkpoint state that shares no memory with training: tensors copied to the
    CPU (cloned when already there), containers rebuilt, other values kept (immutable or fresh)."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        return value.clone() if value.device.type == "cpu" else value.to("cpu")
    if isinstance(value, dict):
        return {k: host_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(host_copy(v) for v in value)
    return value


class BackgroundWriter:
    """Writes checkpoints off the training thread, one at a time.

    `submit(state, targets)` takes a `host_copy` of the state (the only time the training
    thread is blocked), then a thread writes it to each (path, keep_previous) target with
    `save_atomic`, in order. A second submit first waits for the write in flight; `wait()`
    returns once nothing is in flight and raises the error a write met (an OSError names the
    file and says the previous checkpoint is intact). `done()` hands out the targets written
    since the last call, for the caller's events."""

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._written: list[tuple[Path, Any]] = []
        self._lock = threading.Lock()

    def submit(self, state: dict[str, Any], targets: list[tuple[Path, bool]], tag: Any) -> None:
        self.wait()
        copy = host_copy(state)
        self._thread = threading.Thread(
            target=self._write, args=(copy, targets, tag), name="checkpoint-writer", daemon=True
        )
        self._thread.start()

    def _write(self, state: dict[str, Any], targets: list[tuple[Path, bool]], tag: Any) -> None:
        for path, keep_previous in targets:
            try:
                save_atomic(state, path, keep_previous)
            except OSError as exc:
                self._error = OSError(
                    exc.errno,
                    f"could not write {path} ({exc.strerror or exc}); "
                    "the previous checkpoint is intact",
                )
                return
            except BaseException as exc:  # surfaced on the training thread by wait()
                self._error = exc
                return
            with self._lock:
                self._written.append((path, tag))

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error

    def done(self) -> list[tuple[Path, Any]]:
        with self._lock:
            written, self._written = self._written, []
        return written


class RunCheckpoints:
    """A run's `last.pt` / `best.pt`, written by rank 0 in the background (`BackgroundWriter`);
    each `checkpoint` event is emitted once its file is on disk. Other ranks hold the same
    state and write nothing."""

    def __init__(self, run_dir: Path, events: EventWriter, is_main: bool) -> None:
        self.run_dir, self.events, self.is_main = run_dir, events, is_main
        self.writer = BackgroundWriter()
        self.last_save = time.time()

    def save(self, kinds: tuple[str, ...], tag: Any, state: Callable[[], dict[str, Any]]) -> None:
        """Write `state()` (called on rank 0 only) to each kind's file; the training thread
        only copies it to host memory. `tag` (epoch, step) goes with its events."""
        if not self.is_main:
            return
        self.report()  # waits for the write in flight and reports it
        targets = [(self.run_dir / f"{kind}.pt", kind == "last") for kind in kinds]
        self.writer.submit(state(), targets, tag)
        self.last_save = time.time()

    def flush(self) -> None:
        """Wait until every checkpoint asked for is on disk, then report them."""
        if self.is_main:
            self.writer.wait()
            self.report()

    def report(self) -> None:
        """The `checkpoint` events of the writes finished so far (raises what a write met)."""
        if not self.writer.busy():
            self.writer.wait()
        for path, (epoch, step) in self.writer.done():
            kind = path.stem
            self.events.emit(CheckpointSaved(epoch=epoch, step=step, kind=kind, path=str(path)))
