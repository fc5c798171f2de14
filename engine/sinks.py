"""What follows the event stream: the registry row, `summary.json` and the card (torch-free).

The trainer writes events and nothing else about its outcome. `RunRecorder` appends each event
to `events.jsonl` (the record) and then hands it to its sinks, which derive the rest from it, each
write atomic (one sqlite transaction; a temp file renamed over the target). The event is written
first and is the truth: an engine killed between it and the sinks leaves a registry row that
`RunRegistry.runs` repairs from the log.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from engine.card import write_card_safely
from engine.events import (
    EpochEnd,
    Event,
    EventWriter,
    Failed,
    Finished,
    Resumed,
    RunStarted,
)
from engine.outcome import SUMMARY_FILE
from engine.runs import RunRegistry


class Sink(Protocol):
    def on_event(self, event: Event) -> None: ...


def write_atomic(path: Path, text: str) -> None:
    """`path` holds either its old text or `text`, never a part (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class RegistrySink:
    """`runs.sqlite` follows the run: started or resumed, each epoch, the end."""

    def __init__(self, registry: RunRegistry, run_id: str) -> None:
        self.registry, self.run_id = registry, run_id

    def on_event(self, event: Event) -> None:
        if isinstance(event, Resumed):
            self.registry.resume(self.run_id, config=event.config, epochs=event.epochs)
        elif isinstance(event, RunStarted):
            self.registry.start(
                self.run_id,
                preset=event.preset,
                dataset=event.dataset,
                model=event.model,
                config=event.config,
                device=event.device,
                epochs=event.epochs,
            )
        elif isinstance(event, EpochEnd):
            metrics = {
                "train_loss": event.train_loss,
                "train_top1": event.train_top1,
                "val_loss": event.val_loss,
                "val_top1": event.val_top1,
                "val_top5": event.val_top5,
                "lr": event.lr,
                "epoch_s": event.epoch_s,
                "best_val_top1": event.best_val_top1,
                "best_epoch": event.best_epoch,
            }
            self.registry.record_epoch(self.run_id, event.epoch, metrics)
        elif isinstance(event, Finished):
            self.registry.finish(self.run_id, event.status, event.summary)
        elif isinstance(event, Failed):
            self.registry.finish(self.run_id, event.status, {})  # a no-op before any start


class SummarySink:
    """`summary.json`: the `finished` event's summary."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / SUMMARY_FILE

    def on_event(self, event: Event) -> None:
        if isinstance(event, Finished):
            write_atomic(self.path, json.dumps(event.summary, indent=2) + "\n")


class CardSink:
    """`card.json` / `card.md` once the run finished (a failure to write is a warning)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Finished):
            write_card_safely(self.run_dir)


def run_sinks(run_dir: Path, registry: RunRegistry | None) -> list[Sink]:
    """A run folder's sinks, in the order they follow each event."""
    sinks: list[Sink] = [SummarySink(run_dir)]
    if registry is not None:
        sinks.append(RegistrySink(registry, Path(run_dir).name))
    sinks.append(CardSink(run_dir))
    return sinks


class RunRecorder(EventWriter):
    """An `EventWriter` whose every event, once on disk, reaches the sinks."""

    def __init__(self, path: Path, sinks: list[Sink]) -> None:
        super().__init__(path)
        self.sinks = sinks

    def emit(self, event: Event) -> Event:
        super().emit(event)
        for sink in self.sinks:
            sink.on_event(event)
        return event
