"""Loss registry. Builders take (num_classes, class_counts) and return `loss(logits, target)`.

`class_counts` is the number of training images per class (list of num_classes ints).
`target` is int64 class indices [B] or soft targets [B, C] (float, rows summing to 1, from
MixUp/CutMix); the mean over the batch is returned. Label smoothing, where offered, maps a target
distribution q to q * (1 - eps) + eps / C for both kinds of target.
Every user option is keyword-only with a default and a plain annotation (the config layer reads
the signature); the implementations live in `engine.loss_functions`, imported inside the builders
so that this registry stays torch-free for the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.registry import Registry

if TYPE_CHECKING:
    from torch import nn

LOSSES: Registry[Any] = Registry("loss")


@LOSSES.register(
    "cross_entropy",
    "cross-entropy, optionally label-smoothed; soft targets for MixUp/CutMix",
    limits={"label_smoothing": "0..1"},
)
def cross_entropy(
    num_classes: int, class_counts: list[int], *, label_smoothing: float = 0.0
) -> nn.Module:
    from engine.loss_functions import CrossEntropy

    return CrossEntropy(num_classes, label_smoothing=label_smoothing)


@LOSSES.register(
    "focal",
    "multi-class focal loss -sum q_c (1-p_c)^gamma log p_c (Lin et al. 2017); gamma 0 = CE",
    limits={"gamma": ">= 0", "label_smoothing": "0..1"},
)
def focal(
    num_classes: int,
    class_counts: list[int],
    *,
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
    alpha: list[float] | None = None,
) -> nn.Module:
    """alpha: optional per-class weights alpha_c (one per class, >= 0), the multi-class form of
    the paper's alpha-balancing: -sum_c alpha_c q_c (1-p_c)^gamma log p_c. The paper's binary
    alpha has no multi-class meaning on its own, so there is no scalar form."""
    import torch

    from engine.loss_functions import SoftTargetLoss

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


@LOSSES.register(
    "class_balanced",
    "class-balanced CE or focal loss, weights from the effective number of samples (Cui 2019)",
    limits={"beta": "0..1", "gamma": ">= 0", "label_smoothing": "0..1"},
    choices={"base": ("cross_entropy", "focal")},
)
def class_balanced(
    num_classes: int,
    class_counts: list[int],
    *,
    beta: float = 0.9999,
    base: str = "cross_entropy",
    gamma: float = 2.0,
    label_smoothing: float = 0.0,
) -> nn.Module:
    """w_c = (1 - beta) / (1 - beta^n_c), normalised so that sum_c w_c = C; the loss of a sample
    is sum_c w_c q_c l_c (w_y * l_y for a hard target), averaged over the batch. beta = 0 is the
    unweighted loss, beta = 1 inverse-frequency weighting. `gamma` is used with base 'focal' only.
    """
    import torch

    from engine.loss_functions import SoftTargetLoss, effective_number_weights

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


@LOSSES.register(
    "ohem",
    "online hard example mining: CE averaged over the hardest keep_ratio of each batch",
    limits={"keep_ratio": "(0, 1]", "label_smoothing": "0..1"},
)
def ohem(
    num_classes: int,
    class_counts: list[int],
    *,
    keep_ratio: float = 0.7,
    label_smoothing: float = 0.0,
) -> nn.Module:
    from engine.loss_functions import OHEM

    return OHEM(num_classes, keep_ratio=keep_ratio, label_smoothing=label_smoothing)
