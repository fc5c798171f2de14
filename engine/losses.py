"""Loss registry. Builders take the number of classes and return `loss(logits, target)`.

`target` is int64 class indices [B]; the mean over the batch is returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.registry import Registry

if TYPE_CHECKING:
    from torch import nn

LOSSES: Registry[Any] = Registry("loss")


@LOSSES.register(
    "cross_entropy",
    "cross-entropy, optionally label-smoothed",
    limits={"label_smoothing": "0..1"},
)
def cross_entropy(num_classes: int, *, label_smoothing: float = 0.0) -> nn.Module:
    from torch import nn

    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
