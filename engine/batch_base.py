"""The batched augmentation op: its parameter draws, their upload, and per-device constants.

Shared by the ops (engine.augment_batch, engine.augment_policies) and the pixel kernels
(engine.batch_pixels); see engine.augment_batch for the design."""

from __future__ import annotations

import abc
from collections.abc import Callable

import torch

Params = dict[str, torch.Tensor]


class BatchOp(abc.ABC):
    """Base class: `params` draws per-sample parameters, `apply` uses them; `__call__` does both."""

    def params(self, n: int, g: torch.Generator) -> Params:
        return {}

    @abc.abstractmethod
    def apply(
        self, images: torch.Tensor, params: Params, host: Params | None = None
    ) -> torch.Tensor:
        """uint8 [B, 3, H, W] -> uint8 [B, 3, H, W] with the drawn `params`; no randomness.

        `host`: the same parameters where they were drawn (the CPU), for computing group indices
        without reading device memory; None means `params` serve for that too."""

    def __call__(self, images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        check_batch(images)
        host = self.params(images.shape[0], g)
        return self.apply(images, to_device(host, images.device), host)


def to_device(params: Params, device: torch.device) -> Params:
    """`params` on `device`, in one non-blocking copy (see `upload`)."""
    return upload([params], device)[0]


def upload(groups: list[Params], device: torch.device) -> list[Params]:
    """Copy every tensor of `groups` to `device` as one buffer: one non-blocking copy from
    pinned memory (CUDA) instead of one blocking copy per tensor. CPU: returned as they are."""
    if device.type == "cpu":
        return [dict(group) for group in groups]
    flat = [(i, k, v.contiguous()) for i, group in enumerate(groups) for k, v in group.items()]
    sizes = [-(-(v.numel() * v.element_size()) // 8) * 8 for _, _, v in flat]  # 8-byte aligned
    buffer = torch.empty(sum(sizes), dtype=torch.uint8)
    offset = 0
    for (_, _, v), size in zip(flat, sizes, strict=True):
        nbytes = v.numel() * v.element_size()
        if nbytes:
            buffer[offset : offset + nbytes] = v.reshape(-1).view(torch.uint8)
        offset += size
    if device.type == "cuda":
        buffer = buffer.pin_memory()
    on_device = buffer.to(device, non_blocking=True)
    out: list[Params] = [{} for _ in groups]
    offset = 0
    for (i, k, v), size in zip(flat, sizes, strict=True):
        nbytes = v.numel() * v.element_size()
        out[i][k] = on_device[offset : offset + nbytes].view(v.dtype).view(v.shape)
        offset += size
    return out


_CONSTANTS: dict[tuple[str, torch.device], torch.Tensor] = {}


def device_constant(
    key: str, device: torch.device, make: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """`make()` (a CPU tensor) copied to `device` once and kept: constants are never copied
    per call. `key` names the constant and every parameter it depends on."""
    entry = (key, device)
    if entry not in _CONSTANTS:
        _CONSTANTS[entry] = make().to(device)
    return _CONSTANTS[entry]


def groups(
    keys: torch.Tensor, host_keys: torch.Tensor, count: int
) -> list[tuple[int, torch.Tensor]]:
    """The samples of each value 0..count-1 of `keys` (on the device), as (value, indices in
    ascending order); group sizes from `host_keys` (the same values on the host), so nothing is
    read back. Values >= count (inactive samples) belong to no group."""
    sizes = torch.bincount(host_keys.reshape(-1).cpu(), minlength=count + 1).tolist()
    members = torch.argsort(keys.reshape(-1), stable=True)
    out, start = [], 0
    for value, size in enumerate(sizes[:count]):
        if size:
            out.append((value, members[start : start + size]))
        start += size
    return out


def check_batch(images: torch.Tensor) -> None:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"batched augmentation expects uint8 [B, 3, H, W], got {images.dtype} "
            f"{list(images.shape)}"
        )


# --------------------------------------------------------------------------- random draws


def rand(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=g.device, dtype=torch.float64)


def uniform(g: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * rand(g, *shape)


def randint(g: torch.Generator, high: torch.Tensor | int, *shape: int) -> torch.Tensor:
    """Uniform integers in [0, high) (high may be a per-sample tensor)."""
    if isinstance(high, int):
        return torch.randint(0, high, shape, generator=g, device=g.device)
    return (rand(g, *shape) * high).floor().long().clamp(max=high - 1)


def sign(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.where(rand(g, *shape) <= 0.5, -1.0, 1.0).double()


def sample_dirichlet(alpha: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Dirichlet rows (alpha [n, k]) from `g` (torch.distributions cannot take a generator)."""
    return torch._sample_dirichlet(alpha.to(g.device), generator=g)


def where_sample(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)
