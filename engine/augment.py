"""Augmentation registry: the per-image torchvision path (the reference pipeline).

Builders return a transform for one uint8 image tensor [3, 32, 32] -> uint8 [3, 32, 32]; the
pipeline applies them in the order the preset lists. Normalisation is not an augmentation: the
trainer normalises on the device inside the step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.registry import Registry

AUGMENTATIONS: Registry[Any] = Registry("augmentation")
Transform = Callable[[Any], Any]
PADDING_MODES = ("constant", "reflect", "edge", "symmetric")


@AUGMENTATIONS.register(
    "random_crop",
    "random 32x32 crop after padding each side",
    limits={"padding": "0..16", "fill": "0..255"},
    choices={"padding_mode": PADDING_MODES},
)
def random_crop(*, padding: int = 4, padding_mode: str = "constant", fill: int = 0) -> Transform:
    from torchvision.transforms import v2

    return v2.RandomCrop(32, padding=padding, padding_mode=padding_mode, fill=fill)


@AUGMENTATIONS.register("hflip", "horizontal flip with probability p", limits={"p": "0..1"})
def hflip(*, p: float = 0.5) -> Transform:
    from torchvision.transforms import v2

    return v2.RandomHorizontalFlip(p=p)


@AUGMENTATIONS.register(
    "rotation",
    "random rotation by an angle in [-degrees, degrees] (bilinear, zero fill)",
    limits={"degrees": "0..180"},
)
def rotation(*, degrees: float = 15.0) -> Transform:
    from torchvision.transforms import v2

    return v2.RandomRotation(degrees, interpolation=v2.InterpolationMode.BILINEAR)


@AUGMENTATIONS.register(
    "color_jitter",
    "random brightness, contrast, saturation and hue, in random order",
    limits={"brightness": ">= 0", "contrast": ">= 0", "saturation": ">= 0", "hue": "0..0.5"},
)
def color_jitter(
    *, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4, hue: float = 0.1
) -> Transform:
    from torchvision.transforms import v2

    return v2.ColorJitter(brightness, contrast, saturation, hue)


ERASE_VALUES = ("zero", "mean", "random")
# the CIFAR-100 training mean as uint8: what normalisation maps to zero
CIFAR100_MEAN_U8 = (129, 124, 112)


class _RandomErasing:
    """v2.RandomErasing's draw (p, area, log-uniform aspect, 10 tries) on uint8 images, filled with
    0, the CIFAR-100 mean, or uniform noise 0..255 (torchvision's `value=None` draws normal noise
    meant for normalised floats, which is meaningless on uint8)."""

    def __init__(
        self, p: float, scale: tuple[float, float], ratio: tuple[float, float], value: str
    ):
        from torchvision.transforms import v2

        if value not in ERASE_VALUES:
            raise ValueError(f"value must be one of {ERASE_VALUES}, got {value!r}")
        fill = [0, 0, 0] if value == "zero" else list(CIFAR100_MEAN_U8)
        self.inner = v2.RandomErasing(p=p, scale=scale, ratio=ratio, value=fill)
        self.p, self.value = p, value

    def __call__(self, image: Any) -> Any:
        import torch

        if torch.rand(1) >= self.p:
            return image
        params = self.inner.make_params([image])
        if params["v"] is None:  # no rectangle fitted in 10 tries
            return image
        if self.value == "random":
            params["v"] = torch.randint(0, 256, (3, params["h"], params["w"]), dtype=torch.uint8)
        return self.inner.transform(image, params)


@AUGMENTATIONS.register(
    "random_erasing",
    "erase a random rectangle with probability p",
    limits={
        "p": "0..1",
        "scale_lo": "(0, 1]",
        "scale_hi": "(0, 1]",
        "ratio_lo": "> 0",
        "ratio_hi": "> 0",
    },
    choices={"value": ERASE_VALUES},
)
def random_erasing(
    *,
    p: float = 0.5,
    scale_lo: float = 0.02,
    scale_hi: float = 0.4,
    ratio_lo: float = 0.3,
    ratio_hi: float = 3.3,
    value: str = "mean",
) -> Transform:
    return _RandomErasing(p, (scale_lo, scale_hi), (ratio_lo, ratio_hi), value)


class _Cutout:
    """DeVries & Taylor: a size x size square centred on a uniform pixel, clipped at the border,
    painted with the CIFAR-100 mean, with probability p."""

    def __init__(self, size: int, p: float) -> None:
        self.size, self.p = size, p

    def params(self) -> tuple[int, int, bool]:
        import torch

        cy, cx = torch.randint(0, 32, (2,)).tolist()
        return cy, cx, bool(torch.rand(()) < self.p)

    def apply(self, image: Any, cy: int, cx: int, on: bool) -> Any:
        import torch
        from torchvision.transforms.v2 import functional as F

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


@AUGMENTATIONS.register(
    "cutout",
    "paint a size x size square at a random centre with the mean",
    limits={"size": "0..32", "p": "0..1"},
)
def cutout(*, size: int = 8, p: float = 1.0) -> Transform:
    return _Cutout(size, p)


class _GridMask:
    """GridMask (Chen et al. 2020) transcribed from the published code (mode 1: drop the squares
    between bands of width l = ceil(d * ratio)); unit d uniform over d_min..d_max, angle over
    0..rotate degrees (the published `rotate=1` is `rotate=0` here)."""

    def __init__(self, d_min: int, d_max: int, ratio: float, rotate: int, p: float) -> None:
        if d_max < d_min:
            raise ValueError(f"gridmask needs d_min <= d_max, got {d_min} > {d_max}")
        self.d_min, self.d_max, self.ratio, self.rotate, self.p = d_min, d_max, ratio, rotate, p

    def params(self) -> tuple[int, int, int, int, bool]:
        import torch

        d = int(torch.randint(self.d_min, self.d_max + 1, ()))
        st_h, st_w = torch.randint(0, d, (2,)).tolist()
        angle = int(torch.randint(0, self.rotate + 1, ()))
        return d, st_h, st_w, angle, bool(torch.rand(()) < self.p)

    def apply(self, image: Any, d: int, st_h: int, st_w: int, angle: int, on: bool) -> Any:
        import math

        import torch
        from torchvision.transforms.v2 import functional as F

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
        mask = 1 - mask[:, top : top + h, left : left + w]
        return image * mask

    def __call__(self, image: Any) -> Any:
        return self.apply(image, *self.params())


@AUGMENTATIONS.register(
    "gridmask",
    "drop a rotated grid of squares",
    limits={"d_min": "2..64", "d_max": "2..64", "ratio": "0..1", "rotate": "0..360", "p": "0..1"},
)
def gridmask(
    *, d_min: int = 24, d_max: int = 32, ratio: float = 0.4, rotate: int = 0, p: float = 0.8
) -> Transform:
    return _GridMask(d_min, d_max, ratio, rotate, p)


@AUGMENTATIONS.register("autoaugment", "AutoAugment, CIFAR-10 policy")
def autoaugment() -> Transform:
    from torchvision.transforms import v2

    return v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10)


@AUGMENTATIONS.register(
    "randaugment",
    "RandAugment: num_ops random ops at one magnitude",
    limits={"num_ops": "0..10", "magnitude": "0..30"},
)
def randaugment(*, num_ops: int = 2, magnitude: int = 9) -> Transform:
    from torchvision.transforms import v2

    return v2.RandAugment(num_ops=num_ops, magnitude=magnitude)


@AUGMENTATIONS.register(
    "trivialaugment", "TrivialAugment (wide): one random op at a random magnitude"
)
def trivialaugment() -> Transform:
    from torchvision.transforms import v2

    return v2.TrivialAugmentWide()


@AUGMENTATIONS.register(
    "augmix",
    "AugMix: mix of random op chains, mixed with the original",
    limits={
        "severity": "1..10",
        "width": "1..10",
        "depth": "-1..10",
        "alpha": "> 0",
        "jsd_weight": ">= 0",
    },
)
def augmix(
    *,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    jsd: bool = False,
    jsd_weight: float = 12.0,
) -> Transform:
    """jsd: train on three views per image (the one before AugMix and two AugMix draws) and add
    jsd_weight * the Jensen-Shannon divergence of their predictions to the loss (Hendrycks et
    al. 2020, weight 12 as published); the loader builds the views (engine.loader)."""
    from torchvision.transforms import v2

    # all_ops=False: the published op set (no colour enhancement ops)
    return v2.AugMix(
        severity=severity, mixture_width=width, chain_depth=depth, alpha=alpha, all_ops=False
    )


def build_pipeline(components: list[tuple[str, dict[str, Any]]]) -> Transform:
    """Compose the listed augmentations, in order, into one per-image transform."""
    from torchvision.transforms import v2

    if not components:
        return v2.Identity()
    return v2.Compose([AUGMENTATIONS.build(name, **params) for name, params in components])
