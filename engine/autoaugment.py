"""Policy tables and magnitude spaces for AutoAugment, RandAugment, TrivialAugment and AugMix.

Torch-free data; `engine.augment_batch` turns it into batched ops. The magnitude conventions are
torchvision's (`torchvision.transforms.v2.AutoAugment` and friends), so the batched path and the
per-image torchvision path in `engine.augment` apply the same distributions of operations:

- a signed op takes its magnitude with a random sign (probability 1/2 each);
- Brightness/Color/Contrast/Sharpness use the enhancement factor 1 + magnitude;
- Posterize keeps `int(magnitude)` bits, Solarize inverts pixels >= 255 * magnitude,
  TranslateX/Y shift by `int(magnitude)` pixels (truncated toward zero), Shear uses
  atan(magnitude) degrees about the top-left corner, Rotate turns about the centre.
"""

from __future__ import annotations

import torch

# op names, in a fixed order: the batched path refers to ops by index into this tuple
OPS = (
    "Identity",
    "ShearX",
    "ShearY",
    "TranslateX",
    "TranslateY",
    "Rotate",
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
    "Invert",
)
SIGNED = frozenset(
    {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
    | {"Brightness", "Color", "Contrast", "Sharpness"}
)

# The CIFAR-10 policy of Cubuk et al., "AutoAugment: Learning Augmentation Strategies from Data"
# (2019), appendix table "policy found on reduced CIFAR-10": 25 sub-policies of two
# (op, probability, magnitude bin 0..9) steps; the magnitude of an op without one is None.
CIFAR10_POLICY: tuple[tuple[tuple[str, float, int | None], tuple[str, float, int | None]], ...] = (
    (("Invert", 0.1, None), ("Contrast", 0.2, 6)),
    (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
    (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
    (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
    (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
    (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
    (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
    (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
    (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
    (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
    (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
    (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
    (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
    (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
    (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
    (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
    (("Color", 0.9, 9), ("Equalize", 0.6, None)),
    (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
    (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
    (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
    (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
    (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
    (("Equalize", 0.8, None), ("Invert", 0.1, None)),
    (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None)),
)

# magnitude spaces: op -> (kind, maximum) with kind "linear" (linspace(0, max, bins)),
# "posterize" (8 - round(i / ((bins - 1) / max)) bits, or 4 - ... for AugMix), "solarize"
# (linspace(1, 0, bins)), or "none". Translate maxima are in pixels for 32x32 images.
Space = dict[str, tuple[str, float]]
_COLOUR = ("Brightness", "Color", "Contrast", "Sharpness")

AUTOAUGMENT_SPACE: Space = {
    "ShearX": ("linear", 0.3),
    "ShearY": ("linear", 0.3),
    "TranslateX": ("linear", 150.0 / 331.0 * 32),
    "TranslateY": ("linear", 150.0 / 331.0 * 32),
    "Rotate": ("linear", 30.0),
    **{op: ("linear", 0.9) for op in _COLOUR},
    "Posterize": ("posterize8", 4.0),
    "Solarize": ("solarize", 1.0),
    "AutoContrast": ("none", 0.0),
    "Equalize": ("none", 0.0),
    "Invert": ("none", 0.0),
}
# RandAugment: AutoAugment's ops without Invert, plus Identity
RANDAUGMENT_SPACE: Space = {"Identity": ("none", 0.0)} | {
    k: v for k, v in AUTOAUGMENT_SPACE.items() if k != "Invert"
}
# TrivialAugment "wide" space (Mueller & Hutter 2021, as in torchvision's TrivialAugmentWide)
TRIVIALAUGMENT_SPACE: Space = {
    "Identity": ("none", 0.0),
    "ShearX": ("linear", 0.99),
    "ShearY": ("linear", 0.99),
    "TranslateX": ("linear", 32.0),
    "TranslateY": ("linear", 32.0),
    "Rotate": ("linear", 135.0),
    **{op: ("linear", 0.99) for op in _COLOUR},
    "Posterize": ("posterize8", 6.0),
    "Solarize": ("solarize", 1.0),
    "AutoContrast": ("none", 0.0),
    "Equalize": ("none", 0.0),
}
# AugMix (Hendrycks et al. 2020): the published op set, which leaves out the colour enhancement
# ops that overlap with the CIFAR-C corruptions (torchvision's AugMix(all_ops=False))
AUGMIX_SPACE: Space = {
    "ShearX": ("linear", 0.3),
    "ShearY": ("linear", 0.3),
    "TranslateX": ("linear", 32 / 3.0),
    "TranslateY": ("linear", 32 / 3.0),
    "Rotate": ("linear", 30.0),
    "Posterize": ("posterize4", 4.0),
    "Solarize": ("solarize", 1.0),
    "AutoContrast": ("none", 0.0),
    "Equalize": ("none", 0.0),
}


def magnitude_bins(kind: str, maximum: float, bins: int) -> list[float] | None:
    """The magnitude of each bin, computed exactly as torchvision does (float32 linspace)."""

    if kind == "none":
        return None
    if kind == "linear":
        return torch.linspace(0.0, maximum, bins).tolist()
    if kind == "solarize":
        return torch.linspace(1.0, 0.0, bins).tolist()
    top = 8 if kind == "posterize8" else 4
    return (top - (torch.arange(bins) / ((bins - 1) / maximum))).round().int().float().tolist()
