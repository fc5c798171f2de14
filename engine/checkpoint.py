"""Checkpoint files: atomic, checksummed, loaded with `weights_only=True` only.

File layout: one header line `cifar-tui-checkpoint v1 sha256=<hex> size=<bytes>\n`, then the
`torch.save` payload. The header lets anything (even torch-free code) verify a file before
trusting it; a file that fails is refused with its path. Writes go to a temp file in the same
folder, are fsynced, renamed over the target, and the folder is fsynced. The previous `last.pt`
is kept as `last.prev.pt`, so a damaged `last.pt` falls back to the one before.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

MAGIC = b"cifar-tui-checkpoint v1"
_HEADER = re.compile(rb"^cifar-tui-checkpoint v1 sha256=([0-9a-f]{64}) size=(\d+)$")
MAX_HEADER = 160


class CheckpointError(Exception):
    """A checkpoint that is missing, damaged or not ours; the message names its path."""


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def save_atomic(state: dict[str, Any], path: Path, keep_previous: bool = False) -> None:
    """Write `state` so that `path` is always either the old or the new file, never half.

    With `keep_previous`, the file being replaced is first kept as `<stem>.prev.pt`.
    """
    import torch

    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    header = b"%s sha256=%s size=%d\n" % (
        MAGIC,
        hashlib.sha256(payload).hexdigest().encode(),
        len(payload),
    )
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            f.write(header)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous and path.exists():
            os.replace(path, previous_path(path))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_verified(path: Path) -> bytes:
    """The payload of a checkpoint whose header and checksum match; torch-free."""
    try:
        with Path(path).open("rb") as f:
            header = f.readline(MAX_HEADER)
            payload = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror}") from None
    match = _HEADER.match(header.rstrip(b"\n"))
    if not header:
        raise CheckpointError(f"checkpoint {path} is empty")
    if match is None:
        raise CheckpointError(f"checkpoint {path} is not a cifar-tui checkpoint (bad header)")
    digest, size = match.group(1).decode(), int(match.group(2))
    if len(payload) != size:
        raise CheckpointError(
            f"checkpoint {path} is truncated ({len(payload)} of {size} bytes): refused"
        )
    if hashlib.sha256(payload).hexdigest() != digest:
        raise CheckpointError(f"checkpoint {path} fails its checksum (damaged): refused")
    return payload


def load(path: Path, map_location: Any = "cpu") -> dict[str, Any]:
    """Verify, then load with `weights_only=True` (tensors and plain values only)."""
    import pickle

    import torch

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
