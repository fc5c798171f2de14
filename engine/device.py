"""Device and precision: which device a run uses, seeding, bf16 autocast, the on-device
normalisation of uint8 batches, memory readout, and wrapping the step's network (DDP, compile).
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine import world as torchrun
from engine.data import DataBundle
from engine.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name} but no CUDA device is available; use cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device = mps but MPS is not available; use cpu or auto")
    return torch.device(name)


def rank_device(device: torch.device, world: torchrun.World) -> torch.device:
    """The device of this rank: `cuda:LOCAL_RANK` when several processes share CUDA devices."""
    if not world.distributed:
        return device
    if device.type == "mps":
        raise ConfigError("train.device = mps cannot run several processes; use cuda or cpu")
    if device.type != "cuda":
        return device
    if device.index is not None:
        raise ConfigError(
            f"train.device = {device} with several processes: each takes cuda:LOCAL_RANK; "
            "use cuda or auto (CUDA_VISIBLE_DEVICES picks the GPUs)"
        )
    count = torch.cuda.device_count()
    if world.local_rank >= count:
        raise ConfigError(
            f"process {world.local_rank} on this machine has no GPU: only {count} visible; "
            f"use --gpus {count} or fewer"
        )
    device = torch.device("cuda", world.local_rank)
    torch.cuda.set_device(device)
    return device


def device_name(device: torch.device, world: torchrun.World) -> str:
    """`cpu`, `cuda:0`, ...; `cuda x8` for 8 data-parallel processes."""
    if world.distributed:
        return f"{device.type} x{world.size}"
    return str(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, amp: bool) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast when asked for; otherwise nothing (any device type, `meta` too)."""
    if not amp:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def to_device(model: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """`model` on `device`, its weights in channels_last when asked for."""
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    return model.to(device, memory_format=memory_format)  # type: ignore[call-overload]


def peak_memory_mb(device: torch.device) -> float | None:
    """The most memory allocated on a CUDA device so far, in MiB (None elsewhere)."""
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


class Normalizer:
    """uint8 [B, 3, H, W] -> normalised by the training mean/std, on the device, in one kernel
    (addcmul into an output already in the step's memory format and dtype: channels_last and
    bf16 under autocast, so the first layer needs no conversion)."""

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        channels_last: bool,
        dtype: torch.dtype | None = None,
    ) -> None:
        std_t = torch.tensor(std)
        self.scale = (1.0 / (255.0 * std_t)).view(1, 3, 1, 1).to(device)
        self.bias = (-torch.tensor(mean) / std_t).view(1, 3, 1, 1).to(device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = dtype or torch.get_default_dtype()

    @classmethod
    def of(
        cls, data: DataBundle, device: torch.device, channels_last: bool, amp: bool
    ) -> Normalizer:
        """The normalisation a run with `data` uses: bf16 output under autocast."""
        return cls(data.mean, data.std, device, channels_last, torch.bfloat16 if amp else None)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.empty(
            images.shape, dtype=self.dtype, device=images.device, memory_format=self.memory_format
        )
        return torch.addcmul(self.bias, images, self.scale, out=out)


def step_network(
    model: nn.Module,
    device: torch.device,
    world: torchrun.World,
    compile: bool = False,
    compile_mode: str = "default",
) -> nn.Module:
    """The network the step runs: `model` DDP-wrapped when distributed, then compiled when
    asked (the module itself stays the one saved)."""
    net: nn.Module = model
    if world.distributed:
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    if compile:
        net = torch.compile(net, mode=compile_mode)  # type: ignore[assignment]
    return net
