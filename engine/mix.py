"""Label-mixing augmentations on whole batches: MixUp, CutMix, and a per-sample switch of the two.

A mix works on (images, labels), after the per-image-style augmentations and before normalisation:

    images, targets = mix(images, labels, num_classes, g)

`images` uint8 [B, 3, H, W], `labels` int64 [B], `g` a torch.Generator (parameters are drawn on its
device, a CPU generator is the usual choice); returns uint8 images of the same shape and device and
soft targets float32 [B, num_classes] whose rows sum to 1, for a soft-target cross-entropy.

Every sample draws its own partner (a random permutation of the batch) and its own lambda
~ Beta(alpha, alpha) ("elementwise" mixing): the target of sample i is lam_i * onehot(y_i) +
(1 - lam_i) * onehot(y_partner(i)). CutMix pastes the partner's box of side sqrt(1 - lam) * H,
W centred at a uniform pixel and clipped at the border (Yun et al. 2019), and its lambda is
corrected to the area actually kept. MixUp's pixel mix is rounded to uint8 (<= 0.5/255 off the
label weight).

Names, options, defaults and limits are `engine.catalog.mixes`.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.batch_base import to_device


class _Mix:
    """Base: `params(n, h, w, g)` draws, `apply(images, labels, num_classes, params)` mixes."""

    mixup_alpha = 1.0
    cutmix_alpha = 1.0
    switch_prob = 0.0  # probability that a sample uses CutMix rather than MixUp

    def params(self, n: int, h: int, w: int, g: Any) -> dict[str, Any]:

        def beta(alpha: float) -> Any:
            a = torch.full((n, 2), float(alpha), dtype=torch.float64, device=g.device)
            return torch._sample_dirichlet(a, generator=g)[:, 0]

        rand = torch.rand((n,), generator=g, device=g.device, dtype=torch.float64)
        cutmix = rand < self.switch_prob
        lam = torch.where(cutmix, beta(self.cutmix_alpha), beta(self.mixup_alpha))
        return {
            "partner": torch.randperm(n, generator=g, device=g.device),
            "lam": lam,
            "cutmix": cutmix,
            "cy": torch.randint(0, h, (n,), generator=g, device=g.device),
            "cx": torch.randint(0, w, (n,), generator=g, device=g.device),
        }

    def apply(
        self, images: Any, labels: Any, num_classes: int, params: dict[str, Any]
    ) -> tuple[Any, Any]:

        n, _, h, w = images.shape
        dev = images.device

        p = to_device(params, dev)
        partner, lam, cutmix = p["partner"], p["lam"], p["cutmix"]
        other = images[partner]
        # CutMix box: side sqrt(1 - lam) of each dimension, centred at (cy, cx), clipped
        cut = torch.sqrt(1.0 - lam)
        half_h, half_w = (h * cut).floor().long() // 2, (w * cut).floor().long() // 2
        y0, y1 = (p["cy"] - half_h).clamp(0, h), (p["cy"] + half_h).clamp(0, h)
        x0, x1 = (p["cx"] - half_w).clamp(0, w), (p["cx"] + half_w).clamp(0, w)
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        box = (ys >= y0.view(-1, 1, 1)) & (ys < y1.view(-1, 1, 1))
        box = box & (xs >= x0.view(-1, 1, 1)) & (xs < x1.view(-1, 1, 1))
        box_lam = 1.0 - ((y1 - y0) * (x1 - x0)).double() / (h * w)
        pasted = torch.where(box.unsqueeze(1), other, images)
        lf = lam.float().view(-1, 1, 1, 1)
        blended = (images.float() * lf + other.float() * (1.0 - lf)).round_().to(torch.uint8)
        out = torch.where(cutmix.view(-1, 1, 1, 1), pasted, blended)
        lam = torch.where(cutmix, box_lam, lam).float()
        eye = torch.eye(num_classes, device=dev)
        targets = lam.view(-1, 1) * eye[labels] + (1.0 - lam).view(-1, 1) * eye[labels[partner]]
        return out, targets

    def __call__(self, images: Any, labels: Any, num_classes: int, g: Any) -> tuple[Any, Any]:
        n, _, h, w = images.shape
        return self.apply(images, labels, num_classes, self.params(n, h, w, g))


class MixUp(_Mix):
    def __init__(self, alpha: float) -> None:
        self.mixup_alpha, self.switch_prob = alpha, 0.0


class CutMix(_Mix):
    def __init__(self, alpha: float) -> None:
        self.cutmix_alpha, self.switch_prob = alpha, 1.0


class MixUpCutMix(_Mix):
    def __init__(self, mixup_alpha: float, cutmix_alpha: float, switch_prob: float) -> None:
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.switch_prob = switch_prob


def mixup(*, alpha: float) -> _Mix:
    return MixUp(alpha)


def cutmix(*, alpha: float) -> _Mix:
    return CutMix(alpha)


def mixup_cutmix(*, mixup_alpha: float, cutmix_alpha: float, switch_prob: float) -> _Mix:
    return MixUpCutMix(mixup_alpha, cutmix_alpha, switch_prob)
