"""One file over HTTP(S): resumable, MD5-checked, with a progress callback. Torch-free (the
dashboard downloads the dataset with it too).

`fetch(url, dest)` writes into `dest.part`, which outlives a dropped connection: the next
attempt, in the same call or a later one, asks only for the rest (an HTTP Range request) and
appends it. A finished file that fails its MD5 check is removed and fetched once more from the
start; a second mismatch raises `ChecksumError`. Only a verified file is renamed to `dest`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException
from pathlib import Path
from typing import TextIO

ProgressFn = Callable[[int, int | None], None]  # (bytes on disk, total bytes or None)

TIMEOUT_S = 30.0
ATTEMPTS = 3  # transfers per call: the first, then resumes after a dropped connection
CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+)")


class DownloadError(Exception):
    """A download that did not produce a verified file; `offline`: nothing answered at all."""

    def __init__(self, message: str, *, offline: bool = False) -> None:
        super().__init__(message)
        self.offline = offline


class HTTPStatusError(DownloadError):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"HTTP {code} {reason}")
        self.code = code


class ChecksumError(DownloadError):
    """The file fetched twice from the start and both times not the expected MD5."""


class _Dropped(Exception):
    """The connection ended before the whole body arrived (the bytes so far are kept)."""


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(
    url: str,
    dest: Path,
    *,
    md5: str | None = None,
    progress: ProgressFn | None = None,
    attempts: int = ATTEMPTS,
    timeout: float = TIMEOUT_S,
) -> Path:
    """Download `url` to `dest` (see the module docstring); returns `dest`.

    Raises `HTTPStatusError` (the server refused), `DownloadError` (no network: `offline`;
    the connection dropped `attempts` times: `dest.part` is kept for the next call) or
    `ChecksumError`.
    """
    dest = Path(dest)
    part = part_path(dest)
    for fresh_try in range(2):  # a checksum mismatch earns one fetch from the start
        for attempt in range(1, attempts + 1):
            try:
                _transfer(url, part, progress, timeout)
                break
            except _Dropped as exc:
                if attempt == attempts:
                    have = part.stat().st_size if part.exists() else 0
                    raise DownloadError(
                        f"the connection dropped {attempts} times ({exc}); {have:,} bytes are "
                        f"kept in {part}: run again to continue"
                    ) from None
        if md5 is None or file_md5(part) == md5:
            os.replace(part, dest)
            return dest
        part.unlink(missing_ok=True)
        if fresh_try:
            raise ChecksumError(
                f"the file from {url} failed its MD5 check twice (expected {md5}); it was removed"
            )
    raise AssertionError("unreachable")


def _open(url: str, have: int, timeout: float) -> object:
    headers = {"User-Agent": "cifar-tui"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the open response
        if exc.code == 416 and have:  # nothing left to send: the part is whole
            return None
        raise HTTPStatusError(exc.code, str(exc.reason)) from None
    except urllib.error.URLError as exc:
        raise DownloadError(str(exc.reason), offline=True) from None
    except (OSError, HTTPException) as exc:
        raise DownloadError(str(exc) or type(exc).__name__, offline=True) from None
    except ValueError as exc:  # e.g. "unknown url type"
        raise DownloadError(str(exc)) from None


def _transfer(url: str, part: Path, progress: ProgressFn | None, timeout: float) -> None:
    """Append the rest of `url` to `part` (everything when the server ignores the Range)."""
    have = part.stat().st_size if part.exists() else 0
    response = _open(url, have, timeout)
    if response is None:
        return
    with response as r:  # type: ignore[attr-defined]
        total: int | None = None
        if have and r.status == 206:
            match = _CONTENT_RANGE.match(r.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != have:
                have = 0  # a range we did not ask for: start over
            else:
                total = int(match.group(2))
        else:
            have = 0  # a full body (200): the server does not resume
        if total is None and r.headers.get("Content-Length"):
            total = have + int(r.headers["Content-Length"])
        done = have
        with open(part, "ab" if have else "wb") as f:
            if progress is not None:
                progress(done, total)
            while True:
                try:
                    block = r.read(CHUNK)
                except (OSError, HTTPException) as exc:
                    raise _Dropped(str(exc) or type(exc).__name__) from None
                if not block:
                    break
                f.write(block)
                done += len(block)
                if progress is not None:
                    progress(done, total)
    if total is not None and done < total:
        raise _Dropped(f"{done:,} of {total:,} bytes")


def text_progress(label: str, stream: TextIO | None = None, every_s: float = 0.5) -> ProgressFn:
    """A progress callback drawing `label: 45.2 / 161.0 MB (28%)` on `stream` (stderr), redrawn
    in place on a terminal, else a line every 10 %."""
    out = stream or sys.stderr
    tty = out.isatty()
    last = {"t": 0.0, "tenth": -1}

    def show(done: int, total: int | None) -> None:
        now = time.monotonic()
        finished = total is not None and done >= total
        text = f"{label}: {done / 1e6:.1f}" + (
            f" / {total / 1e6:.1f} MB ({done / total:.0%})" if total else " MB"
        )
        if tty:
            if finished or now - last["t"] >= every_s:
                last["t"] = now
                out.write("\r" + text + ("\n" if finished else ""))
                out.flush()
            return
        tenth = int(10 * done / total) if total else 0
        if tenth != last["tenth"]:
            last["tenth"] = tenth
            out.write(text + "\n")
            out.flush()

    return show
