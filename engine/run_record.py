"""What a run records about itself, as events: its start (`run_started` or `resumed`), its
progress (`step`, `bad_step`), each epoch's end (`epoch_end`), its summary and its outcome
(`finished`). (Checkpoint and evaluation events are emitted where those happen.)

Events are the only record the trainer writes: the registry row, `summary.json` and the card
follow the stream (`engine.sinks`, wired by the engine process). Only rank 0 records: elsewhere
`events` is a `NullEventWriter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import world as torchrun
from engine.config import RunConfig, config_to_dict
from engine.data import DataBundle
from engine.errors import BadInputError
from engine.events import (
    EVENTS_FILE,
    BadStep,
    EpochEnd,
    EventWriter,
    Finished,
    Resumed,
    RunStarted,
    Step,
    read_events,
)
from engine.loop_state import LoopState
from engine.outcome import RunSummary
from engine.runs import read_run_meta


@dataclass(frozen=True)
class RunFacts:
    """What a session trains, known once it is set up."""

    cfg: RunConfig
    data: DataBundle
    num_params: int
    device: str  # `cpu`, `cuda:0`, `cuda x8` (engine.device.device_name)
    steps_per_epoch: int


def _edited(run_dir: Path) -> bool:
    """run.json's `edited` flag; False where there is none (a folder made by hand, a test's)."""
    try:
        return read_run_meta(run_dir).get("edited") is True
    except BadInputError:
        return False


class RunRecord:
    def __init__(
        self,
        run_dir: Path,
        run_id: str,
        preset: str,
        events: EventWriter,
    ) -> None:
        self.run_dir, self.run_id, self.preset = run_dir, run_id, preset
        self.events = events
        # launched from Setup with edits (`preset` is then where it came from): run.json says
        self.edited = _edited(run_dir)

    def started(
        self, facts: RunFacts, resumed: tuple[LoopState, Path, str | None, list[str]] | None
    ) -> None:
        """The start of a session: `run_started`, or `resumed` with (the loop state, the checkpoint
        used, its warning, the config keys changed) from a checkpoint."""
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
            "pid": torchrun.launcher_pid(),  # the process a UI signals to stop the run
            "edited": self.edited,
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
            return
        self.events.emit(RunStarted(**info))

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
        """An epoch's end: its history entry `record` and the run's progress (`epoch_end`)."""
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

    def summary(
        self,
        facts: RunFacts,
        status: str,
        loop: LoopState,
        best_val_top1: float | None,
        best_epoch: int | None,
    ) -> RunSummary:
        """The summary of a session that stopped training (the test pass and wall time follow)."""
        data = facts.data
        return RunSummary(
            run_id=self.run_id,
            status=status,
            preset=self.preset,
            dataset=data.name,
            synthetic=data.synthetic,
            model=facts.cfg.model.name,
            num_params=facts.num_params,
            device=facts.device,
            epochs=facts.cfg.train.epochs,
            epochs_done=loop.epoch,
            step=loop.step,
            train_size=len(data.train),
            val_size=len(data.val),
            test_size=len(data.test),
            best_val_top1=best_val_top1,
            best_epoch=best_epoch,
            img_per_s=loop.images_seen / loop.train_time if loop.train_time > 0 else None,
            train_s=loop.train_time,
            run_dir=str(self.run_dir),
        )

    def finished(self, summary: RunSummary) -> None:
        """The run's last word: the `finished` event (its sinks derive the rest from it)."""
        self.events.emit(Finished(status=summary.status, summary=summary.to_dict()))


def last_resumed_config(run_dir: Path) -> dict[str, Any] | None:
    """The config the run's latest `resumed` event trained with (None: never resumed)."""
    resumed = [e for e in read_events(run_dir / EVENTS_FILE) if isinstance(e, Resumed)]
    return resumed[-1].config if resumed else None
