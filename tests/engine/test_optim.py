"""Optimizers (engine.optim, engine.lookahead, engine.sam) against hand-computed updates and the
papers' rules; exact resume; the optimizer and loss catalogs' contracts."""

from __future__ import annotations

import copy
import io
import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.catalog import LOSSES, OPTIMIZERS, SAM_VARIANTS, Catalog
from engine.config import ConfigError, parse_config
from engine.lookahead import Lookahead
from engine.optim import CentralizedRAdam, centralize_gradients, param_groups
from engine.sam import SAM, frozen_bn_stats, needs_closure


class _Quadratic(nn.Module):
    """loss = 0.5 * sum(a * w^2) + sum(c * w) + 0.5 * sum((b - 1)^2): gradients known in closed
    form (g_w = a * w + c, g_b = b - 1); w is a "kernel" (decayed), b a "bias" (not decayed)."""

    A = np.array([[1.0, 2.0], [0.5, 3.0]])
    C = np.array([[0.3, -0.2], [0.1, 0.0]])

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[1.0, -2.0], [0.5, 1.5]], dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor([0.2, -0.4], dtype=torch.float64))

    def loss(self) -> torch.Tensor:
        a = torch.from_numpy(self.A)
        c = torch.from_numpy(self.C)
        return 0.5 * (a * self.w**2).sum() + (c * self.w).sum() + 0.5 * ((self.b - 1) ** 2).sum()

    @classmethod
    def grads(cls, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return cls.A * w + cls.C, b - 1.0


def _start() -> tuple[np.ndarray, np.ndarray]:
    m = _Quadratic()
    return m.w.detach().numpy().copy(), m.b.detach().numpy().copy()


def _train(model: _Quadratic, opt: torch.optim.Optimizer, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        model.loss().backward()
        opt.step()


def _assert_close(model: _Quadratic, w: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_allclose(model.w.detach().numpy(), w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.b.detach().numpy(), b, rtol=1e-10, atol=1e-12)


def _adam_by_hand(steps, lr, b1, b2, eps, wd, decoupled, rectified=False):
    """Kingma & Ba 2015 Alg. 1 (L2 decay added to the gradient), Loshchilov & Hutter 2019 Alg. 2
    (decoupled: w *= 1 - lr * wd), Liu et al. 2020 Alg. 2 (RAdam, rho_t > 5 rectified, else
    un-adapted momentum). Decay only on the kernel w. eps as torch places it: after sqrt(v)."""
    params = list(_start())
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, steps + 1):
        grads = list(_Quadratic.grads(*params))
        for i in range(2):
            decay = wd if i == 0 else 0.0
            g = grads[i]
            if decoupled:
                params[i] = params[i] * (1 - lr * decay)
            else:
                g = g + decay * params[i]
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat = m[i] / (1 - b1**t)
            if not rectified:
                v_hat = v[i] / (1 - b2**t)
                params[i] = params[i] - lr * m_hat / (np.sqrt(v_hat) + eps)
                continue
            rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
            if rho_t > 5:
                r = math.sqrt(
                    (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
                )
                adaptive = math.sqrt(1 - b2**t) / (np.sqrt(v[i]) + eps)
                params[i] = params[i] - lr * m_hat * r * adaptive
            else:
                params[i] = params[i] - lr * m_hat
    return params


@pytest.mark.parametrize(
    ("name", "options", "decoupled", "rectified"),
    [
        ("adam", {}, False, False),
        ("adam", {"lr": 0.05, "beta1": 0.8, "beta2": 0.99, "weight_decay": 0.1}, False, False),
        ("adamw", {}, True, False),
        ("adamw", {"lr": 0.02, "weight_decay": 0.5, "eps": 1e-6}, True, False),
        ("radam", {"lr": 0.01, "weight_decay": 0.1}, True, True),  # decoupled by default
        ("radam", {"lr": 0.01, "weight_decay": 0.1, "decoupled_weight_decay": False}, False, True),
    ],
)
def test_adam_family_matches_the_papers_update_rules(name, options, decoupled, rectified):
    steps = 10  # RAdam: rho_t > 5 from t = 6 on with beta2 0.999, so both branches run
    model = _Quadratic()
    opt = OPTIMIZERS.build(name, model, **options)
    _train(model, opt, steps)
    resolved = OPTIMIZERS.get(name).resolve(options)
    o = {k: resolved[k] for k in ("lr", "beta1", "beta2", "eps")}
    wd = resolved["weight_decay"]
    w, b = _adam_by_hand(
        steps, o["lr"], o["beta1"], o["beta2"], o["eps"], wd, decoupled, rectified=rectified
    )
    _assert_close(model, w, b)


def test_adam_family_rejects_a_beta_of_one():
    for name in ("adam", "adamw", "radam", "ranger"):
        with pytest.raises(ValueError, match="beta2 must be in"):
            OPTIMIZERS.build(name, _Quadratic(), beta2=1.0)


def _sgd_lookahead_by_hand(steps, lr, mu, k, alpha):
    """Zhang et al. 2019 Alg. 1 over heavy-ball SGD: slow weights from the start, momentum kept."""
    fast = list(_start())
    slow = [p.copy() for p in fast]
    vel = [np.zeros_like(p) for p in fast]
    for t in range(1, steps + 1):
        grads = _Quadratic.grads(*fast)
        for i in range(2):
            vel[i] = mu * vel[i] + grads[i]
            fast[i] = fast[i] - lr * vel[i]
        if t % k == 0:
            for i in range(2):
                slow[i] = slow[i] + alpha * (fast[i] - slow[i])
                fast[i] = slow[i].copy()
    return fast


def test_lookahead_matches_the_algorithm_by_hand():
    for steps in (2, 3, 7):  # before, at and after synchronisations
        model = _Quadratic()
        base = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        opt = Lookahead(base, k=3, alpha=0.4)
        _train(model, opt, steps)
        _assert_close(model, *_sgd_lookahead_by_hand(steps, 0.1, 0.9, 3, 0.4))


class _PublishedRanger(torch.optim.Optimizer):
    """lessw2020/Ranger-Deep-Learning-Optimizer `ranger/ranger.py` (version 20.4.11, the package's
    `Ranger`), its `step` transcribed line by line; only the deprecated `add_(scalar, tensor)`
    calls are written `add_(tensor, alpha=scalar)`. `use_gc` gates the centralisation as
    `ranger2020.py` does (`ranger.py` reads only `gc_conv_only` and centralises always)."""

    def __init__(self, params, lr, alpha, k, betas, eps, weight_decay, use_gc):
        defaults = dict(lr=lr, alpha=alpha, k=k, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, defaults)
        self.N_sma_threshhold = 5
        self.alpha = alpha
        self.radam_buffer: list[list[Any]] = [[None, None, None] for ind in range(10)]
        self.use_gc = use_gc
        self.gc_gradient_threshold = 1  # gc_conv_only=False: conv and fc layers

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.data.float()
                p_data_fp32 = p.data.float()
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p_data_fp32)
                    state["exp_avg_sq"] = torch.zeros_like(p_data_fp32)
                    state["slow_buffer"] = torch.empty_like(p.data)
                    state["slow_buffer"].copy_(p.data)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                beta1, beta2 = group["betas"]
                if self.use_gc and grad.dim() > self.gc_gradient_threshold:
                    grad.add_(-grad.mean(dim=tuple(range(1, grad.dim())), keepdim=True))
                state["step"] += 1
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                buffered = self.radam_buffer[int(state["step"] % 10)]
                if state["step"] == buffered[0]:
                    N_sma, step_size = buffered[1], buffered[2]
                else:
                    buffered[0] = state["step"]
                    beta2_t = beta2 ** state["step"]
                    N_sma_max = 2 / (1 - beta2) - 1
                    N_sma = N_sma_max - 2 * state["step"] * beta2_t / (1 - beta2_t)
                    buffered[1] = N_sma
                    if N_sma > self.N_sma_threshhold:
                        step_size = math.sqrt(
                            (1 - beta2_t)
                            * (N_sma - 4)
                            / (N_sma_max - 4)
                            * (N_sma - 2)
                            / N_sma
                            * N_sma_max
                            / (N_sma_max - 2)
                        ) / (1 - beta1 ** state["step"])
                    else:
                        step_size = 1.0 / (1 - beta1 ** state["step"])
                    buffered[2] = step_size
                if group["weight_decay"] != 0:
                    p_data_fp32.add_(p_data_fp32, alpha=-group["weight_decay"] * group["lr"])
                if N_sma > self.N_sma_threshhold:
                    denom = exp_avg_sq.sqrt().add_(group["eps"])
                    p_data_fp32.addcdiv_(exp_avg, denom, value=-step_size * group["lr"])
                else:
                    p_data_fp32.add_(exp_avg, alpha=-step_size * group["lr"])
                p.data.copy_(p_data_fp32)
                if state["step"] % group["k"] == 0:
                    slow_p = state["slow_buffer"]
                    slow_p.add_(p.data - slow_p, alpha=self.alpha)
                    p.data.copy_(slow_p)


class _ConvNet(nn.Module):
    """A conv kernel (4-d, centralised), its bias, a linear kernel (2-d, centralised), its bias."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.conv(x)).flatten(1))


@pytest.mark.parametrize("gc", [True, False])
@pytest.mark.parametrize("groups", ["catalog", "every_parameter_decayed"])
def test_ranger_matches_the_published_ranger_step_for_step(gc, groups):
    lr, wd, k, alpha, betas, eps = 0.01, 0.1, 6, 0.5, (0.95, 0.999), 1e-5
    torch.manual_seed(0)
    model = _ConvNet()
    ref, initial = copy.deepcopy(model), copy.deepcopy(model)
    if groups == "catalog":  # kernels decayed, biases not (param_groups)
        opt = OPTIMIZERS.build("ranger", model, lr=lr, weight_decay=wd, gc=gc)
        assert (opt.k, opt.alpha, opt.param_groups[0]["betas"]) == (k, alpha, betas)
        ref_groups = param_groups(ref, wd)
    else:  # as the published code is usually given model.parameters(): the biases decayed too
        base = (CentralizedRAdam if gc else torch.optim.RAdam)(
            [{"params": list(model.parameters()), "weight_decay": wd}],
            lr=lr,
            betas=betas,
            eps=eps,
            decoupled_weight_decay=True,
        )
        opt = Lookahead(base, k=k, alpha=alpha)
        ref_groups = [{"params": list(ref.parameters()), "weight_decay": wd}]
    ref_opt = _PublishedRanger(ref_groups, lr, alpha, k, betas, eps, wd, use_gc=gc)
    g = torch.Generator().manual_seed(1)
    for step in range(1, 15):  # un-rectified to t = 5, rectified after; lookahead at 6 and 12
        x, y = torch.randn(8, 3, 5, 5, generator=g), torch.randint(0, 5, (8,), generator=g)
        for net, optimizer in ((model, opt), (ref, ref_opt)):
            optimizer.zero_grad()
            F.cross_entropy(net(x), y).backward()
            optimizer.step()
        for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=f"{name} at step {step}")
    assert not torch.allclose(model.conv.weight, initial.conv.weight)  # it did train


def test_gradient_centralisation_leaves_kernels_mean_free_per_output():
    model = _ConvNet()
    before = {name: torch.randn_like(p) + 3.0 for name, p in model.named_parameters()}
    for name, p in model.named_parameters():
        p.grad = before[name].clone()
    centralize_gradients(list(model.parameters()))
    after = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert after["conv.weight"].mean(dim=(1, 2, 3)).abs().max() < 1e-6
    assert after["fc.weight"].mean(dim=1).abs().max() < 1e-6
    shift = before["fc.weight"] - after["fc.weight"]  # one constant per output unit
    torch.testing.assert_close(shift, shift[:, :1].expand_as(shift))
    assert torch.equal(after["conv.bias"], before["conv.bias"])
    assert torch.equal(after["fc.bias"], before["fc.bias"])


def test_lookahead_validates_k_and_alpha():
    base = torch.optim.SGD(_Quadratic().parameters(), lr=0.1)
    for k, alpha in ((0, 0.5), (2.5, 0.5), (3, 0.0), (3, 1.5)):
        with pytest.raises(ValueError):
            Lookahead(base, k=k, alpha=alpha)  # type: ignore[arg-type]


def _sam_step_by_hand(rho, lr, adaptive):
    """One SAM/ASAM step over plain SGD (davda54/sam): the perturbation and the new weights."""
    w = list(_start())
    g = _Quadratic.grads(*w)
    t = [np.abs(p) if adaptive else np.ones_like(p) for p in w]
    norm = math.sqrt(sum(float(((ti * gi) ** 2).sum()) for ti, gi in zip(t, g, strict=True)))
    e = [ti**2 * gi * rho / (norm + 1e-12) for ti, gi in zip(t, g, strict=True)]
    perturbed = [p + ei for p, ei in zip(w, e, strict=True)]
    g2 = _Quadratic.grads(*perturbed)
    return perturbed, [p - lr * gi for p, gi in zip(w, g2, strict=True)]


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_perturbation_and_step_match_a_hand_computation(adaptive):
    rho, lr = 0.3, 0.1
    perturbed, updated = _sam_step_by_hand(rho, lr, adaptive)

    # manual two-step API
    model = _Quadratic()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=lr), rho=rho, adaptive=adaptive)
    model.loss().backward()
    opt.first_step(zero_grad=True)
    _assert_close(model, *perturbed)
    model.loss().backward()
    opt.second_step(zero_grad=True)
    _assert_close(model, *updated)

    # step(closure): the same update, and the closure's loss is the perturbed loss
    model2 = _Quadratic()
    opt2 = SAM(torch.optim.SGD(model2.parameters(), lr=lr), rho=rho, adaptive=adaptive)
    model2.loss().backward()

    def closure() -> torch.Tensor:
        loss = model2.loss()
        loss.backward()
        return loss

    loss = opt2.step(closure)
    _assert_close(model2, *updated)
    w, b = perturbed
    expected = (
        0.5 * (_Quadratic.A * w**2).sum() + (_Quadratic.C * w).sum() + 0.5 * ((b - 1) ** 2).sum()
    )
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_sam_norm_is_over_all_parameters_and_asam_scales_with_w():
    """rho * g / ||g||: the whole perturbation has length rho; ASAM's ||e / |w| || = rho."""
    rho = 0.7
    for adaptive in (False, True):
        model = _Quadratic()
        before = [p.detach().clone() for p in model.parameters()]
        opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=rho, adaptive=adaptive)
        model.loss().backward()
        opt.first_step()
        e = [p.detach() - q for p, q in zip(model.parameters(), before, strict=True)]
        scaled = [ei / q.abs() if adaptive else ei for ei, q in zip(e, before, strict=True)]
        assert math.sqrt(sum(float((s**2).sum()) for s in scaled)) == pytest.approx(rho, rel=1e-9)
        opt.second_step()


def test_sam_restores_the_weights_exactly_before_the_base_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    before = copy.deepcopy(model.state_dict())
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.0), rho=0.5, adaptive=True)
    x = torch.randn(4, 5)
    model(x).square().sum().backward()
    opt.first_step(zero_grad=True)
    first = model[0]
    assert isinstance(first, nn.Linear)
    assert not torch.equal(first.weight, before["0.weight"])
    model(x).square().sum().backward()
    opt.second_step()  # lr 0: the base step changes nothing, so w must be back bit-exactly
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_sam_misuse_is_an_error_not_a_silent_step():
    model = _Quadratic()
    opt = SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.05, adaptive=False)
    with pytest.raises(RuntimeError, match="gradients"):
        opt.first_step()
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    with pytest.raises(RuntimeError, match="without first_step"):
        opt.second_step()
    model.loss().backward()
    before = [p.detach().clone() for p in model.parameters()]

    def failing() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        opt.step(failing)
    for p, q in zip(model.parameters(), before, strict=True):  # perturbation undone
        assert torch.equal(p, q)
    with pytest.raises(ValueError):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), rho=0.0, adaptive=False)


