"""What the benchmarks share: the two augmentation recipes and the plain hand-written step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from engine.optim import init_momentum, param_groups

PRESET_AUGMENT: list[dict[str, Any]] = [  # the resnet18 preset's
    {"name": "random_crop", "padding": 4},
    {"name": "hflip"},
    {"name": "rotation", "degrees": 15},
]
FULL_AUGMENT = [*PRESET_AUGMENT, {"name": "autoaugment"}, {"name": "random_erasing"}]  # write-up
AUGMENTS = {"preset": PRESET_AUGMENT, "full": FULL_AUGMENT}


def plain_step(
    net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool
) -> Callable[[], None]:
    """One training step written by hand, not through the Trainer: forward (bf16 autocast when
    `amp`), cross-entropy, backward, fused SGD (momentum 0.9, weight decay 5e-4 on kernels)."""
    opt = torch.optim.SGD(param_groups(net, 5e-4), lr=0.1, momentum=0.9, fused=True)
    init_momentum(opt)

    def step() -> None:
        if amp:
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                loss = F.cross_entropy(net(x).float(), y)
        else:
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step
