"""A run's components, built from its config: data, model, loss, optimizer, schedule, mixing,
augmentation and the training loader.

The trainer, the LR finder, checkpoint evaluation and the augmentation preview build through
here, and every catalog build they make is in this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from engine import distributed
from engine import world as torchrun
from engine.augment import build_pipeline
from engine.augment_batch import build_batch_pipeline
from engine.catalog import LOSSES, MIXES, MODELS, OPTIMIZERS, SAM_VARIANTS, SCHEDULES, Catalog
from engine.config import RunConfig
from engine.data import DataBundle, ImageSet, load_data
from engine.errors import ConfigError
from engine.loader import Loader, build_loader, jsd_split
from engine.optim import init_momentum, skips_on_device
from engine.schedule import Scheduler


def build_component(catalog: Catalog, section: str, name: str, *args: Any, **params: Any) -> Any:
    """Build a catalog entry; its ValueError about the parameters is a config error."""
    try:
        return catalog.build(name, *args, **params)
    except ValueError as exc:
        raise ConfigError(f"{section} {name!r}: {exc}") from None


# --------------------------------------------------------------------------- data


def load_run_data(
    cfg: RunConfig,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    world: torchrun.World | None = None,
) -> DataBundle:
    """The dataset and split `cfg.data` names (`data_dir` in place of `data.data_dir`).

    With several processes (`world`) rank 0 loads (and downloads) first, with progress shown
    only there; the others follow."""
    d = cfg.data
    main = world is None or world.is_main
    if not main:
        distributed.barrier()
    data = load_data(
        d.dataset,
        data_dir if data_dir is not None else d.data_dir,
        val_size=d.val_size,
        subset=d.subset,
        seed=cfg.train.seed,
        download=d.download,
        progress=progress and main,
    )
    if world is not None and main:
        distributed.barrier()
    return data


def check_batch_divides(cfg: RunConfig, world: torchrun.World) -> None:
    """The global batch must split evenly over the processes."""
    if cfg.data.batch_size % world.size:
        raise ConfigError(
            f"data.batch_size = {cfg.data.batch_size} (the global batch) does not divide by "
            f"{world.size} processes; use a multiple of {world.size}"
        )


def check_batch_fits(cfg: RunConfig, data: DataBundle) -> None:
    """A global batch larger than the training set is a config error."""
    if len(data.train) < cfg.data.batch_size:
        raise ConfigError(
            f"data.batch_size = {cfg.data.batch_size} is larger than the training set "
            f"({len(data.train)} images)"
        )


def steps_per_epoch(cfg: RunConfig, train_size: int) -> int:
    """Full global batches per epoch, capped by `train.max_steps_per_epoch` when set."""
    full_steps = train_size // cfg.data.batch_size
    cap = cfg.train.max_steps_per_epoch
    return min(full_steps, cap) if cap else full_steps


def build_train_loader(
    cfg: RunConfig, train: ImageSet, steps: int, device: torch.device, world: torchrun.World
) -> Loader:
    """The training loader (`data.loader`) for this rank's slice of each global batch."""
    return build_loader(cfg, train, steps, device, world.rank, world.size)


def build_batch_augment(cfg: RunConfig) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """The batched augmentation pipeline (uint8 batches on the device, a CPU generator)."""
    try:
        return build_batch_pipeline([(a.name, a.params) for a in cfg.augment])
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"augment: {exc}") from None


def build_image_augment(cfg: RunConfig) -> Any:
    """The per-image (torchvision) augmentation pipeline."""
    return build_pipeline([(a.name, a.params) for a in cfg.augment])


def jsd_weight(cfg: RunConfig) -> float | None:
    """The weight of AugMix's Jensen-Shannon term when asked for (the batch holds 3 views)."""
    split = jsd_split([(a.name, a.params) for a in cfg.augment])
    return split.weight if split is not None else None


def build_mix(cfg: RunConfig) -> Any:
    """MixUp/CutMix (soft targets) when configured, else None."""
    if cfg.mix is None:
        return None
    return build_component(MIXES, "mix", cfg.mix.name, **cfg.mix.params)


# --------------------------------------------------------------------------- model and training


def build_model(cfg: RunConfig, num_classes: int) -> nn.Module:
    """The network, freshly initialised from the global torch RNG (on the CPU)."""
    model: nn.Module = build_component(
        MODELS, "model", cfg.model.name, num_classes, **cfg.model.params
    )
    return model


def build_loss(cfg: RunConfig, train_labels: torch.Tensor, num_classes: int) -> Any:
    """The loss; some weigh classes by their counts in the training set."""
    class_counts = torch.bincount(train_labels, minlength=num_classes).tolist()
    return build_component(
        LOSSES, "loss", cfg.loss.name, num_classes, class_counts, **cfg.loss.params
    )


def build_optimizer(cfg: RunConfig, model: nn.Module, *, sam: bool = True) -> Any:
    """The optimizer over `model`'s parameters, wrapped in SAM when configured (and `sam`)."""
    optimizer = build_component(OPTIMIZERS, "optim", cfg.optim.name, model, **cfg.optim.params)
    if sam and cfg.sam is not None:
        optimizer = build_component(SAM_VARIANTS, "sam", cfg.sam.name, optimizer, **cfg.sam.params)
    return optimizer


def build_schedule(
    cfg: RunConfig, optimizer: Any, total_steps: int, steps_per_epoch: int
) -> Scheduler:
    """The learning-rate (and momentum) schedule, stepped once per optimizer step."""
    schedule = build_component(
        SCHEDULES,
        "schedule",
        cfg.schedule.name,
        total_steps,
        steps_per_epoch,
        **cfg.schedule.params,
    )
    return Scheduler(optimizer, schedule)


def device_side_skip(
    optimizer: Any, device: torch.device, world: torchrun.World
) -> torch.Tensor | None:
    """The `found_inf` flag of a fused optimizer that skips non-finite steps on the device (its
    momentum initialised, so a skipped first step leaves it as a taken one would); None when
    the optimizer cannot, or when distributed (the ranks agree on each step instead)."""
    if world.distributed or not skips_on_device(optimizer):
        return None
    found_inf = torch.zeros((), device=device)
    optimizer.found_inf = found_inf
    init_momentum(optimizer)
    return found_inf
