"""Dataclass messages that workers post to the UI (Posting's layout: one module for them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textual.message import Message

from engine.events import Event


@dataclass
class RunLaunched(Message):
    """The supervisor started an engine process on a fresh run folder."""

    run_id: str
    run_dir: Path


@dataclass
class EngineEvents(Message):
    """Events read from the run's events.jsonl since the last batch (in file order)."""

    run_dir: Path
    events: list[Event]


@dataclass
class EngineGone(Message):
    """The engine stopped: `returncode` for a child we started, None when we only followed a log.

    `final` tells whether the log holds a `finished` or `failed` event.
    """

    run_dir: Path
    returncode: int | None
    final: bool


@dataclass
class LaunchFailed(Message):
    """The engine could not be started (bad config, missing Python, ...)."""

    message: str


@dataclass
class PreviewReady(Message):
    """The engine wrote an augmentation preview (`path`), or failed with `error`."""

    path: Path | None
    error: str | None = None


@dataclass
class ResultsLoaded(Message):
    """A run's evaluation data is loaded (`data`: an orchestration.evaldata.EvalData) or failed."""

    data: object | None
    error: str | None = None
    missing: object | None = None  # no eval.npz: why (an orchestration.no_results.NoResults)
