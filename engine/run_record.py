"""What a run records about itself, in events and the registry: its start (the `run_started` or
`resumed` event and the registry row), its progress (`step` and `bad_step` events, registry
heartbeats), each epoch's end (`epoch_end` and the registry's epoch row), its summary, and its
outcome. (Checkpoint and evaluation events are emitted where those happen.)

`RunRecord.record_outcome` is the one place every end-of-run record is written, in this order:
`summary.json`, the registry row (`RunRegistry.finish`), the `finished` event, and the run card
(`card.json` / `card.md`, when asked for: the engine process asks, an in-process Trainer does
not by default). Only rank 0 records: elsewhere `events` is a `NullEventWriter` and `registry`
None, and no file is written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import distributed
from engine.card import write_card_safely
from engine.config import RunConfig, config_to_dict
from engine.data import DataBundle
from engine.events import BadStep, EpochEnd, EventWriter, Finished, Resumed, RunStarted, Step
from engine.loop_state import LoopState
from engine.runs import RunRegistry

HEARTBEAT_EVERY_S = 10.0


@dataclass(frozen=True)
class RunFacts:
    """What a session trains, known once it is set up."""

    cfg: RunConfig
    data: DataBundle
    num_params: int
    device: str  # `cpu`, `cuda:0`, `cuda x8` (engine.device.device_name)
    steps_per_epoch: int


class RunRecord:
    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        preset: str,
        events: EventWriter,
        registry: RunRegistry | None,
        is_main: bool,
    ) -> None:
        self.run_dir, self.run_id, self.preset = run_dir, run_id, preset
        self.events, self.registry, self.is_main = events, registry, is_main
        self._last_heartbeat = time.time()

    def heartbeat(self) -> None:
        """Tell the registry this run is alive (rate-limited), so it never reads as crashed."""
        now = time.time()
        if self.registry and now - self._last_heartbeat > HEARTBEAT_EVERY_S:
            self.registry.heartbeat(self.run_id)
            self._last_heartbeat = now

    def started(
        self, facts: RunFacts, resumed: tuple[LoopState, Path, str | None, list[str]] | None
    ) -> None:
        """The start of a session: `run_started`, or `resumed` with (the loop state, the checkpoint
        used, its warning, the config keys changed) from a checkpoint; the registry row follows."""
        cfg, data = facts.cfg, facts.data
        info: dict[str, Any] = {
            "run_id": self.run_id,
            "preset": self.preset,
            "dataset": data.name,
            "synthetic": data.synthetic,
            "device": facts.device,
            "model": cfg.model.name,
            "num_params": facts.num_params,
            "epochs": cfg.train.epochs,
            "steps_per_epoch": facts.steps_per_epoch,
            "batch_size": cfg.data.batch_size,
            "train_size": len(data.train),
            "val_size": len(data.val),
            "test_size": len(data.test),
            "config": config_to_dict(cfg),
            "pid": distributed.launcher_pid(),  # the process a UI signals to stop the run
        }
        if resumed is not None:
            loop, used, warning, config_changes = resumed
            self.events.emit(
                Resumed(
                    **info,
                    epoch=loop.epoch,
                    step=loop.step,
                    epoch_step=loop.epoch_step,
                    checkpoint=str(used),
                    warning=warning,
                    config_changes=config_changes,
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
                device=facts.device,
                epochs=cfg.train.epochs,
            )

    def step(
        self,
        epoch: int,
        loop: LoopState,
        steps_per_epoch: int,
        total_steps: int,
        *,
        lr: float,
        data_wait: float | None,
        memory_mb: float | None,
    ) -> None:
        """The `step` event: the epoch's running means and throughput so far."""
        seen = max(loop.epoch_seen, 1)
        self.events.emit(
            Step(
                epoch=epoch,
                step=loop.step,
                epoch_step=loop.epoch_step,
                steps_per_epoch=steps_per_epoch,
                total_steps=total_steps,
                loss=loop.epoch_loss_sum / seen,
                top1=loop.epoch_correct / seen,
                lr=lr,
                img_per_s=loop.epoch_seen / max(loop.epoch_time, 1e-9),
                data_wait=data_wait,
                memory_mb=memory_mb,
            )
        )

    def bad_step(self, epoch: int, step: int, loss: float, consecutive: int) -> None:
        self.events.emit(BadStep(epoch=epoch, step=step, loss=loss, consecutive=consecutive))

    def epoch_ended(
        self,
        record: dict[str, Any],
        *,
        epochs: int,
        img_per_s: float,
        best_val_top1: float | None,
        best_epoch: int | None,
        eta_s: float,
    ) -> None:
        """An epoch's end: its history entry `record` and the run's progress as the `epoch_end`
        event, then the registry's epoch row."""
        self.events.emit(
            EpochEnd(
                **record,
                epochs=epochs,
                img_per_s=img_per_s,
                best_val_top1=best_val_top1,
                best_epoch=best_epoch,
                eta_s=eta_s,
            )
        )
        if self.registry:
            best = {"best_val_top1": best_val_top1, "best_epoch": best_epoch}
            self.registry.record_epoch(self.run_id, record["epoch"], {**record, **best})

    def summary(
        self,
        facts: RunFacts,
        status: str,
        loop: LoopState,
        best_val_top1: float | None,
        best_epoch: int | None,
    ) -> dict[str, Any]:
        """The summary of a session that stopped training (the test pass and wall time follow)."""
        data = facts.data
        return {
            "run_id": self.run_id,
            "status": status,
            "preset": self.preset,
            "dataset": data.name,
            "synthetic": data.synthetic,
            "model": facts.cfg.model.name,
            "num_params": facts.num_params,
            "device": facts.device,
            "epochs": facts.cfg.train.epochs,
            "epochs_done": loop.epoch,
            "step": loop.step,
            "train_size": len(data.train),
            "val_size": len(data.val),
            "test_size": len(data.test),
            "best_val_top1": best_val_top1,
            "best_epoch": best_epoch,
            "img_per_s": loop.images_seen / loop.train_time if loop.train_time > 0 else None,
            "train_s": loop.train_time,
            "run_dir": str(self.run_dir),
        }

    def record_outcome(self, status: str, summary: dict[str, Any], card: bool = False) -> None:
        """Every end-of-run write, in the order the module docstring gives."""
        if self.is_main:
            (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if self.registry:
            self.registry.finish(self.run_id, status, summary)
        self.events.emit(Finished(status=status, summary=summary))
        if card and self.is_main:
            write_card_safely(self.run_dir)  # a failure is a warning, never the run's outcome
