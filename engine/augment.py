"""The per-image augmentations (torchvision): the reference the batched path is checked against.

Builders return a transform for one uint8 image tensor [3, 32, 32] -> uint8 [3, 32, 32]; the
pipeline applies them in the order the preset lists. Normalisation is not an augmentation: the
trainer normalises on the device inside the step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from engine.catalog.augmentations import AUGMENTATIONS, ERASE_VALUES

Transform = Callable[[Any], Any]


def random_crop(*, padding: int, padding_mode: str, fill: int) -> Transform:

    return v2.RandomCrop(32, padding=padding, padding_mode=padding_mode, fill=fill)


def hflip(*, p: float) -> Transform:

    return v2.RandomHorizontalFlip(p=p)


def rotation(*, degrees: float) -> Transform:

    return v2.RandomRotation(degrees, interpolation=v2.InterpolationMode.BILINEAR)


def color_jitter(*, brightness: float, contrast: float, saturation: float, hue: float) -> Transform:

    return v2.ColorJitter(brightness, contrast, saturation, hue)


# the CIFAR-100 training mean as uint8: what normalisation maps to zero
CIFAR100_MEAN_U8 = (129, 124, 112)


class _RandomErasing:
    """v2.RandomErasing's draw (p, area, log-uniform aspect, 10 tries) on uint8 images, filled with
    0, the CIFAR-100 mean, or uniform noise 0..255 (torchvision's `value=None` draws normal noise
    meant for normalised floats, which is meaningless on uint8)."""

    def __init__(
        self, p: float, scale: tuple[float, float], ratio: tuple[float, float], value: str
    ):

        if value not in ERASE_VALUES:
            raise ValueError(f"value must be one of {ERASE_VALUES}, got {value!r}")
        fill = [0, 0, 0] if value == "zero" else list(CIFAR100_MEAN_U8)
        self.inner = v2.RandomErasing(p=p, scale=scale, ratio=ratio, value=fill)
        self.p, self.value = p, value

    def __call__(self, image: Any) -> Any:

        if torch.rand(1) >= self.p:
            return image
        params = self.inner.make_params([image])
        if params["v"] is None:  # no rectangle fitted in 10 tries
            return image
        if self.value == "random":
            params["v"] = torch.randint(0, 256, (3, params["h"], params["w"]), dtype=torch.uint8)
        return self.inner.transform(image, params)


def random_erasing(
    *, p: float, scale_lo: float, scale_hi: float, ratio_lo: float, ratio_hi: float, value: str
) -> Transform:
    return _RandomErasing(p, (scale_lo, scale_hi), (ratio_lo, ratio_hi), value)


class _Cutout:
    """DeVries & Taylor: a size x size square centred on a uniform pixel, clipped at the border,
    painted with the CIFAR-100 mean, with probability p."""

    def __init__(self, size: int, p: float) -> None:
        self.size, self.p = size, p

    def params(self) -> tuple[int, int, bool]:

        cy, cx = torch.randint(0, 32, (2,)).tolist()
        return cy, cx, bool(torch.rand(()) < self.p)

    def apply(self, image: Any, cy: int, cx: int, on: bool) -> Any:

        if not on:
            return image
        h, w = image.shape[-2:]
        half = self.size // 2
        y0, y1 = max(cy - half, 0), min(cy + half, h)
        x0, x1 = max(cx - half, 0), min(cx + half, w)
        v = torch.tensor(CIFAR100_MEAN_U8, dtype=torch.uint8).view(3, 1, 1)
        return F.erase(image, y0, x0, y1 - y0, x1 - x0, v)

    def __call__(self, image: Any) -> Any:
        return self.apply(image, *self.params())


def cutout(*, size: int, p: float) -> Transform:
    return _Cutout(size, p)


class _GridMask:
    """GridMask (Chen et al. 2020) transcribed from the published code (mode 1: drop the squares
    between bands of width l = ceil(d * ratio)); unit d uniform over d_min..d_max, angle over
    0..rotate degrees (the published `rotate=1` is `rotate=0` here). The published training loop
    masks the normalised image, so dropped pixels are the CIFAR-100 mean (as Cutout paints)."""

    def __init__(self, d_min: int, d_max: int, ratio: float, rotate: int, p: float) -> None:
        if d_max < d_min:
            raise ValueError(f"gridmask needs d_min <= d_max, got {d_min} > {d_max}")
        self.d_min, self.d_max, self.ratio, self.rotate, self.p = d_min, d_max, ratio, rotate, p

    def params(self) -> tuple[int, int, int, int, bool]:

        d = int(torch.randint(self.d_min, self.d_max + 1, ()))
        st_h, st_w = torch.randint(0, d, (2,)).tolist()
        angle = int(torch.randint(0, self.rotate + 1, ()))
        return d, st_h, st_w, angle, bool(torch.rand(()) < self.p)

    def apply(self, image: Any, d: int, st_h: int, st_w: int, angle: int, on: bool) -> Any:

        if not on:
            return image
        h, w = image.shape[-2:]
        hh = math.ceil(math.sqrt(h * h + w * w))
        length = math.ceil(d * self.ratio)
        mask = torch.ones(1, hh, hh, dtype=torch.uint8)
        for i in range(-1, hh // d + 1):
            s = min(max(d * i + st_h, 0), hh)
            t = min(max(d * i + st_h + length, 0), hh)
            mask[:, s:t, :] = 0
        for i in range(-1, hh // d + 1):
            s = min(max(d * i + st_w, 0), hh)
            t = min(max(d * i + st_w + length, 0), hh)
            mask[:, :, s:t] = 0
        if angle:
            mask = F.rotate(mask, float(angle), F.InterpolationMode.NEAREST)
        top, left = (hh - h) // 2, (hh - w) // 2
        keep = mask[:, top : top + h, left : left + w] == 0
        # the published training loop masks after normalising: dropped pixels are the mean
        mean = torch.tensor(CIFAR100_MEAN_U8, dtype=torch.uint8).view(3, 1, 1)
        return torch.where(keep, image, mean)

    def __call__(self, image: Any) -> Any:
        return self.apply(image, *self.params())


def gridmask(*, d_min: int, d_max: int, ratio: float, rotate: int, p: float) -> Transform:
    return _GridMask(d_min, d_max, ratio, rotate, p)


def autoaugment() -> Transform:

    return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)


def randaugment(*, num_ops: int, magnitude: int) -> Transform:

    return v2.RandAugment(num_ops=num_ops, magnitude=magnitude)


def trivialaugment() -> Transform:

    return v2.TrivialAugmentWide()


def augmix(
    *, severity: int, width: int, depth: int, alpha: float, jsd: bool, jsd_weight: float
) -> Transform:
    """jsd: train on three views per image (the one before AugMix and two AugMix draws) and add
    jsd_weight * the Jensen-Shannon divergence of their predictions to the loss (Hendrycks et
    al. 2020, weight 12 as published); the loader builds the views (engine.loader)."""

    # all_ops=False: the published op set (no colour enhancement ops)
    return v2.AugMix(
        severity=severity, mixture_width=width, chain_depth=depth, alpha=alpha, all_ops=False
    )


def build_pipeline(components: list[tuple[str, dict[str, Any]]]) -> Transform:
    """Compose the listed augmentations, in order, into one per-image transform."""
    if not components:
        return v2.Identity()
    return v2.Compose(
        [AUGMENTATIONS.build_reference(name, **params) for name, params in components]
    )
