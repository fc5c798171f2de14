"""A warm engine process for augmentation previews (torch stays in it): started on the first draw,
asked for each new draw over a pipe (`python -m engine.preview --serve`, see engine.preview), and
stopped by `close` when the preview dialog goes. The first draw pays for importing torch and
decoding the data; later draws only augment."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

Progress = Callable[[str], None]


class PreviewEngine:
    """One serving engine process; `draw` is called from one worker thread at a time."""

    command: tuple[str, ...] = (sys.executable, "-m", "engine.preview", "--serve")

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None
        self.closed = False
        self._busy = False  # a draw is reading the pipes: it releases them if closed meanwhile

    @property
    def warm(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _start(self) -> subprocess.Popen[str]:
        # read back when the process dies; closed by `_release`
        self._stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            list(self.command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,  # a Ctrl+C in the terminal is the dashboard's, not its
        )
        return self.process

    def draw(
        self,
        config_yaml: str,
        out: Path,
        *,
        count: int,
        seed: int,
        timeout: float,
        progress: Progress | None = None,
    ) -> str | None:
        """Ask for one preview npz at `out`; None when it is there, else one line of error."""
        if self.closed:
            return "the preview was closed"
        self._busy = True
        try:
            return self._draw(
                config_yaml, out, count=count, seed=seed, timeout=timeout, say=progress
            )
        finally:
            self._busy = False
            if self.closed:
                self._release()

    def _draw(
        self,
        config_yaml: str,
        out: Path,
        count: int,
        seed: int,
        timeout: float,
        say: Progress | None,
    ) -> str | None:
        say = say or (lambda text: None)
        if not self.warm:
            say("starting the preview engine (importing torch) ...")
            self._start()
        process = self.process
        assert process is not None and process.stdin is not None and process.stdout is not None
        request = {"config": config_yaml, "out": str(out), "count": count, "seed": seed}
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except OSError:
            return self._died()
        deadline = time.monotonic() + timeout
        fd = process.stdout.fileno()
        pending = b""
        while True:
            # the pipe itself, not Python's buffer: select tells only about what the OS holds
            while b"\n" in pending:
                raw, pending = pending.split(b"\n", 1)
                reply = _parse(raw.decode(errors="replace"))
                if reply is None:
                    continue  # a library's stray print
                if "progress" in reply:
                    say(str(reply["progress"]))
                elif "error" in reply:
                    return str(reply["error"])
                elif "done" in reply:
                    return None
            left = deadline - time.monotonic()
            if left <= 0:
                self._stop()  # a stuck engine is not reused: the next draw starts afresh
                return f"the preview took over {timeout:.0f} s"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return self._died()
            pending += chunk

    def _died(self) -> str:
        if self.closed:
            return "the preview was closed"
        process, self.process = self.process, None
        code = process.wait() if process is not None else None
        text = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            text = self._stderr.read()
        lines = text.strip().splitlines()
        return lines[-1] if lines else f"the preview engine exited with {code}"

    def close(self) -> None:
        """Stop the process (its memory goes with it); idempotent."""
        self.closed = True
        self._stop()
        if not self._busy:
            self._release()

    def _stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if not self.closed:
            self.process = None

    def _release(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


def _parse(line: str) -> dict[str, Any] | None:
    try:
        reply = json.loads(line)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None
