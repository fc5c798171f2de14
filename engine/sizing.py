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
from engine.config import SIZING_AUTO, RunConfig, config_to_dict, parse_config

CPU_SUBSET = 10_000
CPU_VAL = 2_000


@dataclass(frozen=True)
class DeviceInfo:
    """The device a run will get: `kind` cpu | cuda | mps, and what the label names."""

    kind: str
    name: str = ""  # "cuda:0", "cpu"


@dataclass(frozen=True)
class Sizing:
    label: str
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted key -> value


def first_run_sizing(device: DeviceInfo, dataset: str) -> Sizing:
    """The first run's size for `device` and `dataset` (cifar100, or synthetic when offline)."""
    if device.kind == "cuda":
        # Unmeasured: no GPU here. Aimed at >= 60 % test top-1 in about 2 minutes on one
        # H100/H200 (ResNet-18, bf16, channels_last, the device loader, 45,000 images a epoch).
        val = 5_000 if dataset == "cifar100" else 1_000
        train_images = (DATASETS.get(dataset).train_images or 0) - val
        kind = "" if dataset == "cifar100" else f"{dataset} "
        return Sizing(
            f"{device.name or 'cuda'}: full {train_images:,}-image {kind}training set, resnet18, "
            "batch 512, 18 epochs",
            {
                "train.device": device.name or "cuda",
                "model.name": "resnet18",
                "data.subset": None,
                "data.val_size": val,
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
    if dataset == "synthetic":  # 10,000 generated images: hold out 1,000, train on 4,000
        subset, val = 4_000, 1_000
        label = f"{device.kind}: synthetic {subset:,}-image subset, wrn16_2, 3 epochs"
    else:
        subset, val = CPU_SUBSET, CPU_VAL
        label = f"{device.kind}: {subset:,}-image subset, wrn16_2, 3 epochs"
    return Sizing(
        label,
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


def apply_sizing(cfg: RunConfig, sizing: Sizing) -> RunConfig:
    """`cfg` with the sizing's values and its label as `sizing`, validated again."""
    raw = config_to_dict(cfg)
    for key, value in sizing.overrides.items():
        section, name = key.split(".")
        if section == "model" and name == "name" and raw["model"]["name"] != value:
            raw["model"] = {"name": value}  # a new model starts from its own defaults
        else:
            raw[section][name] = value
    raw["sizing"] = sizing.label
    return parse_config(raw)


def needs_sizing(cfg: RunConfig) -> bool:
    return cfg.sizing == SIZING_AUTO
