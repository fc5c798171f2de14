"""The LR range test's settings: defaults, their checks and the swept rates (torch-free: the CLI
checks them before an engine starts)."""

from __future__ import annotations

import math

from engine.errors import ConfigError

DEFAULT_START = 1e-5
DEFAULT_END = 10.0
DEFAULT_STEPS = 100
DEFAULT_SMOOTHING = 0.98
DEFAULT_DIVERGE = 4.0
SUGGESTION_RULE = "lr at the minimum of the smoothed loss / 10 (3 significant digits)"


def check_sweep(
    start: float,
    end: float,
    steps: int,
    smoothing: float = DEFAULT_SMOOTHING,
    diverge: float = DEFAULT_DIVERGE,
) -> None:
    """Refuse sweep settings that cannot work (ConfigError with a one-line message)."""
    if not (math.isfinite(start) and start > 0):
        raise ConfigError(f"--start must be a positive learning rate, got {start!r}")
    if not (math.isfinite(end) and end > start):
        raise ConfigError(f"--end must be larger than --start ({start:g}), got {end!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ConfigError(f"--steps must be an integer >= 2, got {steps!r}")
    if not 0.0 <= smoothing < 1.0:
        raise ConfigError(f"smoothing must be in [0, 1), got {smoothing!r}")
    if not diverge > 1.0:
        raise ConfigError(f"diverge must be > 1, got {diverge!r}")


def sweep_lrs(start: float, end: float, steps: int) -> list[float]:
    """The sweep's learning rates: `steps` points from `start` to `end`, evenly spaced in log."""
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]
