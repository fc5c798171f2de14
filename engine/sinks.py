"""What follows the event stream: the registry row, `summary.json` and the card (torch-free).

The trainer writes events and nothing else about its outcome. `RunRecorder` appends each event
to `events.jsonl` (the record) and then hands it to its sinks, which derive the rest from it, each
write atomic (one sqlite transaction; a temp file renamed over the target). The event is written
first and is the truth: an engine killed between it and the sinks leaves a registry row that
`RunRegistry.runs` repairs from the log.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Protocol

import yaml

from engine import strict_json, strict_yaml
from engine.card import write_card_safely
from engine.events import (
    EVENTS_FILE,
    EpochEnd,
    Event,
    EventWriter,
    Failed,
    Finished,
    Resumed,
    RunStarted,
    read_events,
)
from engine.outcome import SUMMARY_FILE, read_outcome
from engine.runs import STALE_FILE, RegistryError, RunRegistry, read_run_meta, run_ids


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
    """`runs.sqlite` follows the run: started or resumed, each epoch, the end.

    The registry is derived from the events, so no failure of it (locked, damaged, read-only, disk
    full) ends a run; a locked file costs an event `runs.WRITE_TIMEOUT_S` at most. One warning line,
    the run folder is marked (`STALE_FILE`), and the run's rows are replayed from its log at the
    next event that can be written (else by the next reader, or `cifar-tui runs --rebuild`)."""

    def __init__(self, registry: RunRegistry, run_id: str) -> None:
        self.registry, self.run_id = registry, run_id
        self.run_dir = registry.path.parent / run_id
        self.stale = False  # a write failed: the rows are behind the log
        self.warned = False

    def on_event(self, event: Event) -> None:
        if not isinstance(event, RunStarted | EpochEnd | Finished | Failed):
            return
        try:
            if self.stale:
                replay_run(self.registry, self.run_dir)
            else:
                self.write(event)
        except Exception as exc:  # noqa: BLE001 - the registry is derived: it never ends a run
            self._fall_behind(exc)
            return
        if self.stale:
            self.stale = False
            (self.run_dir / STALE_FILE).unlink(missing_ok=True)

    def _fall_behind(self, exc: Exception) -> None:
        self.stale = True
        with contextlib.suppress(OSError):
            (self.run_dir / STALE_FILE).touch()
        if not self.warned:
            self.warned = True
            reason = (
                exc.reason if isinstance(exc, RegistryError) else f"{type(exc).__name__}: {exc}"
            )
            print(
                f"cifar-tui: warning: the runs registry {self.registry.path} was not updated"
                f" ({reason}); training goes on, and run {self.run_id}'s row is repaired from"
                " its events later (or: cifar-tui runs --rebuild)",
                file=sys.stderr,
            )

    def write(self, event: Event) -> None:
        """The registry's rows for one event (errors raised)."""
        if isinstance(event, Resumed):
            self.registry.resume(
                self.run_id, config=event.config, epochs=event.epochs, at=event.t, pid=event.pid
            )
        elif isinstance(event, RunStarted):
            self.registry.start(
                self.run_id,
                preset=event.preset,
                dataset=event.dataset,
                model=event.model,
                config=event.config,
                device=event.device,
                epochs=event.epochs,
                at=event.t,
                pid=event.pid,
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
            self.registry.record_epoch(self.run_id, event.epoch, metrics, at=event.t)
        elif isinstance(event, Finished):
            self.registry.finish(self.run_id, event.status, event.summary, at=event.t)
        elif isinstance(event, Failed) and not self.registry.finish(
            self.run_id, event.status, {}, at=event.t
        ):
            self.write_refused(event)  # refused before `run_started`: no row yet

    def write_refused(self, event: Failed) -> None:
        """The row of a run refused at start (bad input: no CUDA, no data), from its folder:
        run.json's preset and creation time, config.yaml's dataset, model, device and epochs."""
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = read_run_meta(self.run_dir)
        config: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, yaml.YAMLError):
            loaded = strict_yaml.load((self.run_dir / "config.yaml").read_text())
            config = loaded if isinstance(loaded, dict) else {}

        def key(section: str, name: str) -> Any:
            part = config.get(section)
            return part.get(name) if isinstance(part, dict) else None

        created = meta.get("created_ns")
        epochs = key("train", "epochs")
        with self.registry.transaction():
            self.registry.start(
                self.run_id,
                preset=str(meta.get("preset") or "?"),
                dataset=str(key("data", "dataset") or "?"),
                model=str(key("model", "name") or "?"),
                config=config,
                device=str(key("train", "device") or "?"),
                epochs=epochs if isinstance(epochs, int) else 0,
                at=created / 1e9 if isinstance(created, int) else event.t,
                pid=0,  # no engine ran it
            )
            self.registry.finish(self.run_id, event.status, {}, at=event.t)


def replay_refused(registry: RunRegistry, listed: set[str]) -> bool:
    """Rows for the run folders that have none and whose engine said its last word (a run
    refused at start by an engine older than `write_refused`, or whose registry write failed).
    True if any was written. Folders not started yet, or running, are left to their engine."""
    if not registry.path.exists():  # a reader never creates the registry (`--rebuild` does)
        return False
    root = registry.path.parent
    wrote = False
    for run_id in run_ids(root):
        if run_id in listed or not read_outcome(root / run_id).status.final:
            continue
        try:
            replay_run(registry, root / run_id)
        except RegistryError:
            return wrote  # read-only or locked: the next reader tries again
        wrote = True
    return wrote


def replay_run(registry: RunRegistry, run_dir: Path) -> None:
    """A run's rows rewritten from its event log, in one transaction (a row that fell behind,
    `runs --rebuild`)."""
    sink = RegistrySink(registry, Path(run_dir).name)
    with registry.transaction():
        registry.forget(sink.run_id)
        for event in read_events(Path(run_dir) / EVENTS_FILE):
            sink.write(event)


class SummarySink:
    """`summary.json`: the `finished` event's summary."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / SUMMARY_FILE

    def on_event(self, event: Event) -> None:
        if isinstance(event, Finished):
            write_atomic(self.path, strict_json.dumps(event.summary, indent=2) + "\n")


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
