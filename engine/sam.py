"""Sharpness-aware minimisation over any base optimizer.

SAM (Foret et al. 2021) and adaptive SAM (ASAM, Kwon et al. 2021), following the widely used
reference implementation github.com/davda54/sam:

    plain:    e_w = rho * g / ||g||
    adaptive: e_w = rho * w^2 * g / ||w * g||          (T_w = |w|, without the paper's eta)

with one norm over all parameters together (+1e-12 in the denominator). A step is

    1. gradients g at w (the caller's first forward/backward),
    2. `first_step()`: remember w, move to w + e_w,
    3. gradients at w + e_w (second forward/backward, BatchNorm statistics frozen),
    4. `second_step()`: restore w exactly, then `base.step()` with the gradients from 3.

`step(closure)` does 2-4, the closure being the second forward/backward. Parameter groups and
state are the base optimizer's (LR schedulers drive the base; `state_dict` is the base's, so a
SAM checkpoint is a plain checkpoint of the base optimizer).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer

from engine.optim_wrapper import OptimizerWrapper


class SAM(OptimizerWrapper):
    def __init__(self, base: Optimizer, rho: float = 0.05, adaptive: bool = False) -> None:
        if not rho > 0:
            raise ValueError(f"SAM rho must be > 0, got {rho!r}")
        super().__init__(base)
        self.rho = float(rho)
        self.adaptive = bool(adaptive)
        self._saved: dict[torch.Tensor, torch.Tensor] = {}  # weights before the perturbation

    def __repr__(self) -> str:
        name = "ASAM" if self.adaptive else "SAM"
        return f"{name}(rho={self.rho}, base={self.base!r})"

    def _with_grad(self) -> list[torch.Tensor]:
        return [p for p in self._all_params() if p.grad is not None]

    @torch.no_grad()
    def grad_norm(self) -> torch.Tensor:
        """||T_w g|| over all parameters (T_w = |w| when adaptive, else the identity)."""
        params = self._with_grad()
        if not params:
            raise RuntimeError(
                "SAM.first_step needs gradients: run the first forward and loss.backward() before"
            )
        device = params[0].device
        norms = []
        for p in params:
            g = p.grad
            assert g is not None
            norms.append((p.abs() * g if self.adaptive else g).norm(p=2).to(device))
        return torch.linalg.vector_norm(torch.stack(norms), ord=2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Move every parameter with a gradient to w + e_w (ascent to the local worst case)."""
        if self._saved:
            raise RuntimeError("SAM.first_step called twice without second_step in between")
        scale = self.rho / (self.grad_norm() + 1e-12)
        for p in self._with_grad():
            assert p.grad is not None
            e_w = p.grad * scale.to(p)
            if self.adaptive:
                e_w = e_w * p * p
            self._saved[p] = p.detach().clone()
            p.add_(e_w)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore the weights of `first_step` exactly and take the base optimizer's step."""
        if not self._saved:
            raise RuntimeError("SAM.second_step called without first_step")
        for p, w in self._saved.items():
            p.copy_(w)
        self._saved = {}
        self.base.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """first_step, then `closure()` (forward + backward at w + e_w), then second_step.

        Expects the gradients at w in `.grad` already (the caller's first backward). Returns what
        the closure returns: the loss at the perturbed weights.
        """
        if closure is None:
            raise RuntimeError(
                "SAM.step needs a closure that runs the second forward and backward pass"
            )
        self.first_step(zero_grad=True)
        try:
            with torch.enable_grad():
                loss = closure()
        except BaseException:
            self._restore()
            raise
        self.second_step()
        return loss

    @torch.no_grad()
    def _restore(self) -> None:
        for p, w in self._saved.items():
            p.copy_(w)
        self._saved = {}

    def state_dict(self) -> dict[str, Any]:
        if self._saved:
            raise RuntimeError("SAM state saved between first_step and second_step")
        return self.base.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved = {}
        self.base.load_state_dict(state_dict)


def needs_closure(optimizer: Optimizer) -> bool:
    """True when `optimizer.step` needs a closure with a second forward/backward pass (SAM)."""
    return isinstance(optimizer, SAM)


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Forward passes inside leave BatchNorm running mean/var and num_batches_tracked untouched.

    For SAM's second pass: the batch is the same, so its statistics must not be counted twice.
    BatchNorm layers in training mode still normalise with the batch statistics (so the output is
    the same as without this); it works by clearing `track_running_stats` for the duration, which
    makes torch pass no running buffers to the kernel. Layers in eval mode are left alone (they
    normalise with, and never update, their running statistics).
    """
    changed: list[nn.modules.batchnorm._BatchNorm] = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats:
            m.track_running_stats = False
            changed.append(m)
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True