def test_sam_shares_param_groups_with_the_base_so_schedules_drive_it():
    model = _Quadratic()
    opt = SAM_VARIANTS.build("asam", OPTIMIZERS.build("sgd", model, lr=0.1))
    assert opt.param_groups is opt.base.param_groups and opt.state is opt.base.state
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))

    def closure() -> torch.Tensor:
        loss = model.loss()
        loss.backward()
        return loss

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "lr_scheduler.step() before optimizer.step()"
        for step in range(3):
            assert opt.base.param_groups[0]["lr"] == pytest.approx(0.1 / (step + 1))
            opt.zero_grad()
            model.loss().backward()
            opt.step(closure)
            sched.step()


def test_sam_variants_and_needs_closure():
    model = _Quadratic()
    sam = SAM_VARIANTS.build("sam", OPTIMIZERS.build("sgd", model))
    asam = SAM_VARIANTS.build("asam", OPTIMIZERS.build("ranger", model))
    assert (sam.rho, sam.adaptive) == (0.05, False) and (asam.rho, asam.adaptive) == (2.0, True)
    assert needs_closure(sam) and needs_closure(asam)
    assert not needs_closure(OPTIMIZERS.build("sgd", model))
    assert not needs_closure(OPTIMIZERS.build("ranger", model))


