"""Shared test helpers: the real CIFAR-100 copy beside the checkout, and CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_CIFAR = ROOT.parent / "shared" / "data" / "cifar-100-python"

# The user's own presets and sweeps (~/.config/cifar-tui) never reach the tests, and the tests
# never write there: set before collection, for this process and every process it starts.
_NO_USER_FOLDER = Path(os.environ.get("TMPDIR", "/tmp")) / f"cifar-tui-tests-{os.getpid()}-none"
os.environ["CIFAR_TUI_PRESETS"] = str(_NO_USER_FOLDER / "presets")
os.environ["CIFAR_TUI_SWEEPS"] = str(_NO_USER_FOLDER / "sweeps")
# nor the user's cache folder, where a dataset found nowhere else is looked for and downloaded
os.environ["XDG_CACHE_HOME"] = str(_NO_USER_FOLDER / "cache")


def real_cifar_or_skip() -> Path:
    """The shared real dataset; skipped where absent, but a failure when CI=true."""
    if REAL_CIFAR.is_dir():
        return REAL_CIFAR
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the real CIFAR-100 is missing at {REAL_CIFAR}")
    pytest.skip(f"real CIFAR-100 not found at {REAL_CIFAR}")


def cli(
    *args: str, checkpoints: Path, timeout: float = 240, **kwargs
) -> subprocess.CompletedProcess[str]:
    """Run `cifar-tui ARGS` as a user would, without a terminal."""
    env = {
        **os.environ,
        "CIFAR_TUI_CHECKPOINTS": str(checkpoints),
        "NO_COLOR": "1",
        "COLUMNS": "120",
    }
    return subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        **kwargs,
    )
