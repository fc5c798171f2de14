"""Shell completion of the values a user types most: preset, sweep and run names, and `--set`
keys with the registry's names for `model.name=`, `optim.name=`, ... (typer `autocompletion`).

Each completer is cheap and torch-free: it runs on every Tab press."""

from __future__ import annotations

import contextlib

from engine.catalog.losses import LOSSES
from engine.catalog.mixes import MIXES
from engine.catalog.models import MODELS
from engine.catalog.optimizers import OPTIMIZERS, SAM_VARIANTS
from engine.catalog.schedules import SCHEDULES
from engine.catalog.spec import Catalog
from engine.config import config_to_dict, flatten_config, parse_config
from engine.presets import named_files
from engine.runs import checkpoints_root, run_ids

NAMED_KEYS: dict[str, Catalog] = {
    "model.name": MODELS,
    "optim.name": OPTIMIZERS,
    "sam.name": SAM_VARIANTS,
    "mix.name": MIXES,
    "loss.name": LOSSES,
    "schedule.name": SCHEDULES,
}


def presets(incomplete: str) -> list[str]:
    return [e.name for e in named_files("preset") if e.name.startswith(incomplete)]


def sweeps(incomplete: str) -> list[str]:
    return [e.name for e in named_files("sweep") if e.name.startswith(incomplete)]


def runs(incomplete: str) -> list[str]:
    """`last`, then the run ids of the default runs folder, newest first."""
    ids: list[str] = []
    with contextlib.suppress(OSError):
        ids = run_ids(checkpoints_root(None))[::-1]
    return [r for r in ["last", *ids] if r.startswith(incomplete)]


def set_keys(incomplete: str) -> list[str]:
    """`--set`: the config's dotted keys as `key=`; after `model.name=`, the model names."""
    key, eq, value = incomplete.partition("=")
    if eq:
        catalog = NAMED_KEYS.get(key)
        return [f"{key}={n}" for n in catalog.names() if n.startswith(value)] if catalog else []
    flat = flatten_config(config_to_dict(parse_config({})))
    keys = sorted({k for k in flat if k.split(".")[0] != "augment"} | set(NAMED_KEYS))
    return [f"{k}=" for k in keys if k.startswith(incomplete)]
