"""Augmentations: one spec names the batched implementation (engine.augment_batch, the
training path) and the per-image reference it is checked against (engine.augment, torchvision).

Both take a uint8 image (or batch) [3, 32, 32] and return uint8; the pipeline applies them in the
order the preset lists. Normalisation is not an augmentation: the trainer normalises on the device.
"""

from __future__ import annotations

from engine.catalog.spec import Catalog, Spec, param

PADDING_MODES = ("constant", "reflect", "edge", "symmetric")
ERASE_VALUES = ("zero", "mean", "random")

AUGMENTATIONS = Catalog(
    "augmentation",
    [
        Spec(
            "augmix",
            "AugMix: mix of random op chains, mixed with the original",
            "engine.augment_policies:augmix",
            params=(
                param("severity", "int", 3, limit="1..10"),
                param("width", "int", 3, limit="1..10"),
                param("depth", "int", -1, limit="-1..10"),
                param("alpha", "float", 1.0, limit="> 0"),
                param("jsd", "bool", False),
                param("jsd_weight", "float", 12.0, limit=">= 0"),
            ),
            reference="engine.augment:augmix",
        ),
        Spec(
            "autoaugment",
            "AutoAugment, CIFAR-10 policy",
            "engine.augment_policies:autoaugment",
            reference="engine.augment:autoaugment",
        ),
        Spec(
            "color_jitter",
            "random brightness, contrast, saturation and hue, in random order",
            "engine.augment_batch:color_jitter",
            params=(
                param("brightness", "float", 0.4, limit=">= 0"),
                param("contrast", "float", 0.4, limit=">= 0"),
                param("saturation", "float", 0.4, limit=">= 0"),
                param("hue", "float", 0.1, limit="0..0.5"),
            ),
            reference="engine.augment:color_jitter",
        ),
        Spec(
            "cutout",
            "paint a size x size square at a random centre with the mean",
            "engine.augment_batch:cutout",
            params=(
                param("size", "int", 8, limit="0..32"),
                param("p", "float", 1.0, limit="0..1"),
            ),
            reference="engine.augment:cutout",
        ),
        Spec(
            "gridmask",
            "drop a rotated grid of squares, painted with the mean",
            "engine.augment_batch:gridmask",
            params=(
                param("d_min", "int", 24, limit="2..64"),
                param("d_max", "int", 32, limit="2..64"),
                param("ratio", "float", 0.4, limit="0..1"),
                param("rotate", "int", 0, limit="0..360"),
                param("p", "float", 0.8, limit="0..1"),
            ),
            reference="engine.augment:gridmask",
        ),
        Spec(
            "hflip",
            "horizontal flip with probability p",
            "engine.augment_batch:hflip",
            params=(param("p", "float", 0.5, limit="0..1"),),
            reference="engine.augment:hflip",
        ),
        Spec(
            "randaugment",
            "RandAugment: num_ops random ops at one magnitude",
            "engine.augment_policies:randaugment",
            params=(
                param("num_ops", "int", 2, limit="0..10"),
                param("magnitude", "int", 9, limit="0..30"),
            ),
            reference="engine.augment:randaugment",
        ),
        Spec(
            "random_crop",
            "random 32x32 crop after padding each side",
            "engine.augment_batch:random_crop",
            params=(
                param("padding", "int", 4, limit="0..16"),
                param("padding_mode", "str", "constant", choices=PADDING_MODES),
                param("fill", "int", 0, limit="0..255"),
            ),
            reference="engine.augment:random_crop",
        ),
        Spec(
            "random_erasing",
            "erase a random rectangle with probability p",
            "engine.augment_batch:random_erasing",
            params=(
                param("p", "float", 0.5, limit="0..1"),
                param("scale_lo", "float", 0.02, limit="(0, 1]"),
                param("scale_hi", "float", 0.4, limit="(0, 1]"),
                param("ratio_lo", "float", 0.3, limit="> 0"),
                param("ratio_hi", "float", 3.3, limit="> 0"),
                param("value", "str", "mean", choices=ERASE_VALUES),
            ),
            reference="engine.augment:random_erasing",
        ),
        Spec(
            "rotation",
            "random rotation by an angle in [-degrees, degrees] (bilinear, zero fill)",
            "engine.augment_batch:rotation",
            params=(param("degrees", "float", 15.0, limit="0..180"),),
            reference="engine.augment:rotation",
        ),
        Spec(
            "trivialaugment",
            "TrivialAugment (wide): one random op at a random magnitude",
            "engine.augment_policies:trivialaugment",
            reference="engine.augment:trivialaugment",
        ),
    ],
)
