"""Optimizer registry. Builders take the model and return a torch optimizer.

Weight decay is applied only to weights of dimension >= 2 (conv and linear kernels), never to
biases or normalisation parameters, for every optimizer (see `param_groups`).
Torch is imported inside the builders so that this registry stays torch-free for the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.registry import Registry

if TYPE_CHECKING:
    from torch import nn, optim

OPTIMIZERS: Registry[Any] = Registry("optimizer")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups: kernels with `weight_decay`, biases and norm parameters (ndim <= 1) with 0."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


@OPTIMIZERS.register(
    "sgd",
    "SGD with momentum (optionally Nesterov); no weight decay on biases and norm layers",
    limits={"lr": "> 0", "momentum": "0..1", "weight_decay": ">= 0"},
)
def sgd(
    model: nn.Module,
    *,
    lr: float = 0.1,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 5e-4,
) -> optim.Optimizer:
    import torch

    if nesterov and momentum == 0:
        raise ValueError("nesterov needs momentum > 0")
    return torch.optim.SGD(
        param_groups(model, weight_decay), lr=lr, momentum=momentum, nesterov=nesterov
    )
