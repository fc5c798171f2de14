"""Base class for optimizers that wrap another one (Lookahead, SAM).

A wrapper *is* a `torch.optim.Optimizer` (LR schedulers insist on that) but owns no parameter
groups of its own: `param_groups` and `state` are the base optimizer's, so a scheduler that sets
`group["lr"]` on the wrapper drives the base, and `load_state_dict` on the base (which replaces its
group list) is seen through the wrapper at once.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer


class OptimizerWrapper(Optimizer):
    """Shares `param_groups`, `state` and `defaults` with `base`; subclasses define `step`."""

    def __init__(self, base: Optimizer) -> None:
        if not isinstance(base, Optimizer):
            raise TypeError(f"{type(base).__name__} is not a torch.optim.Optimizer")
        # Optimizer.__init__ would copy the groups into new dicts (and assign self.param_groups,
        # which here is the base's); __setstate__ sets up the hook tables and the step profiling
        # the same way torch does for an unpickled optimizer.
        self.base = base
        Optimizer.__setstate__(self, {"defaults": base.defaults})

    # -- shared with the base -------------------------------------------------------------------

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.base.param_groups

    @param_groups.setter
    def param_groups(self, groups: list[dict[str, Any]]) -> None:
        self.base.param_groups = groups

    @property
    def state(self) -> Any:
        return self.base.state

    @state.setter
    def state(self, state: Any) -> None:
        self.base.state = state

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.base.add_param_group(param_group)

    # -- copying ----------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _all_params(self) -> list[torch.Tensor]:
        """Every parameter in group order: the order `Optimizer.state_dict` numbers them in."""
        return [p for group in self.param_groups for p in group["params"]]
