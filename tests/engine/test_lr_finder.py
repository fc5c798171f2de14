"""LR finder: the sweep's rules against hand computations and a problem with a known stable range,
the caller's model left bit-identical, and `cifar-tui lr-find` end to end."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from engine.config import config_to_dict, load_config
from engine.errors import ConfigError
from engine.lr_finder import find_lr, lr_sweep, smooth_losses, suggest, sweep_lrs
from engine.presets import bundled_folder
from tests.conftest import ROOT, cli
from tui.cli.lr_find import default_apply_path, default_out
from tui.orchestration.launcher import resolve_config

PRESETS = bundled_folder("preset")

TINY = [
    "model.name=wrn",
    "model.depth=10",
    "model.width=1",
    "data.batch_size=16",
    "data.subset=128",
    "data.val_size=100",
]


# --------------------------------------------------------------------------- the rules


def test_smoothing_matches_hand_computation():
    # beta 0.5: avg = 2, 2, 1.5; bias corrections 1 - 0.5**k = 0.5, 0.75, 0.875
    assert smooth_losses([4.0, 2.0, 1.0], 0.5) == pytest.approx([4.0, 8 / 3, 12 / 7], abs=1e-15)
    # beta 0.98: the first point is the loss itself, the second (0.98*0.02*3 + 0.02*1) / 0.0396
    assert smooth_losses([3.0, 1.0], 0.98) == pytest.approx([3.0, (0.0588 + 0.02) / 0.0396])
    assert smooth_losses([5.0, 1.0, 7.0], 0.0) == [5.0, 1.0, 7.0]


def test_lrs_follow_the_exponential_formula():
    assert sweep_lrs(1e-5, 10.0, 100) == pytest.approx(np.geomspace(1e-5, 10.0, 100), rel=1e-12)
    assert sweep_lrs(0.1, 0.4, 3) == pytest.approx([0.1, 0.2, 0.4])


def test_suggestion_is_min_lr_over_ten_to_three_digits():
    lrs = [1e-3, 1e-2, 0.123456, 1.0]
    assert suggest(lrs, [4.0, 3.0, 2.5, 9.0]) == 0.0123
    assert suggest(lrs, [1.0, 3.0, 2.5, 9.0]) == 1e-4
    assert suggest([], []) is None


class Scripted(nn.Module):
    """A linear layer whose training loss is dictated by a script (through `scripted_loss`)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(2, 2)
        self.b = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def scripted_loss(values: list[float]):
    it = iter(values)

    def loss_fn(outputs: torch.Tensor, _targets: torch.Tensor) -> torch.Tensor:
        return outputs.sum() * 0.0 + next(it)

    return loss_fn


class RecordingSGD(torch.optim.SGD):
    def __init__(self, groups, applied):
        super().__init__(groups, lr=123.0)
        self.applied = applied

    def step(self, closure=None):
        self.applied.append([g["lr"] for g in self.param_groups])
        return super().step(closure)


def _sweep_scripted(values, *, steps, smoothing, diverge=4.0, applied=None):
    applied = [] if applied is None else applied

    def make(net):  # two groups: the rate must reach both
        return RecordingSGD(
            [{"params": net.a.parameters()}, {"params": net.b.parameters()}], applied
        )

    batches = [(torch.ones(1, 2), torch.zeros(1))]  # a list: cycled
    return lr_sweep(
        Scripted(), scripted_loss(values), make, batches, 1e-3, 1.0, steps, smoothing, diverge
    )


def test_sweep_sets_every_group_and_stops_on_divergence():
    values = [5.0, 4.0, 3.0, 2.0, 3.0, 7.0, 9.0, 100.0, 1.0, 1.0]
    applied: list[list[float]] = []
    curve = _sweep_scripted(values, steps=10, smoothing=0.0, diverge=3.0, applied=applied)
    lrs = sweep_lrs(1e-3, 1.0, 10)
    # smoothing 0: smoothed == loss; 7 > 3 * min(5, 4, 3, 2) stops at the sixth step
    assert curve.losses == values[:6] and curve.smoothed == values[:6]
    assert curve.lrs == lrs[:6]
    assert applied == [[lr, lr] for lr in lrs[:6]]
    assert curve.stopped_early and curve.reason.startswith("diverged at lr")
    assert curve.min_lr == lrs[3] and curve.suggestion == float(f"{lrs[3] / 10:.3g}")


