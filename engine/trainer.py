"""The training loop: one run from a resolved config to checkpoints, events and a summary.

Everything a consumer sees goes through the event stream (`engine.events`); the trainer never
prints. Batches come from `engine.loader` (the dataset on the device with batched augmentation, or
the per-image torchvision reference) as uint8; normalisation happens on the device inside the step.

Exact resume: the order of an epoch's batches and every image's augmentation are pure functions
of (seed, epoch, position) (see `engine.loader`), and a checkpoint holds everything else (weights,
optimizer, scheduler, RNG states, position within the epoch, partial epoch sums), so a run can
stop after any step and continue bit-exactly.

Inside the step nothing is read back to the host. With a fused optimizer (SGD, Adam, AdamW) a
non-finite loss is skipped on the device: the fused kernel takes a `found_inf` flag and leaves the
weights and its state untouched, the EMA moves by zero, the sums leave the step out, and the
per-step finite flags and losses are read with the sums when an event is due (a few times a
second), where the `bad_step` events are emitted and divergence is decided. The optimizers that
have no device-side skip (RAdam, Ranger, SAM's closure) and the data-parallel path read one flag
per step (`_finite`).

Data-parallel under torchrun (`engine.distributed`; a no-op for a single process): the step's
network is wrapped in DistributedDataParallel, each rank trains on its slice of the global batch
and DDP averages the gradients (so SAM's perturbation and second pass use all-reduced gradients
too). Every decision that changes which collectives run is agreed by all ranks: the finite-loss
check, a stop by signal and "a step event is due" are one small all-reduce (max) per step; a stop
after the epoch is agreed at its end. Loss/accuracy sums are summed over ranks when read, so
events, checkpoints and the history carry global numbers; evaluation splits each set exactly over
the ranks and sums (and gathers logits) in order. Only rank 0 writes events, checkpoints, the
registry row and the summary; the others wait at a barrier after each epoch's checkpoints (the
test pass reads best.pt on every rank).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from engine import checkpoint, checkpoint_files, control, distributed, metrics, test_hooks
from engine.catalog import LOSSES, MIXES, MODELS, OPTIMIZERS, SAM_VARIANTS, SCHEDULES, Catalog
from engine.config import RunConfig, config_hash, config_to_dict, fast_options
from engine.data import DataBundle, ImageSet, load_data
from engine.errors import ConfigError
from engine.events import (
    BadStep,
    CheckpointSaved,
    EpochEnd,
    Evaluated,
    EventWriter,
    Finished,
    Resumed,
    RunStarted,
    Step,
)
from engine.loader import WaitClock, build_loader, jsd_split
from engine.loss_functions import jensen_shannon
from engine.optim import init_momentum, skips_on_device
from engine.runs import RunRegistry
from engine.sam import frozen_bn_stats, needs_closure

HEARTBEAT_EVERY_S = 10.0
CHECKPOINT_FORMAT = 2


class DivergedError(Exception):
    """Too many consecutive non-finite losses; the last good checkpoint is left intact."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name} but no CUDA device is available; use cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device = mps but MPS is not available; use cpu or auto")
    return torch.device(name)


def rank_device(device: torch.device, world: distributed.World) -> torch.device:
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


def build_component(catalog: Catalog, section: str, name: str, *args: Any, **params: Any) -> Any:
    """Build a catalog entry; its ValueError about the parameters is a config error."""
    try:
        return catalog.build(name, *args, **params)
    except ValueError as exc:
        raise ConfigError(f"{section} {name!r}: {exc}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        out = torch.empty(
            images.shape, dtype=self.dtype, device=images.device, memory_format=self.memory_format
        )
        return torch.addcmul(self.bias, images, self.scale, out=out)


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    count: int
    logits: torch.Tensor | None = None  # float32 [N, C] on CPU, when asked for


