"""The optimizers: each takes the model and returns a torch optimizer; SAM variants wrap one.

Weight decay is applied only to weights of dimension >= 2 (conv and linear kernels), never to
biases or normalisation parameters, for every optimizer (see `param_groups`).
Names, options, defaults and limits are `engine.catalog.optimizers`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn, optim
from torch.utils import _foreach_utils

from engine.lookahead import Lookahead
from engine.sam import SAM


def fast_step(model: nn.Module) -> dict[str, bool]:
    """`fused=True` (one kernel for the whole update, and a device-side skip of a non-finite
    step, see `skips_on_device`) where torch has fused kernels for the parameters' device (CUDA,
    the CPU, ...); elsewhere torch's default (foreach where supported)."""
    devices = {p.device.type for p in model.parameters()}
    supported = set(_foreach_utils._get_fused_kernels_supported_devices())  # looked up per call
    return {"fused": True} if devices <= supported else {}


def skips_on_device(optimizer: Any) -> bool:
    """Whether `optimizer.step()` honours a `found_inf` tensor attribute (set to 1: the update
    and the optimizer state are left untouched, decided on the device): torch's fused SGD, Adam
    and AdamW read it, as GradScaler uses them."""

    fused = getattr(optimizer, "defaults", {}).get("fused")
    return bool(fused) and type(optimizer) in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def init_momentum(optimizer: Any) -> None:
    """Zero momentum buffers for SGD before the first step. Fused SGD creates them with
    `empty_like` on its first step and fills them from the gradient; a first step skipped by
    `found_inf` would leave that garbage behind. From zeros, the first update is the same
    (buf = momentum * 0 + grad = grad, dampening 0)."""

    if type(optimizer) is not torch.optim.SGD:
        return
    for group in optimizer.param_groups:
        if group["momentum"] == 0:
            continue
        if group["dampening"] != 0:
            raise ValueError("SGD with dampening cannot start from zero momentum buffers")
        for p in group["params"]:
            state = optimizer.state[p]
            if state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: kernels with `weight_decay`; biases, norm parameters (ndim <= 1) and the
    parameters the model names in `no_weight_decay()` (a ViT's position embedding and class
    token, as timm exempts them) with 0."""
    exempt: set[str] = getattr(model, "no_weight_decay", lambda: set())()
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        named = name in exempt or any(name.endswith("." + n) for n in exempt)
        (decay if p.ndim >= 2 and not named else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def sgd(
    model: nn.Module, *, lr: float, momentum: float, nesterov: bool, weight_decay: float
) -> optim.Optimizer:

    if nesterov and momentum == 0:
        raise ValueError("nesterov needs momentum > 0")
    return torch.optim.SGD(
        param_groups(model, weight_decay),
        lr=lr,
        momentum=momentum,
        nesterov=nesterov,
        **fast_step(model),
    )


def _check_betas(name: str, beta1: float, beta2: float) -> tuple[float, float]:
    # the catalog's limits are inclusive at 1; a moment decay of exactly 1 never forgets
    for key, value in (("beta1", beta1), ("beta2", beta2)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name}: {key} must be in [0, 1), got {value!r}")
    return beta1, beta2


def adam(
    model: nn.Module,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> optim.Optimizer:
    """Weight decay defaults to the recipe's 5e-4 (the write-up swapped only the optimizer)."""

    betas = _check_betas("adam", beta1, beta2)
    return torch.optim.Adam(
        param_groups(model, weight_decay),
        lr=lr,
        betas=betas,
        eps=eps,
        amsgrad=amsgrad,
        **fast_step(model),
    )


def adamw(
    model: nn.Module,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
) -> optim.Optimizer:
    """Decoupled decay shrinks weights by lr * weight_decay per step: 1e-3 * 0.05 = 5e-5, the same
    per-step shrink as the recipe's SGD (0.1 * 5e-4); 0.05 is also the usual AdamW value for
    ViT/ConvNeXt-style training. (5e-4 would be 100x weaker than the SGD recipe's decay.)"""

    betas = _check_betas("adamw", beta1, beta2)
    return torch.optim.AdamW(
        param_groups(model, weight_decay),
        lr=lr,
        betas=betas,
        eps=eps,
        amsgrad=amsgrad,
        **fast_step(model),
    )


def radam(
    model: nn.Module,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    decoupled_weight_decay: bool,
) -> optim.Optimizer:
    """torch's RAdam, the update of the paper's Algorithm 2: rectified where rho_t > 5, an
    un-adapted momentum step (lr * m_hat) in the first steps before it. The reference code
    (LiyuanLucasLiu/RAdam) skips those first steps by default (`degenerated_to_sgd=False`); its
    decay is decoupled (w *= 1 - lr * weight_decay), the catalog's default here."""

    betas = _check_betas("radam", beta1, beta2)
    return torch.optim.RAdam(
        param_groups(model, weight_decay),
        lr=lr,
        betas=betas,
        eps=eps,
        decoupled_weight_decay=decoupled_weight_decay,
    )


@torch.no_grad()
def centralize_gradients(params: list[torch.Tensor]) -> None:
    """Gradient centralisation (Yong et al. 2020) as Ranger applies it: from the gradient of every
    parameter with more than one dimension (conv and linear kernels), subtract its mean over all
    dimensions but the first (one mean per output channel or unit)."""
    for p in params:
        if p.grad is not None and p.grad.dim() > 1:
            p.grad.sub_(p.grad.mean(dim=tuple(range(1, p.grad.dim())), keepdim=True))


class CentralizedRAdam(torch.optim.RAdam):
    """torch's RAdam stepping on centralised gradients (`centralize_gradients`, before the moments
    see them: Ranger's default `gc_loc=True`)."""

    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        centralize_gradients([p for group in self.param_groups for p in group["params"]])
        super().step()
        return loss


def ranger(
    model: nn.Module,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    gc: bool,
    k: int,
    alpha: float,
) -> optim.Optimizer:
    """Ranger (lessw2020/Ranger-Deep-Learning-Optimizer, `ranger.py`, the package's `Ranger`):
    RAdam with decoupled decay (w *= 1 - lr * weight_decay), rectified where rho_t > 5 and an
    un-adapted momentum step before, on centralised gradients (`gc`: conv and linear kernels, as
    `use_gc=True, gc_conv_only=False`; False is the 2019 Ranger), inside Lookahead. That is the
    published update exactly, except that biases and norm parameters get no decay here (see
    `param_groups`; the published code decays every parameter it is given). `ranger2020.py`
    differs: it adds the decay to the update, scaled by the step size (which mutates the first
    moment in the un-rectified steps)."""

    betas = _check_betas("ranger", beta1, beta2)
    radam_class = CentralizedRAdam if gc else torch.optim.RAdam
    base = radam_class(
        param_groups(model, weight_decay),
        lr=lr,
        betas=betas,
        eps=eps,
        decoupled_weight_decay=True,
    )
    return Lookahead(base, k=k, alpha=alpha)


# --------------------------------------------------------------------------- SAM

# Wrappers over whichever optimizer OPTIMIZERS built: SAM_VARIANTS.build(name, optimizer, **opts).


def sam(optimizer: optim.Optimizer, *, rho: float) -> optim.Optimizer:

    return SAM(optimizer, rho=rho, adaptive=False)


def asam(optimizer: optim.Optimizer, *, rho: float) -> optim.Optimizer:
    """rho 2.0: the write-up's setting and the davda54/sam example's for the adaptive variant."""

    return SAM(optimizer, rho=rho, adaptive=True)
