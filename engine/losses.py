"""The losses: each takes (num_classes, class_counts) and returns `loss(logits, target)`.

`class_counts` is the number of training images per class (list of num_classes ints).
`target` is int64 class indices [B] or soft targets [B, C] (float, rows summing to 1, from
MixUp/CutMix); the mean over the batch is returned. Label smoothing, where offered, maps a target
distribution q to q * (1 - eps) + eps / C for both kinds of target.
Names, options, defaults and limits are `engine.catalog.losses`; the loss modules themselves
live in `engine.loss_functions`.
"""

from __future__ import annotations

import torch
from torch import nn

from engine.loss_functions import OHEM, CrossEntropy, SoftTargetLoss, effective_number_weights


def cross_entropy(
    num_classes: int, class_counts: list[int], *, label_smoothing: float
) -> nn.Module:

    return CrossEntropy(num_classes, label_smoothing=label_smoothing)


def focal(
    num_classes: int,
    class_counts: list[int],
    *,
    gamma: float,
    label_smoothing: float,
    alpha: list[float] | None,
) -> nn.Module:
    """alpha: optional per-class weights alpha_c (one per class, >= 0), the multi-class form of
    the paper's alpha-balancing: -sum_c alpha_c q_c (1-p_c)^gamma log p_c. The paper's binary
    alpha has no multi-class meaning on its own, so there is no scalar form."""

    weights = None
    if alpha is not None:
        if len(alpha) != num_classes:
            raise ValueError(f"alpha needs one weight per class ({num_classes}), got {len(alpha)}")
        if any(not a >= 0 for a in alpha):
            raise ValueError("alpha weights must be >= 0")
        weights = torch.tensor(alpha, dtype=torch.float64)
    return SoftTargetLoss(
        num_classes, gamma=gamma, label_smoothing=label_smoothing, class_weights=weights
    )


def class_balanced(
    num_classes: int,
    class_counts: list[int],
    *,
    beta: float,
    base: str,
    gamma: float,
    label_smoothing: float,
) -> nn.Module:
    """w_c = (1 - beta) / (1 - beta^n_c), normalised so that sum_c w_c = C; the loss of a sample
    is sum_c w_c q_c l_c (w_y * l_y for a hard target), averaged over the batch. beta = 0 is the
    unweighted loss, beta = 1 inverse-frequency weighting. `gamma` is used with base 'focal' only.
    """

    if base not in ("cross_entropy", "focal"):
        raise ValueError(f"class_balanced base must be 'cross_entropy' or 'focal', got {base!r}")
    if base == "cross_entropy" and gamma != 2.0:
        raise ValueError("class_balanced gamma only applies with base 'focal'")
    if len(class_counts) != num_classes:
        raise ValueError(f"class_counts has {len(class_counts)} entries for {num_classes} classes")
    weights = torch.tensor(effective_number_weights(class_counts, beta), dtype=torch.float64)
    return SoftTargetLoss(
        num_classes,
        gamma=gamma if base == "focal" else 0.0,
        label_smoothing=label_smoothing,
        class_weights=weights,
    )


def ohem(
    num_classes: int, class_counts: list[int], *, keep_ratio: float, label_smoothing: float
) -> nn.Module:

    return OHEM(num_classes, keep_ratio=keep_ratio, label_smoothing=label_smoothing)
