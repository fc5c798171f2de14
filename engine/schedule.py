"""Learning-rate schedules, updated every iteration.

A schedule takes (total_steps, steps_per_epoch) and returns `factor(step) -> float`, the
multiplier of the base learning rate at optimizer step `step` (0-based). The trainer wraps it in
`torch.optim.lr_scheduler.LambdaLR` so that its state is checkpointed with everything else.
Names, options, defaults and limits are `engine.catalog.schedules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Factor = Callable[[int], float]


def _warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    return min(round(warmup_epochs * steps_per_epoch), total_steps)


def cosine(
    total_steps: int, steps_per_epoch: int, *, warmup_epochs: float, min_lr_ratio: float
) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        decay_steps = max(total_steps - warmup, 1)
        progress = min((step - warmup) / decay_steps, 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def constant(total_steps: int, steps_per_epoch: int, *, warmup_epochs: float) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else 1.0

    return factor


def step(
    total_steps: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float,
    step_epochs: float,
    gamma: float,
) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    every = max(round(step_epochs * steps_per_epoch), 1)

    def factor(i: int) -> float:
        return (i + 1) / warmup if i < warmup else gamma ** (i // every)

    return factor


def multistep(
    total_steps: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float,
    milestones: list[float],
    gamma: float,
) -> Factor:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    marks = sorted(round(m * steps_per_epoch) for m in milestones)

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return gamma ** sum(i >= m for m in marks)

    return factor


def onecycle(
    total_steps: int,
    steps_per_epoch: int,
    *,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
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