def test_sweep_smooths_like_the_reference_and_stops_on_nan():
    values = [5.0, 4.0, 4.5, 3.0, 3.25, math.nan, 1.0]
    curve = _sweep_scripted(values, steps=7, smoothing=0.7)
    assert curve.losses == values[:5]
    assert curve.smoothed == pytest.approx(smooth_losses(values[:5], 0.7), abs=0)
    assert curve.stopped_early and curve.reason.startswith("non-finite loss")
    complete = _sweep_scripted([3.0, 2.0, 2.5], steps=3, smoothing=0.5)
    assert not complete.stopped_early and complete.reason == "completed all 3 steps"
    assert any("did not diverge" in n for n in complete.notes)


def test_bad_sweep_settings_are_config_errors():
    for kwargs in ({"start": 0.0}, {"end": 1e-6}, {"steps": 1}, {"smoothing": 1.0}):
        args: dict[str, Any] = {"start": 1e-5, "end": 10.0, "steps": 10, "smoothing": 0.9, **kwargs}
        with pytest.raises(ConfigError):
            lr_sweep(Scripted(), scripted_loss([]), plain_sgd, [], **args)


# --------------------------------------------------------------------------- a known stable range


def least_squares(seed: int, scale: float = 5.0, n: int = 256, d: int = 10):
    """Full-batch least squares: SGD without momentum is stable iff lr < 2 / L, with L the
    largest eigenvalue of the loss's Hessian 2/n [X 1]^T [X 1] (computed here in closed form)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * scale
    w = torch.randn(d, 1, generator=g, dtype=torch.float64)
    y = x @ w + 0.1 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)
    xa = torch.cat([x, torch.ones(n, 1, dtype=torch.float64)], dim=1)
    top = torch.linalg.eigvalsh(2.0 * xa.T @ xa / n).max().item()
    return model, x, y, 2.0 / top


def plain_sgd(net: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.0)


def test_the_closed_form_limit_is_the_real_stability_limit():
    model, x, y, limit = least_squares(0)
    first = nn.functional.mse_loss(model(x), y).item()
    for factor, stable in ((0.95, True), (1.05, False)):
        net = copy.deepcopy(model)
        opt = torch.optim.SGD(net.parameters(), lr=factor * limit)
        for _ in range(600):
            opt.zero_grad()
            loss = nn.functional.mse_loss(net(x), y)
            loss.backward()
            opt.step()
        assert (loss.item() < 0.01 * first) is stable


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_suggestion_lands_inside_the_stable_range(seed):
    model, x, y, limit = least_squares(seed)
    assert 1e-3 < limit < 1  # mid-sweep for the default range 1e-5 .. 10
    curve = lr_sweep(model, nn.functional.mse_loss, plain_sgd, [(x, y)])
    assert curve.suggestion is not None
    assert 0.2 * limit <= curve.suggestion < limit, curve.suggestion / limit
    assert curve.stopped_early and curve.reason.startswith("diverged")
    assert curve.lrs[-1] > limit


# --------------------------------------------------------------------------- the caller's model


def test_callers_model_optimizer_and_rng_are_untouched():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5)
    )
    model.append(nn.Linear(4 * 6 * 6, 5))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()  # momentum buffers and grads exist, BN statistics moved
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    assert len(grads) == len(list(model.parameters()))
    opt_before = copy.deepcopy(opt.state_dict())
    batches = [(torch.randn(8, 3, 8, 8), torch.randint(0, 5, (8,))) for _ in range(3)]
    rng = torch.get_rng_state()  # dropout in the sweep must not draw from the caller's stream
    copies: list[nn.Module] = []

    def make(net: nn.Module) -> torch.optim.Optimizer:
        copies.append(net)
        return torch.optim.SGD(net.parameters(), lr=0.0, momentum=0.9)

    curve = lr_sweep(model, nn.functional.cross_entropy, make, batches, 1e-3, 1.0, 12)
    assert len(curve.losses) >= 5
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(
        p.grad is not None and torch.equal(g, p.grad)
        for g, p in zip(grads, model.parameters(), strict=True)
    )
    opt_after = opt.state_dict()
    assert opt_after["param_groups"] == opt_before["param_groups"]
    for i, state in opt_before["state"].items():
        assert torch.equal(state["momentum_buffer"], opt_after["state"][i]["momentum_buffer"])
    assert not model.training
    assert torch.equal(rng, torch.get_rng_state())
    (net,) = copies
    assert not any(
        torch.equal(a, b) for a, b in zip(net.parameters(), model.parameters(), strict=True)
    )


# --------------------------------------------------------------------------- from a run config


def test_find_lr_from_a_config_skips_sam_and_mixes_batches():
    cfg = load_config("quickstart", [*TINY, "sam.name=asam", "mix.name=mixup", "train.device=cpu"])
    curve = find_lr(cfg, 1e-3, 1.0, 4)
    assert len(curve.lrs) == 4 and all(math.isfinite(v) for v in curve.losses)
    assert any("SAM (asam) is not applied" in n for n in curve.notes)
    assert curve.config["mix"] == "mixup" and curve.config["sam"] == "asam"
    assert curve.config["train_size"] == 128 and curve.config["synthetic"]


def test_default_file_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_out("quickstart") == tmp_path / "lr_find_quickstart.json"
    assert default_out("some/dir/mine.yaml") == tmp_path / "lr_find_mine.json"
    assert default_apply_path("resnet50", 0.0123) == tmp_path / "resnet50_lr0.0123.yaml"


# --------------------------------------------------------------------------- the CLI


def test_cli_end_to_end_writes_curve_and_applied_preset(tmp_path):
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    sets = [a for s in [*TINY, "train.device=cpu"] for a in ("--set", s)]
    args = ["lr-find", "quickstart", *sets, "--start", "1e-3", "--end", "10", "--steps", "6"]
    result = subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", *args, "--apply"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    assert "lr-find: step 6/6" in result.stderr
    curve = json.loads((tmp_path / "lr_find_quickstart.json").read_text())
    suggestion = curve["suggestion"]
    assert math.isfinite(suggestion) and suggestion > 0 and len(curve["lrs"]) >= 2
    assert f"suggested lr: {suggestion:g}" in result.stdout
    assert "learning rate (log scale)" in result.stdout and "\x1b[" not in result.stdout
    applied = tmp_path / f"quickstart_lr{suggestion:g}.yaml"
    assert f"wrote {applied}" in result.stdout
    new = load_config(str(applied))
    assert new.optim.params["lr"] == suggestion
    resolve_config(str(applied), [])  # what `cifar-tui --run applied.yaml` does first
    old = config_to_dict(load_config("quickstart", [*TINY, "train.device=cpu"]))
    mine = config_to_dict(new)
    for d in (old, mine):
        del d["optim"]["lr"], d["description"]
    assert mine == old


def test_cli_refuses_overwriting_and_bad_input(tmp_path):
    bundled = PRESETS / "quickstart.yaml"
    text = bundled.read_text()
    cases = {
        "already exists; refusing to overwrite": ["quickstart", "--apply-to", str(bundled)],
        "unknown preset 'quickstat'; did you mean 'quickstart'?": ["quickstat"],
        "--steps must be an integer >= 2": ["quickstart", "--steps", "1"],
        "--end must be larger than --start": ["quickstart", "--start", "1", "--end", "0.5"],
        # checked before the sweep (which takes minutes), not after it
        "--out /proc/lr.json: cannot write there": ["quickstart", "--out", "/proc/lr.json"],
        "is a folder; give a file name": ["quickstart", "--out", str(tmp_path)],
    }
    for message, args in cases.items():
        result = cli("lr-find", *args, checkpoints=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert bundled.read_text() == text
    assert not (ROOT / "lr_find_quickstart.json").exists()


def test_cli_side_loads_no_torch():
    code = "import sys, tui.cli.lr_find, tui.cli; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
