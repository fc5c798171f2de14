"""Checkpoint files on disk, torch-free: names, the checksummed header, verification.

File layout: one header line `cifar-tui-checkpoint v1 sha256=<hex> size=<bytes>\n`, then the
`torch.save` payload (`engine.checkpoint` writes and loads it). The header lets anything, the
dashboard and the launcher included, verify a file before trusting it; a file that fails is
refused with its path.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

MAGIC = b"cifar-tui-checkpoint v1"
_HEADER = re.compile(rb"^cifar-tui-checkpoint v1 sha256=([0-9a-f]{64}) size=(\d+)$")
MAX_HEADER = 160


class CheckpointError(Exception):
    """A checkpoint that is missing, damaged or not ours; the message names its path."""


def previous_path(path: Path) -> Path:
    return path.with_name(path.stem + ".prev" + path.suffix)


def header(payload: bytes) -> bytes:
    """The header line for `payload`."""
    digest = hashlib.sha256(payload).hexdigest().encode()
    return b"%s sha256=%s size=%d\n" % (MAGIC, digest, len(payload))


def fsync_dir(folder: Path) -> None:
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


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files of writes that never finished (a kill during a write): the
    checkpoints' and those of `engine.sinks.write_atomic` (summary, card, config); the files
    themselves are untouched. Call it before a run folder's engine writes (it holds the lock)."""
    patterns = (".*.pt.tmp-*", ".*.json.tmp-*", ".*.md.tmp-*", ".*.yaml.tmp-*", ".*.npz.tmp-*")
    stale = sorted(p for pattern in patterns for p in Path(folder).glob(pattern))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
