"""Torch-free catalogs of every pluggable component: names, descriptions, typed parameters with
defaults, limits and choices, and where each implementation lives (imported on build).

The config layer, the Setup menus and `cifar-tui presets` read these only. Adding a component is
one `Spec` in the catalog of its kind plus its implementation function.
"""

from __future__ import annotations

from engine.catalog.augmentations import AUGMENTATIONS
from engine.catalog.datasets import DATASETS
from engine.catalog.loaders import LOADERS
from engine.catalog.losses import LOSSES
from engine.catalog.mixes import MIXES
from engine.catalog.models import MODELS
from engine.catalog.optimizers import OPTIMIZERS, SAM_VARIANTS
from engine.catalog.schedules import SCHEDULES
from engine.catalog.spec import Catalog, Param, Spec, UnknownNameError

# the config sections whose value is a component: `name` plus that spec's parameters
COMPONENTS: dict[str, Catalog] = {
    "model": MODELS,
    "optim": OPTIMIZERS,
    "schedule": SCHEDULES,
    "loss": LOSSES,
    "augment": AUGMENTATIONS,
    "sam": SAM_VARIANTS,
    "mix": MIXES,
}

__all__ = [
    "AUGMENTATIONS",
    "COMPONENTS",
    "DATASETS",
    "LOADERS",
    "LOSSES",
    "MIXES",
    "MODELS",
    "OPTIMIZERS",
    "SAM_VARIANTS",
    "SCHEDULES",
    "Catalog",
    "Param",
    "Spec",
    "UnknownNameError",
]