class _ConvBN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.bn_cma = nn.BatchNorm2d(4, momentum=None)  # cumulative average: uses the counter
        self.fc = nn.Linear(4, 6)
        self.bn1d = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn_cma(self.bn(self.conv(x))).relu().mean(dim=(2, 3))
        return self.head(self.bn1d(self.fc(x)).relu())


def _bn_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


def test_frozen_bn_stats_leaves_running_statistics_untouched():
    torch.manual_seed(0)
    model = _ConvBN().train()
    x = torch.randn(8, 3, 6, 6)
    model(x)  # statistics that are not the initial ones
    reference = copy.deepcopy(model)
    before = _bn_buffers(model)
    assert {k.rsplit(".", 1)[1] for k in before} == {
        "running_mean",
        "running_var",
        "num_batches_tracked",
    }
    with frozen_bn_stats(model):
        out = model(x * 2 + 1)
        out.square().sum().backward()
    after = _bn_buffers(model)
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    # the output is the ordinary training-mode output (batch statistics)
    assert torch.equal(out, reference(x * 2 + 1))
    # and afterwards the statistics are tracked again
    model(x)
    assert model.bn.num_batches_tracked is not None and model.bn.running_mean is not None
    assert int(model.bn.num_batches_tracked) == int(before["bn.num_batches_tracked"]) + 1
    assert not torch.equal(model.bn.running_mean, before["bn.running_mean"])


