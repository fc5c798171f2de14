"""Learning-rate schedules (engine.schedule) against their closed forms and torch's."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from engine.catalog import OPTIMIZERS, SCHEDULES


def test_cosine_with_warmup_matches_the_formula():
    steps_per_epoch, epochs, warmup_epochs = 10, 20, 5
    total = steps_per_epoch * epochs
    f = SCHEDULES.build("cosine", total, steps_per_epoch, warmup_epochs=warmup_epochs)
    w = warmup_epochs * steps_per_epoch
    for step in range(total):
        if step < w:
            expected = (step + 1) / w
        else:
            expected = 0.5 * (1 + math.cos(math.pi * (step - w) / (total - w)))
        assert f(step) == pytest.approx(expected, abs=1e-12)
    assert f(w - 1) == 1.0 and f(w) == 1.0  # warmup reaches the base rate exactly
    assert f(total) == pytest.approx(0.0)


def test_cosine_floor_and_constant():
    f = SCHEDULES.build("cosine", 100, 10, warmup_epochs=0, min_lr_ratio=0.1)
    assert (
        f(0) == pytest.approx(1.0) and f(100) == pytest.approx(0.1) and f(50) == pytest.approx(0.55)
    )
    g = SCHEDULES.build("constant", 100, 10, warmup_epochs=1)
    assert [g(s) for s in (0, 4, 9, 10, 99)] == [0.1, 0.5, 1.0, 1.0, 1.0]


def test_schedule_drives_the_optimizer_per_iteration():
    model = nn.Linear(2, 2)
    opt = OPTIMIZERS.build("sgd", model, lr=0.1)
    f = SCHEDULES.build("cosine", 20, 2, warmup_epochs=1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, f)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * f(s) for s in range(20)])


def test_step_and_multistep_follow_their_closed_forms():
    f = SCHEDULES.build("step", 100, 10, warmup_epochs=1, step_epochs=3, gamma=0.5)
    assert [f(i) for i in (0, 9, 10, 29, 30, 60, 99)] == pytest.approx(
        [0.1, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    )
    g = SCHEDULES.build("multistep", 200, 10, milestones=[6, 12, 16], gamma=0.2)
    assert [g(i) for i in (0, 59, 60, 119, 120, 160, 199)] == pytest.approx(
        [1.0, 1.0, 0.2, 0.2, 0.04, 0.008, 0.008]
    )


def test_onecycle_matches_torch_onecycle_lr():
    model = nn.Linear(2, 2)
    total, max_lr = 97, 0.4
    reference = torch.optim.SGD(model.parameters(), lr=max_lr)
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(
        reference, max_lr=max_lr, total_steps=total, pct_start=0.3, cycle_momentum=False
    )
    f = SCHEDULES.build("onecycle", total, 10)
    for i in range(total):
        assert max_lr * f(i) == pytest.approx(reference.param_groups[0]["lr"], rel=1e-9), i
        reference.step()
        torch_sched.step()
