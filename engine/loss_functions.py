"""Loss modules behind the builders in `engine.losses`.

Every loss takes `logits` [B, C] and a `target` that is either int64 class indices [B] or soft
targets [B, C] (floating point, rows summing to 1, e.g. from MixUp/CutMix), and returns the mean
over the batch. Label smoothing turns a target distribution q into q * (1 - eps) + eps / C, the same
for hard and soft targets (and the same as torch's `F.cross_entropy`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def target_distribution(
    target: Tensor, num_classes: int, label_smoothing: float, dtype: torch.dtype
) -> Tensor:
    """The (smoothed) target distribution [B, C] of hard or soft targets, in `dtype`."""
    q = target if target.is_floating_point() else F.one_hot(target, num_classes)
    q = q.to(dtype)
    if label_smoothing:
        q = q * (1.0 - label_smoothing) + label_smoothing / num_classes
    return q


def _check(logits: Tensor, target: Tensor) -> None:
    if logits.ndim != 2:
        raise ValueError(f"logits must be [batch, classes], got shape {tuple(logits.shape)}")
    if target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"soft targets must have the logits' shape {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
    elif target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"class-index targets must be [batch] = [{logits.shape[0]}], got {tuple(target.shape)}"
        )


def focal_terms(logp: Tensor, gamma: float) -> Tensor:
    """-(1 - p_c)^gamma * log p_c for every class, [B, C] (gamma = 0: -log p_c)."""
    if gamma == 0:
        return -logp
    # 1 - p computed as -expm1(log p) is accurate for small p; the floor keeps the gradient of
    # x^gamma (gamma < 1) finite where a class is predicted with probability 1 in floating point.
    one_minus_p = (-torch.expm1(logp)).clamp_min(1e-30)
    return -one_minus_p.pow(gamma) * logp


class SoftTargetLoss(nn.Module):
    """Per-class loss terms l_c(logits) [B, C], weighted by the target distribution.

    per-sample loss = sum_c w_c * q_c * l_c, w_c optional class weights; `reduce` averages them.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        label_smoothing: float = 0.0,
        gamma: float = 0.0,
        class_weights: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.label_smoothing = float(label_smoothing)
        self.gamma = float(gamma)
        self.class_weights: Tensor | None
        self.register_buffer("class_weights", class_weights)
        self._weights_cache: Tensor | None = None  # class_weights on the logits' device/dtype

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}, gamma={self.gamma}"

    def per_sample(self, logits: Tensor, target: Tensor) -> Tensor:
        _check(logits, target)
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, logits have {logits.shape[1]}")
        logp = F.log_softmax(logits, dim=1)
        terms = focal_terms(logp, self.gamma)
        q = target_distribution(target, self.num_classes, self.label_smoothing, logp.dtype)
        if self.class_weights is not None:
            w = self._weights_cache
            if w is None or w.device != logp.device or w.dtype != logp.dtype:
                w = self._weights_cache = self.class_weights.to(logp.device, logp.dtype)
            q = q * w
        return (q * terms).sum(dim=1)

    def reduce(self, losses: Tensor) -> Tensor:
        return losses.mean()

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return self.reduce(self.per_sample(logits, target))


class CrossEntropy(SoftTargetLoss):
    """Cross-entropy; hard targets go through torch's fused `F.cross_entropy`."""

    def __init__(self, num_classes: int, *, label_smoothing: float = 0.0) -> None:
        super().__init__(num_classes, label_smoothing=label_smoothing)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        if target.is_floating_point():
            return super().forward(logits, target)
        _check(logits, target)
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)


class OHEM(SoftTargetLoss):
    """Online hard example mining: the mean of the ceil(keep_ratio * B) largest sample losses."""

    def __init__(
        self, num_classes: int, *, keep_ratio: float = 0.7, label_smoothing: float = 0.0
    ) -> None:
        if not 0.0 < keep_ratio <= 1.0:
            raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio!r}")
        super().__init__(num_classes, label_smoothing=label_smoothing)
        self.keep_ratio = float(keep_ratio)

    def extra_repr(self) -> str:
        return f"keep_ratio={self.keep_ratio}, " + super().extra_repr()

    def kept(self, batch: int) -> int:
        # the small epsilon keeps e.g. 0.7 * 10 = 7.000000000000001 from becoming 8
        return max(1, min(batch, math.ceil(self.keep_ratio * batch - 1e-9)))

    def reduce(self, losses: Tensor) -> Tensor:
        return losses.topk(self.kept(losses.shape[0]), sorted=False).values.mean()


def effective_number_weights(class_counts: list[int], beta: float) -> list[float]:
    """Cui et al. 2019: w_c = (1 - beta) / (1 - beta^n_c), normalised to sum to C.

    beta = 0 gives equal weights; beta = 1 is the limit 1 / n_c (inverse frequency).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta!r}")
    empty = [c for c, n in enumerate(class_counts) if n <= 0]
    if empty:
        raise ValueError(
            f"class-balanced weights need at least one training image per class; "
            f"class {empty[0]} has none ({len(empty)} empty classes)"
        )
    if beta == 1.0:
        raw = [1.0 / n for n in class_counts]
    else:
        # -expm1(n log beta) = 1 - beta^n, accurate when beta is close to 1
        raw = [
            (1.0 - beta) / -math.expm1(n * math.log(beta)) if beta > 0 else 1.0
            for n in class_counts
        ]
    total = sum(raw)
    return [w * len(raw) / total for w in raw]


def jensen_shannon(logits: tuple[Tensor, ...] | list[Tensor]) -> Tensor:
    """AugMix's consistency loss: the Jensen-Shannon divergence of the views' predictions,
    (1/k) sum_i KL(p_i || M) with M the mean of the p_i, averaged over the batch. As the published
    code, M is clamped to [1e-7, 1] before its log (the p_i carry the gradient through both)."""
    probs = [F.softmax(x, dim=1) for x in logits]
    log_mixture = torch.clamp(torch.stack(probs).mean(dim=0), 1e-7, 1.0).log()
    return sum(  # type: ignore[return-value]
        F.kl_div(log_mixture, p, reduction="batchmean") for p in probs
    ) / len(probs)
