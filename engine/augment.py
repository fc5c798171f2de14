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


def build_pipeline(components: list[tuple[str, dict[str, Any]]]) -> Transform:
    """Compose the listed augmentations, in order, into one per-image transform."""
    from torchvision.transforms import v2

    if not components:
        return v2.Identity()
    return v2.Compose([AUGMENTATIONS.build(name, **params) for name, params in components])
