"""Test-time augmentation (TTA): a model evaluated on several fixed views of every test image.

A view is (flip, dx, dy): the 32x32 window of the image zero-padded by 4 pixels on each side,
moved by (dx, dy) from the centre (output pixel (y, x) = input pixel (y + dy, x + dx), zero
outside), then mirrored left-right when `flip` (the training pipeline's order: random_crop, then
hflip). Names: `identity`, `hflip`, `shift:dx,dy`, `hflip+shift:dx,dy` with dx, dy in [-4, 4].

Views are canonicalised before anything runs, so `shift:0,0` is `identity` and a view asked for
twice costs one forward pass: the cost multiplier is the number of distinct views. The merged
prediction is the mean of the views' softmax probabilities.

View names and their parsing are `engine.tta_views`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from engine.data import ImageSet
from engine.errors import ConfigError
from engine.events import TTAEvaluated
from engine.tta_views import PAD, View, unique_views

# --------------------------------------------------------------------------- evaluation


def apply_view(images: torch.Tensor, view: View) -> torch.Tensor:
    """Images [B, C, H, W] (any dtype; uint8 before normalisation) seen through `view`."""

    out = images
    if (view.dx, view.dy) != (0, 0):
        h, w = images.shape[-2:]
        padded = F.pad(images, (PAD, PAD, PAD, PAD))
        out = padded[..., PAD + view.dy : PAD + view.dy + h, PAD + view.dx : PAD + view.dx + w]
    return out.flip(-1) if view.flip else out


@dataclass
class ViewScore:
    view: str
    top1: float
    top5: float


@dataclass
class TTAResult:
    views: list[ViewScore]  # the distinct views, in the order first asked for
    top1: float  # merged: mean of the views' softmax probabilities
    top5: float
    count: int  # test images
    cost: int  # forward passes per image relative to a plain evaluation (= distinct views)
    requested: int  # views asked for, duplicates included

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def event(self, checkpoint: str, epoch: int) -> TTAEvaluated:
        d = self.to_dict()
        return TTAEvaluated(split="test", checkpoint=checkpoint, epoch=epoch, **d)


def evaluate_tta(
    net: nn.Module,
    data: ImageSet,
    views: Sequence[str],
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    batch_size: int,
    amp: bool = False,
    after_view: Callable[[], None] | None = None,
) -> TTAResult:
    """Top-1/top-5 of `net` on each distinct view of `data`, and of their merged prediction.

    `normalize` maps uint8 images to the network's input (engine.device.Normalizer); views are
    taken on the uint8 images before it, like the training crop. `amp`: bf16 autocast, as the
    trainer evaluates on CUDA. `net` is put in eval mode and handed back in the mode it had.
    `after_view` is called after each forward pass (a batch seen through one view): the trainer's
    test pass stops there on a signal, by raising.
    """

    from engine import metrics

    unique = unique_views(views)
    if not unique:
        raise ConfigError("TTA needs at least one view")
    was_training = net.training
    net.eval()
    correct = torch.zeros(len(unique), 2, dtype=torch.long, device=device)
    merged = torch.zeros(2, dtype=torch.long, device=device)
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                images = data.images[start : start + batch_size].to(device, non_blocking=True)
                labels = data.labels[start : start + batch_size].to(device, non_blocking=True)
                prob_sum: torch.Tensor | None = None
                for i, view in enumerate(unique):
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = net(normalize(apply_view(images, view))).float()
                    correct[i] += metrics.topk_correct(logits, labels, (1, 5))
                    probs = logits.softmax(dim=1)
                    prob_sum = probs if prob_sum is None else prob_sum + probs
                    if after_view is not None:
                        after_view()
                assert prob_sum is not None
                merged += metrics.topk_correct(prob_sum / len(unique), labels, (1, 5))
    finally:
        net.train(was_training)
    n = max(len(data), 1)
    scores = [
        ViewScore(view.name, c1 / n, c5 / n)
        for view, (c1, c5) in zip(unique, correct.tolist(), strict=True)
    ]
    m1, m5 = merged.tolist()
    return TTAResult(scores, m1 / n, m5 / n, len(data), len(unique), len(views))
