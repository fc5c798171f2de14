"""Learning-rate schedules, updated every iteration.

A schedule builder takes (total_steps, steps_per_epoch) and returns `factor(step) -> float`, the
multiplier of the base learning rate at optimizer step `step` (0-based). The trainer wraps it in
`torch.optim.lr_scheduler.LambdaLR` so that its state is checkpointed with everything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from engine.registry import Registry

SCHEDULES: Registry[Any] = Registry("schedule")
Factor = Callable[[int], float]


def _warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    return min(round(warmup_epochs * steps_per_epoch), total_steps)


@SCHEDULES.register(
    "cosine",
    "linear warmup, then cosine decay to min_lr_ratio x lr",
    limits={"warmup_epochs": ">= 0", "min_lr_ratio": "0..1"},
)
def cosine(
    total_steps: int, steps_per_epoch: int, *, warmup_epochs: float = 5.0, min_lr_ratio: float = 0.0
) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        decay_steps = max(total_steps - warmup, 1)
        progress = min((step - warmup) / decay_steps, 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@SCHEDULES.register(
    "constant", "linear warmup, then a constant rate", limits={"warmup_epochs": ">= 0"}
)
def constant(total_steps: int, steps_per_epoch: int, *, warmup_epochs: float = 0.0) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else 1.0

    return factor
