"""Dashboard test helpers: an isolated runs folder, a tiny preset, polling with a deadline.

Async scenarios run with asyncio.run inside plain test functions (no pytest plugin needed)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

TINY_PRESET = """\
description: tiny synthetic run for dashboard tests
model: {name: wrn, depth: 10, width: 1}
data: {dataset: synthetic, batch_size: 32, val_size: 100, subset: 320, num_workers: 0}
augment:
  - {name: random_crop, padding: 4}
  - {name: hflip}
optim: {name: sgd, lr: 0.05}
schedule: {name: cosine, warmup_epochs: 0}
train: {epochs: EPOCHS, seed: 0, log_interval_s: 0.1}
"""


def write_tiny_preset(folder: Path, name: str = "tiny", epochs: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(TINY_PRESET.replace("EPOCHS", str(epochs)))
    return path


@pytest.fixture
def checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "checkpoints"
    monkeypatch.setenv("CIFAR_TUI_CHECKPOINTS", str(root))
    return root


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], timeout: float, what: str
) -> None:
    """Let the app run until `condition()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await pilot.pause(0.05)
