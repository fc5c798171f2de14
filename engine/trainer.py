"""The training loop: one run from a resolved config to checkpoints and events.

Everything a consumer sees, and the run's only record, is the event stream (`engine.events`);
the trainer never prints. Batches come from `engine.loader` (the dataset on the device with
batched augmentation, or the per-image torchvision reference) as uint8, normalised on the device
inside the step.

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

Data-parallel under torchrun (`engine.distributed` gives the conventions; a no-op for a single
process): DDP averages the gradients (so SAM's perturbation and second pass use all-reduced
gradients too). Every decision that changes which collectives run is agreed by all ranks: the
finite-loss check, a stop by signal and "a step event is due" are one small all-reduce (max) per
step; a stop after the epoch is agreed at its end, one in the test pass before each of its
batches (`engine.evaluation`). Sums are summed over ranks when read, so
events, checkpoints and the history carry global numbers. Only rank 0 writes; the others wait at
a barrier after each epoch's checkpoints (the test pass reads best.pt on every rank).

Around the loop: components come from `engine.build`, the device from `engine.device`, evaluation
from `engine.evaluation` (the test at the session's end: `engine.run_end`), a checkpoint's
contents from `engine.loop_state`, events from `engine.run_record`."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine import (
    build,
    checkpoint,
    control,
    distributed,
    loop_state,
    run_end,
    run_record,
    test_hooks,
)
from engine import device as devices
from engine import world as torchrun
from engine.checkpoint_files import remove_stale_temp_files
from engine.config import RunConfig, fast_options
from engine.data import DataBundle, ImageSet
from engine.evaluation import EvalResult, Evaluator
from engine.events import EventWriter
from engine.loader import WaitClock
from engine.loop_state import LoopState
from engine.loss_functions import jensen_shannon
from engine.sam import frozen_bn_stats, needs_closure


class DivergedError(Exception):
    """Too many consecutive non-finite losses; the last good checkpoint is left intact."""


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        run_id: str,
        preset: str,
        events: EventWriter,
        progress: bool = True,
        resume: bool = False,
        force: bool = False,
    ) -> None:
        """`events`: the run's record (the engine process gives one whose sinks derive the
        registry row, summary.json and the card from it). `force`: a resume may change the
        recipe the checkpoint was trained with (else such a change is refused)."""
        self.cfg, self.run_dir, self.run_id, self.preset = cfg, run_dir, run_id, preset
        self.world = torchrun.world()
        if not self.world.is_main:  # only rank 0 writes events
            events = distributed.NullEventWriter()
        self.events, self.progress = events, progress
        self.resume, self.force = resume, force
        self.config_changes: list[str] = []  # recipe keys a resume changes (with force)
        self.on_resume_accepted: Callable[[], None] = lambda: None  # all checks passed
        self.stop_signal: int | None = None  # set from a signal handler: stop at the next step
        self.stop_after_epoch = False  # set by a control request
        self.history: list[dict[str, Any]] = []
        self.best_val_top1: float | None = None
        self.best_epoch: int | None = None
        self.state = LoopState()
        main = self.world.is_main
        self.checkpoints = checkpoint.RunCheckpoints(run_dir, events, main)
        self.record = run_record.RunRecord(run_dir, run_id, preset, events)
        self._next_event = math.inf  # when the next step event is due
        self._agreed_stop = self._agreed_due = False  # distributed: what the ranks agreed on

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg, world = self.cfg, self.world
        self.device = devices.rank_device(devices.resolve_device(cfg.train.device), world)
        build.check_batch_divides(cfg, world)
        distributed.init(self.device)
        devices.seed_everything(cfg.train.seed)
        self.data: DataBundle = build.load_run_data(cfg, progress=self.progress, world=world)
        build.check_batch_fits(cfg, self.data)
        self.amp, self.channels_last = fast_options(cfg.train, self.device.type)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels once
        self.num_classes = len(self.data.class_names)
        torch.manual_seed(cfg.train.seed)
        model = build.build_model(cfg, self.num_classes)
        if world.distributed and cfg.train.sync_bn:
            model = distributed.sync_batchnorm(model, self.device)
        self.model: nn.Module = devices.to_device(model, self.device, self.channels_last)
        self.ema: nn.Module | None = None
        if cfg.train.ema_decay is not None:
            self.ema = copy.deepcopy(self.model).requires_grad_(False)
        self.normalize = devices.Normalizer.of(self.data, self.device, self.channels_last, self.amp)
        self.loss_fn = build.build_loss(cfg, self.data.train.labels, self.num_classes)
        self.optimizer = build.build_optimizer(cfg, self.model)
        self.steps_per_epoch = build.steps_per_epoch(cfg, len(self.data.train))
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.scheduler = build.build_schedule(
            cfg, self.optimizer, self.total_steps, self.steps_per_epoch
        )
        self.found_inf = build.device_side_skip(self.optimizer, self.device, world)
        self._step_finite = torch.ones(self.steps_per_epoch, dtype=torch.bool, device=self.device)
        self._step_loss = torch.zeros(self.steps_per_epoch, device=self.device)
        self._seen_per_step = cfg.data.batch_size  # global images per step
        self.evaluator = Evaluator(
            cfg.eval,
            self.device,
            world,
            self.normalize,
            self.amp,
            self.num_classes,
            self.record,
            lambda: self.stop_signal,
        )
        self.mixer = build.build_mix(cfg)
        self.loader = build.build_train_loader(
            cfg, self.data.train, self.steps_per_epoch, self.device, world
        )
        self.jsd_weight = build.jsd_weight(cfg)
        # the step's network: DDP-wrapped and compiled when asked (the module stays the one saved)
        self.net = devices.step_network(
            self.model, self.device, world, cfg.train.compile, cfg.train.compile_mode
        )
        self._crash_at = distributed.crash_step()  # test hooks: inert unless asked for
        self._pause_at = test_hooks.pause_steps()
        self.facts = run_record.RunFacts(
            cfg,
            self.data,
            sum(p.numel() for p in self.model.parameters()),
            devices.device_name(self.device, world),
            self.steps_per_epoch,
        )

    def _poll_control(self) -> None:
        """Act on requests a UI left in the run folder (see engine.control); rank 0 only."""
        if self.world.is_main and control.serve(self.run_dir, lambda: self._save("last")):
            self.stop_after_epoch = True

    def evaluate(self, data: ImageSet, keep_logits: bool = False) -> EvalResult:
        """Top-1/top-5/loss of the evaluated weights (the EMA when kept, else the model)."""
        net = self.ema if self.ema is not None else self.model
        return self.evaluator.evaluate(net, data, self.model, keep_logits, phase=("validating", ""))

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint_state(self) -> dict[str, Any]:
        self.state.wall_time = self._wall()
        return loop_state.checkpoint_state(
            run_id=self.run_id,
            cfg=self.cfg,
            model=self.model,
            ema=self.ema,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            loop=self.state,
            history=self.history,
            best_val_top1=self.best_val_top1,
            best_epoch=self.best_epoch,
        )

    def _save(self, *kinds: str) -> None:
        """Checkpoint the current state as `last.pt` and/or `best.pt`, in the background."""
        self.checkpoints.save(kinds, (self.state.epoch, self.state.step), self._checkpoint_state)

    def _restore(self) -> None:
        """Continue from last.pt (else last.prev.pt), loaded to the CPU (see loop_state)."""
        state, used, warning = checkpoint.load_with_fallback(self.run_dir / "last.pt")
        loop_state.check_training_state(state, used)
        self.config_changes = loop_state.check_config(
            state, self.cfg, used, self.force, run_record.last_resumed_config(self.run_dir)
        )
        self.state, self.history, self.best_val_top1, self.best_epoch = loop_state.restore_training(
            state, used, self.model, self.ema, self.optimizer, self.scheduler
        )
        self.resumed_from = (used, warning)
        self.on_resume_accepted()

    # ------------------------------------------------------------------ the loop

    def _wall(self) -> float:
        return self._wall_before + time.time() - self._session_start

    def run(self) -> dict[str, Any]:
        """Train, evaluate, emit `finished`; returns its summary (status done/interrupted/...)."""
        self._session_start = time.time()
        self._wall_before = 0.0
        self._setup()
        if self.resume:
            self._restore()
            self._wall_before = self.state.wall_time
        if self.world.is_main:  # the run is ours (a resume accepted): a write cut short by a
            remove_stale_temp_files(self.run_dir)  # kill left its temp file behind
        resumed = (self.state, *self.resumed_from, self.config_changes) if self.resume else None
        self.record.started(self.facts, resumed)
        status = "done"
        try:
            status = self._train_epochs()
        except DivergedError:
            status = "diverged"
        except BaseException:
            with contextlib.suppress(BaseException):  # let a write in flight finish
                self.checkpoints.writer.wait()
            raise
        self.checkpoints.flush()  # best.pt is read by the test pass; nothing left in flight
        distributed.barrier()
        summary = self.record.summary(
            self.facts, status, self.state, self.best_val_top1, self.best_epoch
        )
        summary = run_end.tested(self, summary)
        summary.wall_s = self._wall()
        self.record.finished(summary)
        return summary.to_dict()

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
                    self.checkpoints.flush()
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
                    self.checkpoints.report()
                    self._poll_control()
                    if now - self.checkpoints.last_save > cfg.train.checkpoint_every_s:
                        self._save("last")
                if stop:
                    break
            self._read_sums(loss_sum, correct)
            if st.epoch_step < self.steps_per_epoch:  # stopped by a signal inside the epoch
                self._save("last")
                return "interrupted"
            self._end_epoch(epoch)
            if st.epoch < cfg.train.epochs and self._agree_epoch_stop():  # (after the last: done)
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
            st.epoch_seen -= self._seen_per_step
            st.images_seen -= self._seen_per_step
            self._bad_step(st.epoch * self.steps_per_epoch + first + offset + 1, loss)

    def _bad_step(self, step: int, loss: float) -> None:
        """A non-finite loss at `step`: its `bad_step` event; too many in a row diverge."""
        st = self.state
        st.bad_steps += 1
        self.record.bad_step(st.epoch + 1, step, loss, st.bad_steps)
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
            self._bad_step(st.step + 1, float(loss.detach()))
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
        with devices.autocast(self.device, self.amp):
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

    def _emit_step(self, epoch: int) -> None:
        looped = time.time() - self._epoch_loop_start
        self.record.step(
            epoch,
            self.state,
            self.steps_per_epoch,
            self.total_steps,
            lr=self.optimizer.param_groups[0]["lr"],
            data_wait=min(self.wait.waited / looped, 1.0) if looped > 0 else None,
            memory_mb=devices.peak_memory_mb(self.device),
        )
        self.evaluator.sample_system()  # the system panel's numbers, at most ~1 a second

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
        epoch_img_per_s = st.close_epoch(epoch)
        kinds = ("last", "best") if val is None or self.best_epoch == epoch else ("last",)
        self._save(*kinds)
        distributed.barrier()  # every rank has the same state; rank 0 writes it
        self.record.epoch_ended(
            record,
            epochs=cfg.train.epochs,
            img_per_s=epoch_img_per_s,
            best_val_top1=self.best_val_top1,
            best_epoch=self.best_epoch,
            eta_s=self._wall() / epoch * (cfg.train.epochs - epoch),
        )
