"""Learning-rate (and momentum) schedules (engine.schedule) against their closed forms and
torch's."""

from __future__ import annotations

import io
import math
from typing import Any

import pytest
import torch
from torch import nn

from engine import build
from engine.catalog import OPTIMIZERS, SCHEDULES
from engine.config import load_config
from engine.schedule import Scheduler


def test_cosine_with_warmup_matches_the_formula():
    steps_per_epoch, epochs, warmup_epochs = 10, 20, 5
    total = steps_per_epoch * epochs
    f = SCHEDULES.build("cosine", total, steps_per_epoch, warmup_epochs=warmup_epochs).lr
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
    f = SCHEDULES.build("cosine", 100, 10, warmup_epochs=0, min_lr_ratio=0.1).lr
    assert (
        f(0) == pytest.approx(1.0) and f(100) == pytest.approx(0.1) and f(50) == pytest.approx(0.55)
    )
    g = SCHEDULES.build("constant", 100, 10, warmup_epochs=1).lr
    assert [g(s) for s in (0, 4, 9, 10, 99)] == [0.1, 0.5, 1.0, 1.0, 1.0]


def test_schedule_drives_the_optimizer_per_iteration():
    model = nn.Linear(2, 2)
    opt = OPTIMIZERS.build("sgd", model, lr=0.1)
    schedule = SCHEDULES.build("cosine", 20, 2, warmup_epochs=1)
    sched = Scheduler(opt, schedule)
    f = schedule.lr
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.1 * f(s) for s in range(20)])


def test_step_and_multistep_follow_their_closed_forms():
    f = SCHEDULES.build("step", 100, 10, warmup_epochs=1, step_epochs=3, gamma=0.5).lr
    assert [f(i) for i in (0, 9, 10, 29, 30, 60, 99)] == pytest.approx(
        [0.1, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125]
    )
    g = SCHEDULES.build("multistep", 200, 10, milestones=[6, 12, 16], gamma=0.2).lr
    assert [g(i) for i in (0, 59, 60, 119, 120, 160, 199)] == pytest.approx(
        [1.0, 1.0, 0.2, 0.2, 0.04, 0.008, 0.008]
    )


def _onecycle_pair(name: str, total: int, max_lr: float, **options: Any) -> tuple[Any, Any]:
    """Our onecycle over the catalog's `name` and torch's OneCycleLR over a twin optimizer."""
    ours = OPTIMIZERS.build(name, nn.Linear(3, 2), lr=max_lr)
    theirs = OPTIMIZERS.build(name, nn.Linear(3, 2), lr=max_lr)
    sched = Scheduler(ours, SCHEDULES.build("onecycle", total, 10, **options))
    names = {"cycle_momentum", "base_momentum", "max_momentum", "pct_start"}
    kwargs = {k: v for k, v in SCHEDULES.get("onecycle").resolve(options).items() if k in names}
    torch_sched = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=max_lr, total_steps=total, **kwargs
    )
    return (ours, sched), (theirs, torch_sched)


def _momentum(group: dict[str, Any]) -> float:
    return group["betas"][0] if "betas" in group else group["momentum"]


@pytest.mark.parametrize("name", ["sgd", "adamw", "ranger"])
@pytest.mark.parametrize(
    "options",
    [{}, {"pct_start": 0.25, "base_momentum": 0.8, "max_momentum": 0.9}, {"cycle_momentum": False}],
)
def test_onecycle_matches_torch_onecycle_lr_and_momentum(name, options):
    total, max_lr = 97, 0.4
    (ours, sched), (theirs, torch_sched) = _onecycle_pair(name, total, max_lr, **options)
    configured = _momentum(OPTIMIZERS.build(name, nn.Linear(3, 2)).param_groups[0])
    seen = []
    for i in range(total):
        for group, ref in zip(ours.param_groups, theirs.param_groups, strict=True):
            assert group["lr"] == pytest.approx(ref["lr"], rel=1e-9), i
            assert _momentum(group) == pytest.approx(_momentum(ref), rel=1e-12), i
            if "betas" in group:
                assert group["betas"][1] == ref["betas"][1] == 0.999
        seen.append(_momentum(ours.param_groups[0]))
        for opt, s in ((ours, sched), (theirs, torch_sched)):
            opt.step()
            s.step()
    resolved = SCHEDULES.get("onecycle").resolve(options)
    if resolved["cycle_momentum"]:  # down while the rate rises, back up while it falls
        high, low = resolved["max_momentum"], resolved["base_momentum"]
        assert seen[0] == pytest.approx(high) and seen[-1] == pytest.approx(high)
        assert min(seen) == pytest.approx(low, abs=1e-3)
    else:
        assert set(seen) == {configured}


def test_momentum_survives_a_checkpoint_of_the_schedule():
    (opt, sched), _ = _onecycle_pair("sgd", 50, 0.1)
    for _ in range(20):
        opt.step()
        sched.step()
    saved = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    (resumed, resumed_sched), _ = _onecycle_pair("sgd", 50, 0.1)
    resumed.load_state_dict(state["opt"])
    resumed_sched.load_state_dict(state["sched"])
    assert resumed.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"] < 0.95
    for a, b in ((opt, sched), (resumed, resumed_sched)):
        a.step()
        b.step()
    assert resumed.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]
    assert resumed.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_cycling_momentum_needs_an_optimizer_with_one():
    opt = torch.optim.Adagrad(nn.Linear(2, 2).parameters())
    with pytest.raises(ValueError, match="no momentum or beta1"):
        Scheduler(opt, SCHEDULES.build("onecycle", 10, 10))
    with pytest.raises(ValueError, match="momentum must be in"):
        SCHEDULES.build("onecycle", 10, 10, max_momentum=1.0)


def test_the_run_builds_a_schedule_that_cycles_the_optimizers_momentum():
    cfg = load_config("quickstart", ["optim.name=adam", "schedule.name=onecycle"])
    opt = build.build_optimizer(cfg, nn.Linear(3, 2))
    sched = build.build_schedule(cfg, opt, 100, 10)
    assert [g["betas"] for g in opt.param_groups] == [(0.95, 0.999)] * 2  # max_momentum first
    for _ in range(29):  # to step 29 = 0.3 * 100 - 1, the peak of the rate
        opt.step()
        sched.step()
    assert opt.param_groups[0]["betas"][0] == pytest.approx(0.85)
