"""Lookahead (Zhang, Lucas, Hinton, Ba 2019): k fast steps of a base optimizer, then pull back.

The slow weights start at the weights seen by the first `step()`; after every k-th base step
`slow += alpha * (fast - slow)` and the fast weights are reset to the slow ones. The base
optimizer's own state (momentum, Adam moments) is kept across the synchronisation, as in the
reference implementations and Ranger.

`state_dict()` holds the base optimizer's state dict, the slow weights (tensors, numbered like
`Optimizer.state_dict` numbers parameters) and the step counter (an int), so a checkpoint saved
with `torch.save` and read with `torch.load(weights_only=True)` resumes bit-exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from engine.optim_wrapper import OptimizerWrapper


class Lookahead(OptimizerWrapper):
    def __init__(self, base: Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"lookahead k must be an integer >= 1, got {k!r}")
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"lookahead alpha must be in (0, 1], got {alpha!r}")
        super().__init__(base)
        self.k = k
        self.alpha = float(alpha)
        self.lookahead_steps = 0  # base steps taken so far
        self._slow: dict[torch.Tensor, torch.Tensor] = {}

    def __repr__(self) -> str:
        return f"Lookahead(k={self.k}, alpha={self.alpha}, base={self.base!r})"

    @torch.no_grad()
    def _init_slow(self) -> None:
        for p in self._all_params():
            if p not in self._slow:
                self._slow[p] = p.detach().clone()

    @torch.no_grad()
    def _synchronise(self) -> None:
        for p in self._all_params():
            slow = self._slow[p]
            slow.add_(p - slow, alpha=self.alpha)
            p.copy_(slow)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        self._init_slow()
        loss = self.base.step(closure) if closure is not None else self.base.step()
        self.lookahead_steps += 1
        if self.lookahead_steps % self.k == 0:
            self._synchronise()
        return loss

    def state_dict(self) -> dict[str, Any]:
        index = {p: i for i, p in enumerate(self._all_params())}
        return {
            "base": self.base.state_dict(),
            "lookahead": {
                "steps": self.lookahead_steps,
                "k": self.k,
                "alpha": self.alpha,
                "slow": {index[p]: s for p, s in self._slow.items() if p in index},
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"base", "lookahead"}:
            raise ValueError(
                "not a Lookahead state dict (expected keys 'base' and 'lookahead'; "
                f"got {sorted(state_dict)})"
            )
        own = state_dict["lookahead"]
        params = self._all_params()
        slow: dict[torch.Tensor, torch.Tensor] = {}
        for i, saved in own["slow"].items():
            if not 0 <= int(i) < len(params):
                raise ValueError(
                    f"Lookahead state dict has a slow weight for parameter {i}, "
                    f"this optimizer has {len(params)}"
                )
            p = params[int(i)]
            if saved.shape != p.shape:
                raise ValueError(
                    f"Lookahead slow weight {i} has shape {tuple(saved.shape)}, "
                    f"the parameter {tuple(p.shape)}"
                )
            slow[p] = saved
        self.base.load_state_dict(state_dict["base"])
        # k and alpha come from the constructor (the run's config); the phase within k is kept.
        self.lookahead_steps = int(own["steps"])
        with torch.no_grad():
            self._slow = {p: torch.empty_like(p).copy_(saved) for p, saved in slow.items()}
