"""A finished run's derived records, completed from its event log (torch-free).

The engine appends the `finished` event before its sinks derive summary.json, the registry row
and the card from it (`engine.sinks`). Killed in between, the run is finished (its log says so,
and every reader follows the log: `engine.outcome`) but some of those records are missing or
still a previous session's. `complete_records` hands the logged event to the same sinks again,
for the records that do not match it; the next `--resume`, the sweep and the launcher call it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from engine import strict_json
from engine.card import CARD_JSON, CARD_MD, card_markdown
from engine.events import EVENTS_FILE, Finished, last_event
from engine.outcome import SUMMARY_FILE
from engine.run_lock import RunBusyError, RunLock
from engine.runs import STALE_FILE, RegistryError, RunRegistry
from engine.sinks import CardSink, RegistrySink, Sink, SummarySink


def _read_json(path: Path) -> Any:
    try:
        return strict_json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _card_matches(run_dir: Path, final: Finished) -> bool:
    """card.json was built after this `finished` event, and card.md from that card.json."""
    card = _read_json(run_dir / CARD_JSON)
    if not isinstance(card, dict) or (card.get("timing") or {}).get("finished") != final.t:
        return False
    try:
        return (run_dir / CARD_MD).read_text() == card_markdown(card)
    except (OSError, KeyError, TypeError, AttributeError):
        return False


def _row_matches(registry: RunRegistry, run_dir: Path, final: Finished) -> bool:
    """The registry row holds this `finished` event's outcome (no row: nothing to complete). A
    registry that cannot be read counts as matching once the run is marked behind it (its
    engine warned already; a later reader or `--rebuild` catches it up), else the sink is
    given the event: it warns and marks the run."""
    run_id = run_dir.name
    try:
        row = next((r for r in registry.runs() if r.run_id == run_id), None)
    except RegistryError:
        return (run_dir / STALE_FILE).exists()
    return row is None or (row.status, row.wall_s) == (final.status, final.summary.get("wall_s"))


def complete_records(run_dir: Path, registry: RunRegistry | None = None) -> list[str]:
    """Write again what finished run `run_dir`'s sinks missed, from its logged `finished` event,
    under the run's lock; the names of the records completed ("summary", "registry row",
    "card"). Nothing (an empty list) when all of them match the event, when the log's last event
    is not `finished`, when an engine holds the run (it writes its own), or when the folder
    cannot be written (one warning on stderr)."""
    run_dir = Path(run_dir)
    registry = registry if registry is not None else RunRegistry(run_dir.parent)
    try:
        with RunLock(run_dir):
            final = last_event(run_dir / EVENTS_FILE)
            if not isinstance(final, Finished):
                return []
            summary_ok = _read_json(run_dir / SUMMARY_FILE) == final.summary
            todo: list[tuple[str, Sink]] = []
            if not summary_ok:
                todo.append(("summary", SummarySink(run_dir)))
            if not _row_matches(registry, run_dir, final):
                todo.append(("registry row", RegistrySink(registry, run_dir.name)))
            if not summary_ok or not _card_matches(run_dir, final):  # the card reads the summary
                todo.append(("card", CardSink(run_dir)))
            for _, sink in todo:
                sink.on_event(final)
            return [n for n, sink in todo if not (isinstance(sink, RegistrySink) and sink.stale)]
    except (RunBusyError, FileNotFoundError):
        return []
    except OSError as exc:  # a folder this user may not write: the records stay as they are
        print(
            f"cifar-tui: warning: cannot complete the records of run {run_dir.name} in "
            f"{run_dir} ({exc.strerror or exc})",
            file=sys.stderr,
        )
        return []
