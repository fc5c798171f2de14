"""Data-parallel training under torchrun: who this process is, and the few collectives we use.

The engine is launched once per device by `torchrun` (see
`tui.orchestration.launcher.engine_command`), which sets RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT and TORCHELASTIC_RESTART_COUNT. Without WORLD_SIZE (or with WORLD_SIZE=1) this is
a single process: no process group is created and every helper here is a no-op, so the plain path
is unchanged and pays nothing.

Conventions the trainer builds on:
- `data.batch_size` is the global batch; each rank trains on its contiguous slice of it.
- Evaluation sets are split in contiguous `shard` ranges of sizes that differ by at most one, and
  results are summed (`sum_across`) or gathered in order (`gather_rows`): 10,000 images count as
  10,000 on any number of ranks, with no padded duplicates.
- Only rank 0 writes (events, checkpoints, registry, summary); the others get `NullEventWriter`.
- On CPU `torch.nn.SyncBatchNorm` refuses to run (its kernels are CUDA-only), so `sync_batchnorm`
  gives CPU models `CPUSyncBatchNorm`: the same statistics over the global batch, computed with
  autograd-aware all-reduces (gloo), which is what lets the CPU tests compare 2 processes with 1.
"""

from __future__ import annotations

import datetime
import os
import signal

import torch
import torch.distributed as dist
from torch import nn

from engine.events import Event, EventWriter
from engine.world import World, world

TIMEOUT = datetime.timedelta(minutes=30)  # a rank waiting this long at a collective fails
CRASH_ENV = "CIFAR_TUI_TEST_CRASH_AT_STEP"  # test hook, see `crash_step`


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def init(device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo otherwise); a no-op for a single process.

    The store is torchrun's, under a prefix per attempt: torchrun keeps the same store across
    restarts, and without the prefix a restarted group reads the dead group's addresses.
    """
    w = world()
    if not w.distributed or active():
        return
    store, rank, size = next(dist.rendezvous("env://", timeout=TIMEOUT))
    store = dist.PrefixStore(f"cifar-tui/attempt{w.restart}/", store)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=TIMEOUT)


def shutdown() -> None:
    if active():
        dist.destroy_process_group()


# --------------------------------------------------------------------------- collectives


def barrier() -> None:
    if active():
        dist.barrier()


def agree_max(values: torch.Tensor) -> torch.Tensor:
    """The elementwise maximum over ranks (in place); a flag any rank raises, all ranks see."""
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values


def sum_across(values: torch.Tensor) -> torch.Tensor:
    """The elementwise sum over ranks, as a new tensor (the input itself when single)."""
    if not active():
        return values
    total = values.clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def shard(n: int, w: World | None = None) -> tuple[int, int]:
    """This rank's contiguous range [start, stop) of n items; the ranges of all ranks partition
    range(n) in order, sizes differing by at most one (the first n % size ranks get one more),
    exactly as `torch.tensor_split(torch.arange(n), size)` cuts it."""
    w = w or world()
    base, extra = divmod(n, w.size)
    start = w.rank * base + min(w.rank, extra)
    return start, start + base + (1 if w.rank < extra else 0)


def gather_rows(local: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's `shard` of rows, concatenated in rank order: the n rows of the whole set.

    Shards differ in length by at most one: each is padded to the longest for all_gather and the
    padding is cut off again by the known sizes, so no row is duplicated or lost."""
    if not active():
        return local
    size = world().size
    sizes = [n // size + (1 if r < n % size else 0) for r in range(size)]
    longest = max(sizes)
    padded = local.new_zeros((longest, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])


@torch.no_grad()
def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm statistics) on every rank; DDP syncs them only before each
    training forward, so after the last one each rank holds its own update."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


# --------------------------------------------------------------------------- synchronised BN


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks whose gradient is the sum over ranks of the incoming gradients."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out)
        return out


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics cover every rank's rows, for CPU tensors (gloo).

    Not an `nn.SyncBatchNorm` (DDP refuses those on CPU modules): two passes (the global mean,
    then the global mean of squared deviations), each one all-reduce of per-channel sums, with the
    running statistics kept as `F.batch_norm` keeps them (unbiased variance). In eval mode, or
    without a process group, it is plain BatchNorm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and active()):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        local = input.new_full((1,), input.numel() // input.shape[1])
        sums = _AllReduceSum.apply(torch.cat([input.sum(dims), local]))
        count = int(sums[-1])  # rows x pixels over every rank
        mean = sums[:-1] / count
        centred = input - mean.view(shape)
        var = _AllReduceSum.apply((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:  # cleared while SAM's second pass runs (frozen_bn_stats)
            assert self.running_mean is not None and self.running_var is not None
            assert self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum
                if momentum is None:  # cumulative average, as BatchNorm does
                    momentum = 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * count / max(count - 1, 1), momentum)
        return out


def sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm layers -> synchronised ones: `nn.SyncBatchNorm` on CUDA, `CPUSyncBatchNorm` on
    the CPU. Parameters and buffers are kept (the same tensors), so are state_dict keys."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _to_cpu_sync(module)


def _to_cpu_sync(module: nn.Module) -> nn.Module:
    out = module
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        out = CPUSyncBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        if module.affine:
            out.weight, out.bias = module.weight, module.bias
        out.running_mean, out.running_var = module.running_mean, module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.train(module.training)
    for name, child in module.named_children():
        out.add_module(name, _to_cpu_sync(child))
    return out


# --------------------------------------------------------------------------- only rank 0 writes


class NullEventWriter(EventWriter):
    """The event writer of ranks other than 0: accepts events, writes nothing."""

    def __init__(self) -> None:  # no file
        pass

    def emit(self, event: Event) -> Event:
        return event

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- test hook


def crash_step() -> int | None:
    """Test hook: with CIFAR_TUI_TEST_CRASH_AT_STEP=N, rank 1 of a first attempt (restart count
    0) kills itself with SIGKILL right after global step N, like a process lost to a fault."""
    w, at = world(), os.environ.get(CRASH_ENV)
    return int(at) if at and w.rank == 1 and w.restart == 0 else None


def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
