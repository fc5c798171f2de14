"""Count what a training step asks of the device: aten ops, host<->device copies, device reads.

A measuring tool for tests and `bench/`, not used by training. `DispatchCounter` is a dispatch
mode (it sees every aten op below autograd) plus a function mode (it sees `torch.tensor(data,
device=...)`, whose copy of host data happens below the dispatcher). Run the step on a stand-in
device (`meta`: shapes only, no data) and every op that touches a non-CPU tensor is a kernel a GPU
would launch, every copy between the CPU and that device is a transfer, and every read of device
data (`.item()`, `bool()`, `.tolist()`, `nonzero`) fails on `meta` outright: a GPU would wait.

- `ops`: aten ops with a device (non-CPU) tensor among their inputs or outputs;
- `transfers`: blocking copies between the CPU and the device, and tensors built on the device
  from host data (each one a synchronisation on CUDA);
- `async_uploads`: non-blocking copies from the CPU (pinned memory on CUDA): no synchronisation,
  counted apart. `meta_fused_optimizers()` lets fused SGD/Adam/AdamW run on `meta`.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

_COPIES = {torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default}
_HOST_DATA = {torch.tensor, torch.as_tensor}
_IGNORED_NAMESPACES = ("profiler",)  # record_function markers of the optimizers


def _devices(values: Any) -> set[str]:
    flat, _ = tree_flatten(values)
    return {t.device.type for t in flat if isinstance(t, torch.Tensor)}


class _HostData(TorchFunctionMode):
    def __init__(self, counter: DispatchCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _HOST_DATA:
            device = kwargs.get("device")
            data = args[0] if args else None
            on_host = not (isinstance(data, torch.Tensor) and data.device.type != "cpu")
            if device is not None and torch.device(device).type != "cpu" and on_host:
                self.counter.transfers += 1
                self.counter.where["torch.tensor(host data, device=...)"] += 1
        return func(*args, **kwargs)


class DispatchCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.transfers = 0
        self.async_uploads = 0
        self.where: Counter[str] = Counter()  # op name -> transfers, for messages
        self._functions = _HostData(self)

    def __enter__(self) -> DispatchCounter:
        self._functions.__enter__()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        self._functions.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func.namespace in _IGNORED_NAMESPACES:
            return out
        inputs, outputs = _devices((args, kwargs)), _devices(out)
        touched = (inputs | outputs) - {"cpu"}
        if not touched:
            return out
        self.ops += 1
        if func in _COPIES and "cpu" in (inputs | outputs):
            if kwargs.get("non_blocking") and "cpu" in inputs and "cpu" not in outputs:
                self.async_uploads += 1
            else:
                self.transfers += 1
                self.where[str(func)] += 1
        elif func is torch.ops.aten._local_scalar_dense.default:
            self.transfers += 1
            self.where[str(func)] += 1
        return out


_META_LIB: torch.library.Library | None = None


@contextlib.contextmanager
def meta_fused_optimizers() -> Iterator[None]:
    """Let `fused=True` SGD/Adam/AdamW run on `meta` (shape-only) tensors: torch lists `meta` as
    unsupported and has no meta kernel for fused SGD; inside, it is supported and does nothing."""
    global _META_LIB
    import torch.optim.optimizer as optimizer_module
    import torch.utils._foreach_utils as foreach_utils

    if _META_LIB is None:
        _META_LIB = torch.library.Library("aten", "IMPL")
        for overload in ("_fused_sgd_", "_fused_sgd_.tensor_lr"):
            _META_LIB.impl(overload, lambda *args, **kwargs: None, "Meta")
    original = foreach_utils._get_fused_kernels_supported_devices

    def supported() -> list[str]:
        return [*original(), "meta"]

    optimizer_module._get_fused_kernels_supported_devices = supported
    foreach_utils._get_fused_kernels_supported_devices = supported
    try:
        yield
    finally:
        optimizer_module._get_fused_kernels_supported_devices = original
        foreach_utils._get_fused_kernels_supported_devices = original
