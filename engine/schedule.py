"""Learning-rate schedules, updated every iteration.

A schedule takes (total_steps, steps_per_epoch) and returns a `Schedule`: `lr(step)`, the
multiplier of the base learning rate at optimizer step `step` (0-based), and optionally
`momentum(step)`, the momentum itself. The trainer steps it as a `Scheduler` (a `LambdaLR`) so
that its state is checkpointed with everything else.
Names, options, defaults and limits are `engine.catalog.schedules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

Factor = Callable[[int], float]


class Schedule(NamedTuple):
    """The factor on the base rate per step; the momentum per step, None to keep the optimizer's."""

    lr: Factor
    momentum: Factor | None = None


def _set_momentum(group: dict[str, Any], value: float) -> None:
    """SGD's `momentum`, or the Adam family's beta1, as OneCycleLR sets them."""
    if "betas" in group:
        group["betas"] = (value, *group["betas"][1:])
    else:
        group["momentum"] = value


class Scheduler(torch.optim.lr_scheduler.LambdaLR):
    """`LambdaLR` over `schedule.lr` that also sets every group's momentum to `schedule.momentum`
    of the step, when the schedule has one. Momentum is a host float read at each `step()`: no
    device work; it is saved with the optimizer's groups and recomputed from the step anyway."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule) -> None:
        if schedule.momentum is not None and not {"momentum", "betas"} & set(optimizer.defaults):
            raise ValueError(f"{type(optimizer).__name__} has no momentum or beta1 to cycle")
        self._momentum = schedule.momentum
        super().__init__(optimizer, schedule.lr)

    def get_lr(self) -> list[float | torch.Tensor]:
        if self._momentum is not None:
            value = self._momentum(self.last_epoch)
            for group in self.optimizer.param_groups:
                _set_momentum(group, value)
        return super().get_lr()

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.pop("_momentum")  # a function of the step, built from the config
        return state


def _warmup_steps(warmup_epochs: float, steps_per_epoch: int, total_steps: int) -> int:
    return min(round(warmup_epochs * steps_per_epoch), total_steps)


def cosine(
    total_steps: int, steps_per_epoch: int, *, warmup_epochs: float, min_lr_ratio: float
) -> Schedule:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        decay_steps = max(total_steps - warmup, 1)
        progress = min((step - warmup) / decay_steps, 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return Schedule(factor)


def constant(total_steps: int, steps_per_epoch: int, *, warmup_epochs: float) -> Schedule:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)

    def factor(step: int) -> float:
        return (step + 1) / warmup if step < warmup else 1.0

    return Schedule(factor)


def step(
    total_steps: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float,
    step_epochs: float,
    gamma: float,
) -> Schedule:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    every = max(round(step_epochs * steps_per_epoch), 1)

    def factor(i: int) -> float:
        return (i + 1) / warmup if i < warmup else gamma ** (i // every)

    return Schedule(factor)


def multistep(
    total_steps: int,
    steps_per_epoch: int,
    *,
    warmup_epochs: float,
    milestones: list[float],
    gamma: float,
) -> Schedule:
    warmup = _warmup_steps(warmup_epochs, steps_per_epoch, total_steps)
    marks = sorted(round(m * steps_per_epoch) for m in milestones)

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return gamma ** sum(i >= m for m in marks)

    return Schedule(factor)


def onecycle(
    total_steps: int,
    steps_per_epoch: int,
    *,
    pct_start: float,
    div_factor: float,
    final_div_factor: float,
    cycle_momentum: bool,
    base_momentum: float,
    max_momentum: float,
) -> Schedule:
    """The phases and cosine annealing of torch.optim.lr_scheduler.OneCycleLR (two phases, 'cos'):
    the rate from lr / div_factor up to lr, then down to lr / div_factor / final_div_factor; the
    momentum, when cycled, the other way: from max_momentum down to base_momentum and back."""
    for value in (base_momentum, max_momentum):
        if cycle_momentum and not 0.0 <= value < 1.0:
            raise ValueError(f"onecycle: momentum must be in [0, 1), got {value!r}")
    start = 1.0 / div_factor
    end = start / final_div_factor
    up_end = float(pct_start * total_steps) - 1
    down_end = float(total_steps - 1)

    def anneal(a: float, b: float, pct: float) -> float:
        return b + (a - b) / 2.0 * (math.cos(math.pi * pct) + 1)

    def phase(i: int) -> tuple[bool, float]:
        """Whether step i is in the first phase, and how far through its phase it is."""
        if i <= up_end:
            return True, i / up_end if up_end > 0 else 1.0
        return False, min((i - up_end) / (down_end - up_end), 1.0)

    def factor(i: int) -> float:
        up, pct = phase(i)
        return anneal(start, 1.0, pct) if up else anneal(1.0, end, pct)

    def momentum(i: int) -> float:
        up, pct = phase(i)
        if up:
            return anneal(max_momentum, base_momentum, pct)
        return anneal(base_momentum, max_momentum, pct)

    return Schedule(factor, momentum if cycle_momentum else None)