def test_frozen_bn_stats_leaves_eval_mode_layers_alone():
    torch.manual_seed(0)
    model = _ConvBN().train()
    x = torch.randn(8, 3, 6, 6)
    model(x)
    model.bn.eval()  # e.g. a frozen layer while fine-tuning: normalises with running stats
    reference = copy.deepcopy(model)
    with frozen_bn_stats(model):
        out = model(x)
    assert torch.equal(out, reference(x))
    assert model.bn.track_running_stats and model.bn1d.track_running_stats


def _resume_setup(kind: str, seed: int) -> tuple[_ConvBN, Any, Any]:
    torch.manual_seed(seed)
    model = _ConvBN()
    if kind == "ranger":
        opt = OPTIMIZERS.build("ranger", model, k=3, lr=0.01)
    elif kind == "adamw":
        opt = OPTIMIZERS.build("adamw", model, lr=0.01)
    elif kind == "sgd+asam":
        opt = SAM_VARIANTS.build("asam", OPTIMIZERS.build("sgd", model, lr=0.05), rho=0.5)
    elif kind == "ranger+sam":
        opt = SAM_VARIANTS.build("sam", OPTIMIZERS.build("ranger", model, k=3, lr=0.01))
    else:
        raise AssertionError(kind)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.9**s)
    return model, opt, sched


