"""Start an engine process for a preset and supervise it (torch-free).

The engine runs as `python -m engine run RUN_DIR` in its own session, so a dropped terminal does
not kill training; SIGINT/SIGTERM received here are forwarded to it once, and the engine then
finishes its step, checkpoints and exits 130/143.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from engine.config import RunConfig, dump_config, load_config
from engine.runs import checkpoints_root, create_run_dir


@dataclass
class LaunchedRun:
    run_id: str
    run_dir: Path
    config: RunConfig
    process: subprocess.Popen[bytes]


def resolve_config(
    preset: str,
    overrides: list[str],
    *,
    data_dir: str | None = None,
    device: str | None = None,
) -> RunConfig:
    """Preset + `--set` overrides + the CLI's shortcuts, validated. Raises ConfigError."""
    extra = list(overrides)
    if data_dir is not None:
        extra.append(f"data.data_dir={json.dumps(data_dir)}")  # JSON strings are valid YAML
    if device is not None:
        extra.append(f"train.device={json.dumps(device)}")
    return load_config(preset, extra)


def launch(
    preset: str,
    cfg: RunConfig,
    checkpoints: str | Path | None = None,
    *,
    stdout: Any = None,
) -> LaunchedRun:
    """Create the run folder (resolved config.yaml) and start the engine process on it."""
    name = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
    run_id, run_dir = create_run_dir(checkpoints_root(checkpoints), name, dump_config(cfg))
    env = dict(os.environ)
    # the engine must import the same code as this process, installed or not
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(run_dir)],
        stdin=subprocess.DEVNULL,
        stdout=stdout if stdout is not None else sys.stderr,
        start_new_session=True,
        env=env,
    )
    return LaunchedRun(run_id, run_dir, cfg, process)


def exit_code(process: subprocess.Popen[bytes]) -> int:
    """The engine's exit status, with death by signal N reported as 128+N like a shell."""
    code = process.wait()
    return 128 - code if code < 0 else code


class ForwardSignals:
    """While active, SIGINT and SIGTERM sent to this process go to the engine instead."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def __enter__(self) -> ForwardSignals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
