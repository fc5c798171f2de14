"""`sizing: auto`: the one place a recipe is sized to the device it will train on (torch-free:
the launcher decides before the run folder exists, from what `python -m engine.about` saw).

The first run aims at about two minutes: on a CPU a 10,000-image subset and a narrow WRN-16-2;
on a GPU the whole training set at a batch that keeps it busy, and a ResNet-18. The label it
returns ("cpu: 10,000-image subset, wrn16_2, 3 epochs") becomes the config's `sizing` and the
run's header.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.catalog import DATASETS
from engine.config import SIZING_AUTO, RunConfig, config_to_dict, flatten_config, parse_config

CPU_SUBSET = 10_000
CPU_VAL = 2_000


@dataclass(frozen=True)
class DeviceInfo:
    """The device a run will get: `kind` cpu | cuda | mps, and what the label names."""

    kind: str
    name: str = ""  # "cuda:0", "cpu"


@dataclass(frozen=True)
class Sizing:
    device: str  # what train.device becomes, and the label's first word
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value


def first_run_sizing(device: DeviceInfo, dataset: str) -> Sizing:
    """The first run's size for `device` and `dataset` (cifar100, or synthetic when offline)."""
    if device.kind == "cuda":
        # Unmeasured: no GPU here. Aimed at >= 60 % test top-1 in about 2 minutes on one
        # H100/H200 (ResNet-18, bf16, channels_last, the device loader, 45,000 images a epoch).
        return Sizing(
            device.name or "cuda",
            {
                "train.device": device.name or "cuda",
                "model.name": "resnet18",
                "data.subset": None,
                "data.val_size": 5_000 if dataset == "cifar100" else 1_000,
                "data.batch_size": 512,
                "data.num_workers": 4,
                "optim.lr": 0.4,
                "optim.nesterov": True,
                "schedule.warmup_epochs": 1,
                "loss.label_smoothing": 0.1,
                "train.epochs": 18,
                "eval.batch_size": 2_000,
            },
        )
    # synthetic: 10,000 generated images, hold out 1,000, train on 4,000
    subset, val = (CPU_SUBSET, CPU_VAL) if dataset == "cifar100" else (4_000, 1_000)
    return Sizing(
        device.kind,
        {
            "train.device": device.kind,
            "model.name": "wrn16_2",
            "data.subset": subset,
            "data.val_size": val,
            "data.batch_size": 64,
            "data.num_workers": 0,
            "train.epochs": 3,
        },
    )


def size_label(device: str, cfg: RunConfig) -> str:
    """'cpu: 10,000-image subset, wrn16_2, 3 epochs' / 'cuda: full 45,000-image training set,
    resnet18, batch 512, 18 epochs': what the run trains, as its header shows it."""
    d = cfg.data
    kind = "" if d.dataset == "cifar100" else f"{d.dataset} "
    if d.subset is not None:
        images = f"{kind}{d.subset:,}-image subset"
    else:
        total = (DATASETS.get(d.dataset).train_images or 0) - d.val_size
        images = f"full {total:,}-image {kind}training set"
    batch = f", batch {d.batch_size}" if device.startswith("cuda") else ""
    epochs = f"{cfg.train.epochs} epoch" + ("s" if cfg.train.epochs != 1 else "")
    return f"{device}: {images}, {cfg.model.name}{batch}, {epochs}"


def apply_sizing(cfg: RunConfig, sizing: Sizing, base: RunConfig | None = None) -> RunConfig:
    """`cfg` with the sizing's values and its label as `sizing`, validated again. With `base`
    (the preset as saved), a key whose value in `cfg` differs from the base's was set by the
    user (`--set`, an edit in Setup) and is kept."""
    raw = config_to_dict(cfg)
    mine = flatten_config(raw)
    saved = flatten_config(config_to_dict(base)) if base is not None else mine
    for key, value in sizing.overrides.items():
        if mine.get(key) != saved.get(key):
            continue
        section, name = key.split(".")
        if section == "model" and name == "name" and raw["model"]["name"] != value:
            raw["model"] = {"name": value}  # a new model starts from its own defaults
        else:
            raw[section][name] = value
    sized = parse_config(raw)
    sized.sizing = size_label(sizing.device, sized)
    return sized


def needs_sizing(cfg: RunConfig) -> bool:
    return cfg.sizing == SIZING_AUTO