def _resume_steps(model, opt, sched, batches):
    model.train()
    for x, y in batches:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        if needs_closure(opt):

            def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
                with frozen_bn_stats(model):
                    loss = F.cross_entropy(model(x), y)
                loss.backward()
                return loss

            opt.step(closure)
        else:
            opt.step()
        sched.step()


@pytest.mark.parametrize("kind", ["ranger", "adamw", "sgd+asam", "ranger+sam"])
def test_exact_resume_through_torch_save_and_weights_only_load(kind):
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(6, 3, 5, 5, generator=g), torch.randint(0, 5, (6,), generator=g))
        for _ in range(9)
    ]
    n = 4  # with k = 3: one synchronisation before the checkpoint, two after, mid-cycle save

    straight = _resume_setup(kind, seed=0)
    _resume_steps(*straight, batches)

    first = _resume_setup(kind, seed=0)
    _resume_steps(*first, batches[:n])
    model, opt, sched = first
    if isinstance(opt.base if isinstance(opt, SAM) else opt, Lookahead):
        la = opt.base if isinstance(opt, SAM) else opt
        assert la.state_dict()["lookahead"]["steps"] == n
        assert len(la.state_dict()["lookahead"]["slow"]) == len(list(model.parameters()))
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buffer
    )
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed = _resume_setup(kind, seed=123)  # different initial weights: all must come from disk
    resumed[0].load_state_dict(saved["model"])
    resumed[1].load_state_dict(saved["opt"])
    resumed[2].load_state_dict(saved["sched"])
    _resume_steps(*resumed, batches[n:])

    ref_state = straight[0].state_dict()
    for k, v in resumed[0].state_dict().items():
        assert torch.equal(v, ref_state[k]), k


