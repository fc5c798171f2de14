"""The training loop: one run from a resolved config to checkpoints, events and a summary.

Everything a consumer sees goes through the event stream (`engine.events`); the trainer never
prints. Data path here is the per-image torchvision reference (a DataLoader over uint8 tensors);
normalisation happens on the device inside the step.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from engine import checkpoint, control, metrics
from engine.augment import build_pipeline
from engine.config import RunConfig, config_hash, config_to_dict
from engine.data import DataBundle, ImageSet, load_data
from engine.errors import ConfigError
from engine.events import (
    CheckpointSaved,
    EpochEnd,
    Evaluated,
    EventWriter,
    Finished,
    RunStarted,
    Step,
)
from engine.losses import LOSSES
from engine.models import MODELS
from engine.optim import OPTIMIZERS
from engine.registry import Registry
from engine.runs import RunRegistry
from engine.schedule import SCHEDULES

HEARTBEAT_EVERY_S = 10.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device = {name} but no CUDA device is available; use cpu or auto")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device = mps but MPS is not available; use cpu or auto")
    return torch.device(name)


def build_component(
    registry: Registry[Any], section: str, name: str, *args: Any, **params: Any
) -> Any:
    """Build a registry entry; a builder's ValueError about its parameters is a config error."""
    try:
        return registry.build(name, *args, **params)
    except ValueError as exc:
        raise ConfigError(f"{section} {name!r}: {exc}") from None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class AugmentedImages(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Per-image reference path: one uint8 [3, 32, 32] image at a time through `transform`."""

    def __init__(self, data: ImageSet, transform: Any) -> None:
        self.images, self.labels, self.transform = data.images, data.labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


class Normalizer:
    """uint8 [B, 3, H, W] -> float [B, 3, H, W] normalised by the training mean/std, on device."""

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        channels_last: bool,
    ) -> None:
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, 3, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(
            1, 3, 1, 1
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() * self.scale - self.shift
        return x.contiguous(memory_format=self.memory_format)


@dataclass
class EvalResult:
    loss: float
    top1: float
    top5: float
    count: int
    logits: torch.Tensor | None = None  # float32 [N, C] on CPU, when asked for


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
    ) -> None:
        self.cfg, self.run_dir, self.run_id, self.preset = cfg, run_dir, run_id, preset
        self.events, self.registry, self.progress = events, registry, progress
        self.stop_signal: int | None = None  # set from a signal handler: stop at the next step
        self.stop_after_epoch = False  # set by a control request
        self.history: list[dict[str, Any]] = []
        self.best_val_top1: float | None = None
        self.best_epoch: int | None = None
        self._last_heartbeat = time.time()

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg = self.cfg
        self.device = resolve_device(cfg.train.device)
        seed_everything(cfg.train.seed)
        self.data: DataBundle = load_data(
            cfg.data.dataset,
            cfg.data.data_dir,
            val_size=cfg.data.val_size,
            subset=cfg.data.subset,
            seed=cfg.train.seed,
            download=cfg.data.download,
            progress=self.progress,
        )
        if len(self.data.train) < cfg.data.batch_size:
            raise ConfigError(
                f"data.batch_size = {cfg.data.batch_size} is larger than the training set "
                f"({len(self.data.train)} images)"
            )
        cuda = self.device.type == "cuda"
        self.amp = cuda and cfg.train.bf16
        self.channels_last = cuda and cfg.train.channels_last
        self.num_classes = len(self.data.class_names)
        torch.manual_seed(cfg.train.seed)
        model = build_component(
            MODELS, "model", cfg.model.name, self.num_classes, **cfg.model.params
        )
        self.model: nn.Module = model.to(
            self.device,
            memory_format=torch.channels_last if self.channels_last else torch.preserve_format,
        )
        self.normalize = Normalizer(self.data.mean, self.data.std, self.device, self.channels_last)
        self.loss_fn = build_component(
            LOSSES, "loss", cfg.loss.name, self.num_classes, **cfg.loss.params
        )
        self.optimizer = build_component(
            OPTIMIZERS, "optim", cfg.optim.name, self.model, **cfg.optim.params
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
        transform = build_pipeline([(a.name, a.params) for a in cfg.augment])
        self.loader_generator = torch.Generator()
        self.loader = DataLoader(
            AugmentedImages(self.data.train, transform),
            batch_size=cfg.data.batch_size,
            shuffle=True,
            drop_last=True,
            num_workers=cfg.data.num_workers,
            persistent_workers=cfg.data.num_workers > 0,
            pin_memory=cuda,
            generator=self.loader_generator,
        )

    def _heartbeat(self) -> None:
        """Tell the registry this run is alive (rate-limited), so it never reads as crashed."""
        now = time.time()
        if self.registry and now - self._last_heartbeat > HEARTBEAT_EVERY_S:
            self.registry.heartbeat(self.run_id)
            self._last_heartbeat = now

    def _poll_control(self, epoch: int, step: int, epoch_step: int) -> None:
        """Act on requests a UI left in the run folder (see engine.control)."""
        requests = control.pending(self.run_dir)
        if "checkpoint_now" in requests:
            if epoch_step < self.steps_per_epoch:  # at an epoch's end the regular save follows
                self._save("last", epoch - 1, step, epoch_step)
            control.done(self.run_dir, "checkpoint_now")
        if "stop_after_epoch" in requests:
            self.stop_after_epoch = True
            control.done(self.run_dir, "stop_after_epoch")

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, data: ImageSet, keep_logits: bool = False) -> EvalResult:
        self.model.eval()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros(2, dtype=torch.long, device=self.device)
        kept = []
        for start in range(0, len(data), self.cfg.eval.batch_size):
            images = data.images[start : start + self.cfg.eval.batch_size].to(
                self.device, non_blocking=True
            )
            labels = data.labels[start : start + self.cfg.eval.batch_size].to(
                self.device, non_blocking=True
            )
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                logits = self.model(self.normalize(images)).float()
            loss_sum += nn.functional.cross_entropy(logits, labels, reduction="sum")
            correct += metrics.topk_correct(logits, labels, (1, 5))
            if keep_logits:
                kept.append(logits.cpu())
            self._heartbeat()
        n = max(len(data), 1)
        c1, c5 = correct.tolist()
        return EvalResult(
            loss=loss_sum.item() / n,
            top1=c1 / n,
            top5=c5 / n,
            count=len(data),
            logits=torch.cat(kept) if kept else None,
        )

    # ------------------------------------------------------------------ checkpoints

    def _state(self, epoch: int, step: int, epoch_step: int) -> dict[str, Any]:
        """Everything a run is: `epoch` epochs complete plus `epoch_step` steps of the next."""
        np_state: tuple[Any, ...] = np.random.get_state()  # type: ignore[assignment]
        return {
            "format": 1,
            "run_id": self.run_id,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": epoch,
            "step": step,
            "epoch_step": epoch_step,
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
                "loader": self.loader_generator.get_state(),
            },
            "versions": {"torch": str(torch.__version__), "python": sys.version.split()[0]},
        }

    def _save(self, kind: str, epoch: int, step: int, epoch_step: int = 0) -> None:
        path = self.run_dir / f"{kind}.pt"
        checkpoint.save_atomic(self._state(epoch, step, epoch_step), path)
        self.events.emit(CheckpointSaved(epoch=epoch, kind=kind, path=str(path)))

    # ------------------------------------------------------------------ the loop

    def run(self) -> dict[str, Any]:
        """Train, evaluate, write summary.json; returns the summary (status done/interrupted)."""
        t0 = time.time()
        self._setup()
        cfg, data = self.cfg, self.data
        num_params = sum(p.numel() for p in self.model.parameters())
        self.events.emit(
            RunStarted(
                run_id=self.run_id,
                preset=self.preset,
                dataset=data.name,
                synthetic=data.synthetic,
                device=str(self.device),
                model=cfg.model.name,
                num_params=num_params,
                epochs=cfg.train.epochs,
                steps_per_epoch=self.steps_per_epoch,
                batch_size=cfg.data.batch_size,
                train_size=len(data.train),
                val_size=len(data.val),
                test_size=len(data.test),
                config=config_to_dict(cfg),
                pid=os.getpid(),
            )
        )
        if self.registry:
            self.registry.start(
                self.run_id,
                preset=self.preset,
                dataset=data.name,
                model=cfg.model.name,
                config=config_to_dict(cfg),
                device=str(self.device),
                epochs=cfg.train.epochs,
            )
        step = 0
        train_time = 0.0
        images_seen = 0
        status = "done"
        epoch = 0
        for epoch in range(1, cfg.train.epochs + 1):
            self.model.train()
            self.loader_generator.manual_seed(cfg.train.seed * 100_003 + epoch)
            loss_sum = torch.zeros((), device=self.device)
            correct = torch.zeros((), dtype=torch.long, device=self.device)
            seen = 0
            epoch_start = time.time()
            next_event = epoch_start + cfg.train.log_interval_s
            for epoch_step, (images, labels) in enumerate(self.loader, start=1):
                images = images.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    logits = self.model(self.normalize(images))
                    loss = self.loss_fn(logits.float(), labels)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
                step += 1
                seen += labels.shape[0]
                loss_sum += loss.detach() * labels.shape[0]
                correct += (logits.detach().argmax(dim=1) == labels).sum()
                now = time.time()
                done_epoch = epoch_step >= self.steps_per_epoch
                if now >= next_event or done_epoch:
                    next_event = now + cfg.train.log_interval_s
                    self.events.emit(
                        Step(
                            epoch=epoch,
                            step=step,
                            epoch_step=epoch_step,
                            steps_per_epoch=self.steps_per_epoch,
                            total_steps=self.total_steps,
                            loss=loss_sum.item() / seen,
                            top1=correct.item() / seen,
                            lr=self.optimizer.param_groups[0]["lr"],
                            img_per_s=seen / max(now - epoch_start, 1e-9),
                        )
                    )
                    self._heartbeat()
                    self._poll_control(epoch, step, epoch_step)
                if self.stop_signal is not None or done_epoch:
                    break
            epoch_s = time.time() - epoch_start
            train_time += epoch_s
            images_seen += seen
            if self.stop_signal is not None and epoch_step < self.steps_per_epoch:
                self._save("last", epoch - 1, step, epoch_step)
                status = "interrupted"
                epoch -= 1
                break
            val = self.evaluate(data.val) if len(data.val) else None
            if val is not None and (self.best_val_top1 is None or val.top1 > self.best_val_top1):
                self.best_val_top1, self.best_epoch = val.top1, epoch
            record = {
                "epoch": epoch,
                "train_loss": loss_sum.item() / max(seen, 1),
                "train_top1": correct.item() / max(seen, 1),
                "val_loss": val.loss if val else None,
                "val_top1": val.top1 if val else None,
                "val_top5": val.top5 if val else None,
                "lr": self.optimizer.param_groups[0]["lr"],
                "epoch_s": epoch_s,
            }
            self.history.append(record)
            self._save("last", epoch, step)
            if val is None or self.best_epoch == epoch:
                self._save("best", epoch, step)
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
                    epoch_s=epoch_s,
                    img_per_s=seen / max(epoch_s, 1e-9),
                    best_val_top1=self.best_val_top1,
                    best_epoch=self.best_epoch,
                    eta_s=(time.time() - t0) / epoch * (cfg.train.epochs - epoch),
                )
            )
            if self.registry:
                self.registry.record_epoch(
                    self.run_id,
                    epoch,
                    {**record, "best_val_top1": self.best_val_top1, "best_epoch": self.best_epoch},
                )
            if self.stop_signal is not None or self.stop_after_epoch:
                status = "interrupted"
                break

        summary: dict[str, Any] = {
            "run_id": self.run_id,
            "status": status,
            "preset": self.preset,
            "dataset": data.name,
            "synthetic": data.synthetic,
            "model": cfg.model.name,
            "num_params": num_params,
            "device": str(self.device),
            "epochs": cfg.train.epochs,
            "epochs_done": epoch,
            "train_size": len(data.train),
            "val_size": len(data.val),
            "test_size": len(data.test),
            "best_val_top1": self.best_val_top1,
            "best_epoch": self.best_epoch,
            "img_per_s": images_seen / train_time if train_time > 0 else None,
            "train_s": train_time,
        }
        if status == "done" and cfg.eval.test:
            summary.update(self._test())
        summary["wall_s"] = time.time() - t0
        summary["run_dir"] = str(self.run_dir)
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.registry:
            self.registry.finish(self.run_id, status, summary)
        self.events.emit(Finished(status=status, summary=summary))
        return summary

    def _test(self) -> dict[str, Any]:
        """Evaluate the last weights, then the best-on-validation checkpoint, on the test set.

        When the best epoch is the last one, the weights are the same: one pass serves both.
        """
        test = self.data.test
        last_epoch = self.history[-1]["epoch"] if self.history else 0
        best_state = checkpoint.load(self.run_dir / "best.pt", map_location=self.device)
        best_is_last = int(best_state["epoch"]) == last_epoch
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
            best = self.evaluate(test, keep_logits=True)
        assert best.logits is not None
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
                epoch=int(best_state["epoch"]),
                loss=best.loss,
                top1=best.top1,
                top5=best.top5,
                count=best.count,
                eval_file=str(eval_file),
            )
        )

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
        }
