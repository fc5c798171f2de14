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


@SCHEDULES.register(
    "step",
    "linear warmup, then the rate times gamma every step_epochs epochs",
    limits={"warmup_epochs": ">= 0", "step_epochs": "> 0", "gamma": "0..1"},
)
def step(
    total_steps: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float = 0.0,
    step_epochs: float = 60.0,
    gamma: float = 0.2,
) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    every = max(round(step_epochs * steps_per_epoch), 1)

    def factor(i: int) -> float:
        return (i + 1) / warmup if i < warmup else gamma ** (i // every)

    return factor


@SCHEDULES.register(
    "multistep",
    "linear warmup, then the rate times gamma at each milestone epoch",
    limits={"warmup_epochs": ">= 0", "milestones": ">= 0", "gamma": "0..1"},
)
def multistep(
    total_steps: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float = 0.0,
    milestones: list[float] = [60.0, 120.0, 160.0],  # noqa: B006 (read only)
    gamma: float = 0.2,
) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    marks = sorted(round(m * steps_per_epoch) for m in milestones)

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return gamma ** sum(i >= m for m in marks)

    return factor


@SCHEDULES.register(
    "onecycle",
    "one-cycle (Smith 2018): cosine up from lr/div_factor to lr, then down to lr/final_div",
    limits={"pct_start": "0..1", "div_factor": ">= 1", "final_div_factor": ">= 1"},
)
def onecycle(
    total_steps: int,
    steps_per_epoch: int,
    *,
    pct_start: float = 0.3,
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
) -> Factor:
    """The same phases and cosine annealing as torch.optim.lr_scheduler.OneCycleLR."""
    start = 1.0 / div_factor
    end = start / final_div_factor
    up_end = float(pct_start * total_steps) - 1
    down_end = float(total_steps - 1)

    def anneal(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)

    def factor(i: int) -> float:
        if i <= up_end:
            return anneal(start, 1.0, i / up_end if up_end > 0 else 1.0)
        return anneal(1.0, end, min((i - up_end) / (down_end - up_end), 1.0))

    return factor