def test_lookahead_state_dict_is_checked_on_load():
    model = _Quadratic()
    opt = OPTIMIZERS.build("ranger", model)
    _train(model, opt, 2)
    with pytest.raises(ValueError, match="not a Lookahead state dict"):
        opt.load_state_dict(opt.base.state_dict())
    state = opt.state_dict()
    state["lookahead"]["slow"] = {0: torch.zeros(5, 5)}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(state)


ANNOTATIONS = {"int", "float", "bool", "str", "list[float] | None"}  # the list: focal's alpha


@pytest.mark.parametrize(
    "catalog", [OPTIMIZERS, LOSSES, SAM_VARIANTS], ids=["optimizers", "losses", "sam_variants"]
)
def test_every_number_has_a_limit_and_every_string_its_choices(catalog: Catalog):
    for spec in catalog.entries():
        for p in spec.params:
            assert p.type in ANNOTATIONS, (spec.name, p.name, p.type)
            if p.type in ("int", "float"):
                assert p.limit is not None, f"{spec.name}.{p.name} has no limit"
                lo, hi, open_lo = p.limit
                assert lo is None or (p.default > lo if open_lo else p.default >= lo), p.name
                assert hi is None or p.default <= hi, p.name
            if p.type == "str":
                assert p.choices is not None and p.default in p.choices, f"{spec.name}.{p.name}"


def test_every_entry_builds_with_its_defaults_and_works():
    x = torch.randn(4, 3, 5, 5)
    y = torch.tensor([0, 1, 2, 1])
    for name in OPTIMIZERS.names():
        torch.manual_seed(0)
        model = _ConvBN()
        opt = OPTIMIZERS.build(name, model)
        assert isinstance(opt, torch.optim.Optimizer)
        decays = sorted(g["weight_decay"] for g in opt.param_groups)
        assert decays[0] == 0.0 and decays[1] > 0, name  # no decay on biases/norm params
        before = [p.detach().clone() for p in model.parameters()]
        F.cross_entropy(model(x), y).backward()
        opt.step()
        assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
        for variant in SAM_VARIANTS.names():
            assert needs_closure(SAM_VARIANTS.build(variant, opt))
    logits = torch.randn(4, 5, requires_grad=True)
    soft = F.softmax(torch.randn(4, 5), 1)
    for name in LOSSES.names():
        loss_fn = LOSSES.build(name, 5, [10, 20, 30, 40, 50])
        for target in (torch.tensor([0, 4, 2, 2]), soft):
            loss = loss_fn(logits, target)
            assert loss.shape == () and torch.isfinite(loss), name
            loss.backward()