@dataclass
class LoopState:
    """Where the run stands: `epoch` epochs complete plus `epoch_step` steps of the next."""

    epoch: int = 0
    step: int = 0
    epoch_step: int = 0
    epoch_loss_sum: float = 0.0  # sums over the steps done in the current epoch
    epoch_correct: int = 0
    epoch_seen: int = 0
    epoch_time: float = 0.0
    train_time: float = 0.0  # over the whole run, all sessions
    images_seen: int = 0
    wall_time: float = 0.0
    bad_steps: int = 0  # consecutive non-finite losses


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        run_id: str,
        preset: str,
        events: EventWriter,
        registry: RunRegistry | None = None,
        progress: bool = True,
        resume: bool = False,
        config_changes: list[str] | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.run_id, self.preset = cfg, run_dir, run_id, preset
        self.world = distributed.world()
        if not self.world.is_main:  # only rank 0 writes events and the registry row
            events, registry = distributed.NullEventWriter(), None
        self.events, self.registry, self.progress = events, registry, progress
        self.resume, self.config_changes = resume, config_changes or []
        self.stop_signal: int | None = None  # set from a signal handler: stop at the next step
        self.stop_after_epoch = False  # set by a control request
        self.history: list[dict[str, Any]] = []
        self.best_val_top1: float | None = None
        self.best_epoch: int | None = None
        self.state = LoopState()
        self.writer = checkpoint.BackgroundWriter()
        self._last_heartbeat = time.time()
        self._last_save = time.time()
        self._next_event = math.inf  # when the next step event is due
        self._agreed_stop = self._agreed_due = False  # distributed: what the ranks agreed on

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg, world = self.cfg, self.world
        self.device = rank_device(resolve_device(cfg.train.device), world)
        if cfg.data.batch_size % world.size:
            raise ConfigError(
                f"data.batch_size = {cfg.data.batch_size} (the global batch) does not divide by "
                f"{world.size} processes; use a multiple of {world.size}"
            )
        distributed.init(self.device)
        seed_everything(cfg.train.seed)
        if not world.is_main:  # rank 0 loads (and downloads) first
            distributed.barrier()
        self.data: DataBundle = load_data(
            cfg.data.dataset,
            cfg.data.data_dir,
            val_size=cfg.data.val_size,
            subset=cfg.data.subset,
            seed=cfg.train.seed,
            download=cfg.data.download,
            progress=self.progress and world.is_main,
        )
        if world.is_main:
            distributed.barrier()
        if len(self.data.train) < cfg.data.batch_size:
            raise ConfigError(
                f"data.batch_size = {cfg.data.batch_size} is larger than the training set "
                f"({len(self.data.train)} images)"
            )
        self.amp, self.channels_last = fast_options(cfg.train, self.device.type)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        self.num_classes = len(self.data.class_names)
        torch.manual_seed(cfg.train.seed)
        model = build_component(
            MODELS, "model", cfg.model.name, self.num_classes, **cfg.model.params
        )
        if world.distributed and cfg.train.sync_bn:
            model = distributed.sync_batchnorm(model, self.device)
        self.model: nn.Module = model.to(
            self.device,
            memory_format=torch.channels_last if self.channels_last else torch.preserve_format,
        )
        self.ema: nn.Module | None = None
        if cfg.train.ema_decay is not None:
            self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.normalize = Normalizer(
            self.data.mean,
            self.data.std,
            self.device,
            self.channels_last,
            torch.bfloat16 if self.amp else None,
        )
        class_counts = torch.bincount(self.data.train.labels, minlength=self.num_classes).tolist()
        self.loss_fn = build_component(
            LOSSES, "loss", cfg.loss.name, self.num_classes, class_counts, **cfg.loss.params
        )
        self.optimizer = build_component(
            OPTIMIZERS, "optim", cfg.optim.name, self.model, **cfg.optim.params
        )
        if cfg.sam is not None:
            self.optimizer = build_component(
                SAM_VARIANTS, "sam", cfg.sam.name, self.optimizer, **cfg.sam.params
            )
        full_steps = len(self.data.train) // cfg.data.batch_size
        cap = cfg.train.max_steps_per_epoch
        self.steps_per_epoch = min(full_steps, cap) if cap else full_steps
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        factor = build_component(
            SCHEDULES,
            "schedule",
            cfg.schedule.name,
            self.total_steps,
            self.steps_per_epoch,
            **cfg.schedule.params,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, factor)
        self.found_inf: torch.Tensor | None = None
        if not world.distributed and skips_on_device(self.optimizer):
            self.found_inf = torch.zeros((), device=self.device)
            self.optimizer.found_inf = self.found_inf
            init_momentum(self.optimizer)
        self._step_finite = torch.ones(self.steps_per_epoch, dtype=torch.bool, device=self.device)
        self._step_loss = torch.zeros(self.steps_per_epoch, device=self.device)
        self._seen_per_step = cfg.data.batch_size  # global images per step
        self._eval_sets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.mixer = None
        if cfg.mix is not None:
            self.mixer = build_component(MIXES, "mix", cfg.mix.name, **cfg.mix.params)
        self.loader = build_loader(
            cfg, self.data.train, self.steps_per_epoch, self.device, world.rank, world.size
        )
        split = jsd_split([(a.name, a.params) for a in cfg.augment])
        self.jsd_weight = split.weight if split is not None else None
        # the step's network: DDP-wrapped and compiled when asked (the module stays the one saved)
        self.net: nn.Module = self.model
        if world.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        if cfg.train.compile:
            self.net = torch.compile(self.net, mode=cfg.train.compile_mode)  # type: ignore[assignment]
        self._crash_at = distributed.crash_step()  # test hooks: inert unless asked for
        self._pause_at = test_hooks.pause_steps()

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bf16 autocast when asked for; otherwise nothing (any device type, `meta` too)."""
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def _heartbeat(self) -> None:
        """Tell the registry this run is alive (rate-limited), so it never reads as crashed."""
        now = time.time()
        if self.registry and now - self._last_heartbeat > HEARTBEAT_EVERY_S:
            self.registry.heartbeat(self.run_id)
            self._last_heartbeat = now

    def _poll_control(self) -> None:
        """Act on requests a UI left in the run folder (see engine.control); rank 0 only."""
        if not self.world.is_main:
            return
        requests = control.pending(self.run_dir)
        if "checkpoint_now" in requests:
            self._save("last")
            control.done(self.run_dir, "checkpoint_now")
        if "stop_after_epoch" in requests:
            self.stop_after_epoch = True
            control.done(self.run_dir, "stop_after_epoch")

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, data: ImageSet, keep_logits: bool = False) -> EvalResult:
        """Top-1/top-5/loss of the evaluated weights (the EMA when kept, else the model).

        Distributed: each rank evaluates its `distributed.shard` of `data` with rank 0's
        BatchNorm statistics; sums (and, asked for, logits in order) cover the whole set."""
        net = self.ema if self.ema is not None else self.model
        distributed.broadcast_buffers(net)
        net.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros(2, dtype=torch.long, device=self.device)
        kept = []
        size = self.cfg.eval.batch_size
        first, stop = distributed.shard(len(data), self.world)
        on_device = self._on_device(data)
        for start in range(first, stop, size):
            end = min(start + size, stop)
            images, labels = on_device[0][start:end], on_device[1][start:end]
            with self._autocast():
                logits = net(self.normalize(images)).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
            correct += metrics.topk_correct(logits, labels, (1, 5))
            if keep_logits:  # gathered on the device when distributed
                kept.append(logits if self.world.distributed else logits.cpu())
            self._heartbeat()
        self.model.train()
        mine = loss_sum.new_tensor([float(stop - first)], dtype=torch.float64)
        totals = distributed.sum_across(
            torch.cat([loss_sum.double().view(1), correct.double(), mine])
        )
        total_loss, c1, c5, count = totals.tolist()
        n = max(int(count), 1)
        all_logits = torch.cat(kept) if kept else None
        if keep_logits and self.world.distributed:
            empty = torch.empty((0, self.num_classes), device=self.device)
            all_logits = distributed.gather_rows(
                all_logits if all_logits is not None else empty, len(data)
            ).cpu()
        return EvalResult(
            loss=total_loss / n,
            top1=c1 / n,
            top5=c5 / n,
            count=int(count),
            logits=all_logits,
        )

    def _on_device(self, data: ImageSet) -> tuple[torch.Tensor, torch.Tensor]:
        """`data`'s images and labels on the device, copied once per run (validation is read
        every epoch)."""
        key = id(data)
        if key not in self._eval_sets:
            self._eval_sets[key] = (data.images.to(self.device), data.labels.to(self.device))
        return self._eval_sets[key]

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint_state(self) -> dict[str, Any]:
        np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
        self.state.wall_time = self._wall()
        return {
            "format": CHECKPOINT_FORMAT,
            "run_id": self.run_id,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "loop": asdict(self.state),
            "history": self.history,
            "best_val_top1": self.best_val_top1,
            "best_epoch": self.best_epoch,
            "config": config_to_dict(self.cfg),
            "config_hash": config_hash(self.cfg),
            "rng": {
                "python": random.getstate(),
                "numpy": [
                    np_state[0],
                    torch.from_numpy(np_state[1].astype(np.int64)),
                    *np_state[2:],
                ],
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            },
            "versions": {
                "torch": str(torch.__version__),
                "numpy": np.__version__,
                "python": sys.version.split()[0],
            },
        }

    def _save(self, *kinds: str) -> None:
        """Checkpoint the current state as `last.pt` and/or `best.pt`, in the background: the
        training thread only copies the state to host memory (`checkpoint.BackgroundWriter`).
        The `checkpoint` events follow once the files are on disk (`_emit_saved`)."""
        if not self.world.is_main:  # rank 0 writes; every rank holds the same state
            return
        self._emit_saved()  # waits for the write in flight and reports it
        targets = [(self.run_dir / f"{kind}.pt", kind == "last") for kind in kinds]
        tag = (self.state.epoch, self.state.step)
        self.writer.submit(self._checkpoint_state(), targets, tag)
        self._last_save = time.time()

    def _flush_checkpoints(self) -> None:
        """Wait until every checkpoint asked for is on disk, then report them."""
        if self.world.is_main:
            self.writer.wait()
            self._emit_saved()

    def _emit_saved(self) -> None:
        if not self.writer.busy():
            self.writer.wait()  # raises what a finished write met
        for path, (epoch, step) in self.writer.done():
            kind = path.stem
            self.events.emit(CheckpointSaved(epoch=epoch, step=step, kind=kind, path=str(path)))

    def _restore(self) -> None:
        # loaded to the CPU: load_state_dict copies weights and optimizer state onto the
        # device, and the RNG states must stay CPU ByteTensors (set_rng_state refuses others)
        state, used, warning = checkpoint.load_with_fallback(self.run_dir / "last.pt")
        self.model.load_state_dict(state["model"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise ConfigError("train.ema_decay is set but the checkpoint has no EMA weights")
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.state = LoopState(**state["loop"])
        self.history = list(state["history"])
        self.best_val_top1, self.best_epoch = state["best_val_top1"], state["best_epoch"]
        rng = state["rng"]
        random.setstate(_as_tuple(rng["python"]))
        name, keys, *rest = rng["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.resumed_from = (used, warning)

    # ------------------------------------------------------------------ the loop

    def _wall(self) -> float:
        return self._wall_before + time.time() - self._session_start

    def run(self) -> dict[str, Any]:
        """Train, evaluate, write summary.json; returns the summary (status done/interrupted)."""
        self._session_start = time.time()
        self._wall_before = 0.0
        if self.world.is_main:  # a write cut short by a kill left its temp file behind
            checkpoint_files.remove_stale_temp_files(self.run_dir)
        self._setup()
        if self.resume:
            self._restore()
            self._wall_before = self.state.wall_time
        self._announce()
        cfg = self.cfg
        status = "done"
        try:
            status = self._train_epochs()
        except DivergedError:
            status = "diverged"
        except BaseException:
            with contextlib.suppress(BaseException):  # let a write in flight finish
                self.writer.wait()
            raise
        self._flush_checkpoints()  # best.pt is read by the test pass; nothing left in flight
        distributed.barrier()
        summary = self._summary(status)
        if status == "done" and cfg.eval.test:
            summary.update(self._test())
        summary["wall_s"] = self._wall()
        if self.world.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.registry:
            self.registry.finish(self.run_id, status, summary)
        self.events.emit(Finished(status=status, summary=summary))
        return summary

    def _announce(self) -> None:
        cfg, data = self.cfg, self.data
        info: dict[str, Any] = {
            "run_id": self.run_id,
            "preset": self.preset,
            "dataset": data.name,
            "synthetic": data.synthetic,
            "device": self._device_name(),
            "model": cfg.model.name,
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "epochs": cfg.train.epochs,
            "steps_per_epoch": self.steps_per_epoch,
            "batch_size": cfg.data.batch_size,
            "train_size": len(data.train),
            "val_size": len(data.val),
            "test_size": len(data.test),
            "config": config_to_dict(cfg),
            "pid": distributed.launcher_pid(),  # the process a UI signals to stop the run
        }
        if self.resume:
            used, warning = self.resumed_from
            self.events.emit(
                Resumed(
                    **info,
                    epoch=self.state.epoch,
                    step=self.state.step,
                    epoch_step=self.state.epoch_step,
                    checkpoint=str(used),
                    warning=warning,
                    config_changes=self.config_changes,
                )
            )
            if self.registry:
                self.registry.resume(
                    self.run_id, config=config_to_dict(cfg), epochs=cfg.train.epochs
                )
            return
        self.events.emit(RunStarted(**info))
        if self.registry:
            self.registry.start(
                self.run_id,
                preset=self.preset,
                dataset=data.name,
                model=cfg.model.name,
                config=config_to_dict(cfg),
                device=self._device_name(),
                epochs=cfg.train.epochs,
            )

    def _device_name(self) -> str:
        """`cpu`, `cuda:0`, ...; `cuda x8` for 8 data-parallel processes."""
        if self.world.distributed:
            return f"{self.device.type} x{self.world.size}"
        return str(self.device)

    def _train_epochs(self) -> str:
        cfg, st = self.cfg, self.state
        self.model.train()
        while st.epoch < cfg.train.epochs:
            epoch = st.epoch + 1
            self.loader.start(epoch, st.epoch_step)
            # this rank's sums; the epoch's sums so far (global) start on rank 0 only
            base = self.world.is_main
            loss_sum = torch.tensor(
                st.epoch_loss_sum if base else 0.0, dtype=torch.float64, device=self.device
            )
            correct = torch.tensor(
                st.epoch_correct if base else 0, dtype=torch.long, device=self.device
            )
            segment_start = time.time()
            self._next_event = segment_start + cfg.train.log_interval_s
            self.wait = WaitClock()
            self._epoch_loop_start = time.time()
            self._checked_upto = st.epoch_step
            for images, labels in self.wait.timed(iter(self.loader)):
                self._step(images, labels, loss_sum, correct)
                if st.step == self._crash_at:
                    distributed.crash()
                if st.step in self._pause_at:  # checkpoints asked for are on disk, then stop
                    self._flush_checkpoints()
                    test_hooks.pause()
                now = time.time()
                st.epoch_time += now - segment_start
                segment_start = now
                if self.world.distributed:  # what every rank agreed on in the step
                    due, stop = self._agreed_due, self._agreed_stop
                else:
                    due, stop = now >= self._next_event, self.stop_signal is not None
                if due or st.epoch_step == self.steps_per_epoch:
                    self._next_event = now + cfg.train.log_interval_s
                    self._read_sums(loss_sum, correct)
                    self._emit_step(epoch)
                    self._heartbeat()
                    self._emit_saved()
                    self._poll_control()
                    if now - self._last_save > cfg.train.checkpoint_every_s:
                        self._save("last")
                if stop:
                    break
            self._read_sums(loss_sum, correct)
            if st.epoch_step < self.steps_per_epoch:  # stopped by a signal inside the epoch
                self._save("last")
                return "interrupted"
            self._end_epoch(epoch)
            if self._agree_epoch_stop():
                return "interrupted"
        return "done"

    def _read_sums(self, loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        """The epoch's loss and correct-count sums so far, over every rank, into the state; with
        the device-side skip also the steps' finite flags since the last read (`_check_steps`)."""
        st = self.state
        first = self._checked_upto
        parts = [loss_sum.view(1), correct.double().view(1)]
        if self.found_inf is not None and st.epoch_step > first:
            window = slice(first, st.epoch_step)
            parts += [self._step_finite[window].double(), self._step_loss[window].double()]
        totals = distributed.sum_across(torch.cat(parts)).tolist()
        st.epoch_loss_sum, st.epoch_correct = totals[0], int(totals[1])
        if len(totals) > 2:
            n = (len(totals) - 2) // 2
            self._check_steps(first, totals[2 : 2 + n], totals[2 + n :])
        self._checked_upto = st.epoch_step

    def _check_steps(self, first: int, finite: list[float], losses: list[float]) -> None:
        """Account for the steps the device skipped: `bad_step` events, the consecutive count,
        their images out of the throughput counts, and divergence."""
        st = self.state
        for offset, (ok, loss) in enumerate(zip(finite, losses, strict=True)):
            if ok:
                st.bad_steps = 0
                continue
            st.bad_steps += 1
            st.epoch_seen -= self._seen_per_step
            st.images_seen -= self._seen_per_step
            step = st.epoch * self.steps_per_epoch + first + offset + 1
            self.events.emit(
                BadStep(epoch=st.epoch + 1, step=step, loss=loss, consecutive=st.bad_steps)
            )
            if st.bad_steps >= self.cfg.train.max_bad_steps:
                raise DivergedError

    def _agree_epoch_stop(self) -> bool:
        """Stop after this epoch (a signal, or a control request that only rank 0 reads)?"""
        if self.world.distributed:
            flags = torch.tensor(
                [float(self.stop_signal or 0), float(self.stop_after_epoch)], device=self.device
            )
            signum, after_epoch = distributed.agree_max(flags).tolist()
            self.stop_signal = int(signum) or None
            self.stop_after_epoch = bool(after_epoch)
        return self.stop_signal is not None or self.stop_after_epoch

    def _finite(self, loss: torch.Tensor) -> bool:
        """Whether to apply this step's update (the loss is finite).

        Distributed, on every rank at once: one all-reduce (max) of [non-finite loss, stop
        signal, step event due], so all ranks skip the same steps, stop after the same step and
        read their sums together, and none waits forever at a collective the others skipped."""
        if not self.world.distributed:
            return bool(torch.isfinite(loss))
        flags = torch.stack(
            [
                (~torch.isfinite(loss.detach())).float(),
                loss.new_tensor(float(self.stop_signal or 0)),
                loss.new_tensor(float(time.time() >= self._next_event)),
            ]
        )
        bad, signum, due = distributed.agree_max(flags).tolist()
        if signum:
            self.stop_signal = int(signum)
        self._agreed_stop, self._agreed_due = bool(signum), bool(due)
        return not bad

    def _step(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        loss_sum: torch.Tensor,
        correct: torch.Tensor,
    ) -> None:
        """One optimizer step; a non-finite loss skips the update and is recorded.

        With SAM the optimizer takes a closure: a second forward/backward at the perturbed
        weights, with BatchNorm running statistics left as the first pass set them.
        """
        st = self.state
        targets: torch.Tensor = labels
        if self.mixer is not None:  # soft targets [B, C]; its draws depend on (seed, step) only
            g = torch.Generator().manual_seed(self.cfg.train.seed * 1_000_003 + st.step)
            images, targets = self.mixer(images, labels, self.num_classes, g)
        inputs = self.normalize(images)
        loss, logits = self._loss(inputs, targets)
        self.optimizer.zero_grad(set_to_none=True)
        if self.found_inf is not None:
            self._step_on_device(loss, logits, labels, loss_sum, correct)
        elif self._finite(loss):
            loss.backward()
            if needs_closure(self.optimizer):

                def closure() -> torch.Tensor:
                    with frozen_bn_stats(self.model):
                        second = self._loss(inputs, targets)[0]
                    second.backward()
                    return second

                self.optimizer.step(closure)
            else:
                self.optimizer.step()
            if self.ema is not None:
                self._update_ema()
            st.bad_steps = 0
            loss_sum += loss.detach().double() * labels.shape[0]
            correct += (logits.detach().argmax(dim=1) == labels).sum()
            seen = labels.shape[0] * self.world.size  # every rank trained on a slice this size
            st.epoch_seen += seen
            st.images_seen += seen
        else:
            st.bad_steps += 1
            self.events.emit(
                BadStep(
                    epoch=st.epoch + 1,
                    step=st.step + 1,
                    loss=float(loss.detach()),
                    consecutive=st.bad_steps,
                )
            )
            if st.bad_steps >= self.cfg.train.max_bad_steps:
                raise DivergedError
        self.scheduler.step()
        st.step += 1
        st.epoch_step += 1

    def _step_on_device(
        self,
        loss: torch.Tensor,
        logits: torch.Tensor,
        labels: torch.Tensor,
        loss_sum: torch.Tensor,
        correct: torch.Tensor,
    ) -> None:
        """The update, skipped on the device when the loss is not finite (no host read)."""
        st = self.state
        assert self.found_inf is not None
        value = loss.detach()
        finite = torch.isfinite(value)
        self.found_inf.copy_(~finite)
        slot = st.epoch_step % self.steps_per_epoch  # (benchmarks step outside the epoch loop)
        self._step_finite[slot] = finite
        self._step_loss[slot] = value
        loss.backward()
        self.optimizer.step()  # fused: a no-op where found_inf is set
        if self.ema is not None:
            self._update_ema(finite)
        loss_sum += torch.where(finite, value.double(), 0.0) * labels.shape[0]
        correct += (logits.detach().argmax(dim=1) == labels).sum() * finite
        seen = labels.shape[0] * self.world.size  # skipped steps are taken out when read
        st.epoch_seen += seen
        st.images_seen += seen

    def _loss(
        self, inputs: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, logits of the first view); with AugMix's JSD the batch holds three views."""
        with self._autocast():
            logits = self.net(inputs).float()
        if self.jsd_weight is None:
            return self.loss_fn(logits, targets), logits
        views = logits.chunk(3)
        loss = self.loss_fn(views[0], targets) + self.jsd_weight * jensen_shannon(views)
        return loss, views[0]

    @torch.no_grad()
    def _update_ema(self, finite: torch.Tensor | None = None) -> None:
        """ema <- decay * ema + (1 - decay) * weights; buffers (BN statistics) are copied.
        `finite` (a device flag): a skipped step moves the EMA by exactly zero."""
        assert self.ema is not None and self.cfg.train.ema_decay is not None
        weight: float | torch.Tensor = 1.0 - self.cfg.train.ema_decay
        if finite is not None:
            weight = finite.float() * weight
        for kept, live in zip(self.ema.parameters(), self.model.parameters(), strict=True):
            kept.lerp_(live.detach(), weight)
        for kept_buffer, live_buffer in zip(self.ema.buffers(), self.model.buffers(), strict=True):
            kept_buffer.copy_(live_buffer)

    def _memory_mb(self) -> float | None:
        if self.device.type != "cuda":
            return None
        return torch.cuda.max_memory_allocated(self.device) / 2**20

    def _emit_step(self, epoch: int) -> None:
        st = self.state
        seen = max(st.epoch_seen, 1)
        looped = time.time() - self._epoch_loop_start
        self.events.emit(
            Step(
                epoch=epoch,
                step=st.step,
                epoch_step=st.epoch_step,
                steps_per_epoch=self.steps_per_epoch,
                total_steps=self.total_steps,
                loss=st.epoch_loss_sum / seen,
                top1=st.epoch_correct / seen,
                lr=self.optimizer.param_groups[0]["lr"],
                img_per_s=st.epoch_seen / max(st.epoch_time, 1e-9),
                data_wait=min(self.wait.waited / looped, 1.0) if looped > 0 else None,
                memory_mb=self._memory_mb(),
            )
        )

    def _end_epoch(self, epoch: int) -> None:
        cfg, st, data = self.cfg, self.state, self.data
        val = self.evaluate(data.val) if len(data.val) else None
        if val is not None and (self.best_val_top1 is None or val.top1 > self.best_val_top1):
            self.best_val_top1, self.best_epoch = val.top1, epoch
        seen = max(st.epoch_seen, 1)
        record = {
            "epoch": epoch,
            "train_loss": st.epoch_loss_sum / seen,
            "train_top1": st.epoch_correct / seen,
            "val_loss": val.loss if val else None,
            "val_top1": val.top1 if val else None,
            "val_top5": val.top5 if val else None,
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_s": st.epoch_time,
        }
        self.history.append(record)
        st.train_time += st.epoch_time
        epoch_img_per_s = st.epoch_seen / max(st.epoch_time, 1e-9)
        st.epoch, st.epoch_step = epoch, 0
        st.epoch_loss_sum, st.epoch_correct, st.epoch_seen, st.epoch_time = 0.0, 0, 0, 0.0
        kinds = ("last", "best") if val is None or self.best_epoch == epoch else ("last",)
        self._save(*kinds)
        distributed.barrier()  # every rank has the same state; rank 0 writes it
        self.events.emit(
            EpochEnd(
                epoch=epoch,
                epochs=cfg.train.epochs,
                train_loss=record["train_loss"],
                train_top1=record["train_top1"],
                val_loss=record["val_loss"],
                val_top1=record["val_top1"],
                val_top5=record["val_top5"],
                lr=record["lr"],
                epoch_s=record["epoch_s"],
                img_per_s=epoch_img_per_s,
                best_val_top1=self.best_val_top1,
                best_epoch=self.best_epoch,
                eta_s=self._wall() / epoch * (cfg.train.epochs - epoch),
            )
        )
        if self.registry:
            self.registry.record_epoch(
                self.run_id,
                epoch,
                {**record, "best_val_top1": self.best_val_top1, "best_epoch": self.best_epoch},
            )

    def _summary(self, status: str) -> dict[str, Any]:
        st, data = self.state, self.data
        return {
            "run_id": self.run_id,
            "status": status,
            "preset": self.preset,
            "dataset": data.name,
            "synthetic": data.synthetic,
            "model": self.cfg.model.name,
            "num_params": sum(p.numel() for p in self.model.parameters()),
            "device": self._device_name(),
            "epochs": self.cfg.train.epochs,
            "epochs_done": st.epoch,
            "step": st.step,
            "train_size": len(data.train),
            "val_size": len(data.val),
            "test_size": len(data.test),
            "best_val_top1": self.best_val_top1,
            "best_epoch": self.best_epoch,
            "img_per_s": st.images_seen / st.train_time if st.train_time > 0 else None,
            "train_s": st.train_time,
            "run_dir": str(self.run_dir),
        }

    def _test(self) -> dict[str, Any]:
        """Evaluate the last weights, then the best-on-validation checkpoint, on the test set.

        When the best epoch is the last one, the weights are the same: one pass serves both.
        """
        test = self.data.test
        last_epoch = self.history[-1]["epoch"] if self.history else 0
        best_state = checkpoint.load(self.run_dir / "best.pt")
        best_epoch = int(best_state["loop"]["epoch"])
        best_is_last = best_epoch == last_epoch
        last = self.evaluate(test, keep_logits=best_is_last)
        self.events.emit(
            Evaluated(
                split="test",
                checkpoint="last",
                epoch=last_epoch,
                loss=last.loss,
                top1=last.top1,
                top5=last.top5,
                count=last.count,
            )
        )
        if best_is_last:
            best = last
        else:
            self.model.load_state_dict(best_state["model"])
            if self.ema is not None:
                self.ema.load_state_dict(best_state["ema"])
            best = self.evaluate(test, keep_logits=True)
        assert best.logits is not None
        if not self.world.is_main:  # the other ranks only help evaluate; rank 0 writes, runs TTA
            return {}
        probs = torch.softmax(best.logits, dim=1).numpy()
        labels = test.labels.numpy()
        confusion = metrics.confusion_matrix(
            best.logits.argmax(dim=1), test.labels, self.num_classes
        )
        curves = metrics.per_class_curves(probs, labels)
        eval_file = self.run_dir / "eval.npz"
        np.savez_compressed(
            eval_file,
            confusion=confusion.numpy(),
            labels=labels,
            probs=probs.astype(np.float16),
            class_names=np.array(self.data.class_names),
            coarse_names=np.array(self.data.coarse_names),
            fine_to_coarse=np.array(self.data.fine_to_coarse),
            **curves,
        )
        self.events.emit(
            Evaluated(
                split="test",
                checkpoint="best",
                epoch=best_epoch,
                loss=best.loss,
                top1=best.top1,
                top5=best.top5,
                count=best.count,
                eval_file=str(eval_file),
            )
        )
        tta: dict[str, Any] = {}
        if self.cfg.eval.tta:  # test-time augmentation of the same best weights
            from engine.tta import evaluate_tta

            result = evaluate_tta(
                self.ema if self.ema is not None else self.model,
                test,
                self.cfg.eval.tta,
                normalize=self.normalize,
                device=self.device,
                batch_size=self.cfg.eval.batch_size,
                amp=self.amp,
                on_batch=self._heartbeat,
            )
            self.events.emit(result.event(checkpoint="best", epoch=best_epoch))
            tta["tta"] = result.to_dict()

        def clean(values: np.ndarray) -> list[float | None]:
            return [None if math.isnan(v) else round(float(v), 6) for v in values]

        return {
            "test_top1": best.top1,
            "test_top5": best.top5,
            "test_loss": best.loss,
            "test_top1_last": last.top1,
            "test_top5_last": last.top5,
            "macro_ap": curves["macro_ap"],
            "macro_auc": curves["macro_auc"],
            "per_class_ap": clean(curves["ap"]),
            "per_class_auc": clean(curves["auc"]),
            **tta,
        }


def _as_tuple(value: Any) -> Any:
    """random.setstate needs tuples where a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value