def test_config_applies_the_new_limits():
    ok = parse_config({"loss": {"name": "ohem", "keep_ratio": 1}, "optim": {"name": "ranger"}})
    assert ok.loss.params["keep_ratio"] == 1 and ok.optim.params["k"] == 6
    with pytest.raises(ConfigError, match=r"loss\.keep_ratio = 0\.0 is out of range \(0, 1\]"):
        parse_config({"loss": {"name": "ohem", "keep_ratio": 0}})
    with pytest.raises(ConfigError, match=r"optim\.alpha = 0\.0 is out of range \(0, 1\]"):
        parse_config({"optim": {"name": "ranger", "alpha": 0}})
    with pytest.raises(ConfigError, match=r"loss\.base"):
        parse_config({"loss": {"name": "class_balanced", "base": "ohem"}})


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(2, 3)


def test_weight_decay_only_on_kernels():
    model = _Tiny()
    decay, no_decay = param_groups(model, 5e-4)
    assert {id(p) for p in decay["params"]} == {id(model.conv.weight), id(model.fc.weight)}
    assert {id(p) for p in no_decay["params"]} == {
        id(model.conv.bias),
        id(model.bn.weight),
        id(model.bn.bias),
        id(model.fc.bias),
    }
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0


def test_sgd_step_matches_hand_computed_update():
    """Two steps of heavy-ball momentum with decoupled-from-bias weight decay, by hand."""
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.fill_(0.5)
    lr, mu, wd = 0.1, 0.9, 0.01
    opt = OPTIMIZERS.build("sgd", model, lr=lr, momentum=mu, weight_decay=wd)
    x = torch.tensor([[1.0, 1.0]])
    w, b = np.array([1.0, -2.0]), 0.5
    vw, vb = np.zeros(2), 0.0
    for _ in range(2):
        opt.zero_grad()
        model(x).sum().backward()
        gw = np.array([1.0, 1.0]) + wd * w  # d(out)/dw = x, plus L2 on the kernel
        gb = 1.0  # no decay on the bias
        vw, vb = mu * vw + gw, mu * vb + gb
        w, b = w - lr * vw, b - lr * vb
        opt.step()
    assert model.weight.detach().numpy().ravel() == pytest.approx(w, rel=1e-6)
    assert model.bias.item() == pytest.approx(b, rel=1e-6)


def test_nesterov_matches_hand_computed_update():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    opt = OPTIMIZERS.build("sgd", model, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)
    w, v = 1.0, 0.0
    for _ in range(3):
        opt.zero_grad()
        (model.weight**2).sum().backward()
        g = 2 * w
        v = 0.9 * v + g
        w = w - 0.1 * (g + 0.9 * v)
        opt.step()
    assert model.weight.item() == pytest.approx(w, rel=1e-6)


def test_vit_position_embedding_and_class_token_get_no_weight_decay():
    """As timm's param_groups_weight_decay with VisionTransformer.no_weight_decay()."""
    from engine.catalog import MODELS

    model = MODELS.build("vit", 10, dim=32, depth=1, heads=2, patch_size=8)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    exempt = {names[id(p)] for p in no_decay["params"]}
    assert {"pos_embed", "cls_token"} <= exempt
    assert all(p.ndim >= 2 for p in decay["params"])
    assert "patch_embed.weight" not in exempt and "head.weight" not in exempt
    conv = _ConvBN()  # a model without no_weight_decay(): only ndim <= 1 is exempt
    _, plain = param_groups(conv, 0.05)
    assert all(p.ndim <= 1 for p in plain["params"])
