"""A finished run's records completed from its log, as if its engine died after `finished`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.completion import complete_records
from engine.events import EventWriter, Failed, Finished
from engine.outcome import SUMMARY_FILE
from engine.run_lock import RunLock
from engine.runs import RunRegistry, create_run_dir
from engine.sinks import RunRecorder, run_sinks
from tests.engine.test_outcome import STARTED

SUMMARY = {"status": "done", "best_val_top1": 0.25, "test_top1": 0.3, "wall_s": 2.0}


def _killed_after_finished(root: Path, summary: dict = SUMMARY) -> tuple[Path, RunRegistry]:
    """A run whose sinks saw its start, and whose `finished` event reached only the log."""
    _, run_dir = create_run_dir(root, "p", "{}\n", {})
    registry = RunRegistry(root)
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, registry))
    recorder.emit(STARTED)
    recorder.close()
    log = EventWriter(run_dir / "events.jsonl")
    log.emit(Finished(status=summary["status"], summary=summary))
    log.close()
    return run_dir, registry


def test_every_record_the_sinks_missed_is_written_once(tmp_path):
    run_dir, registry = _killed_after_finished(tmp_path)
    assert not (run_dir / SUMMARY_FILE).exists() and not (run_dir / "card.json").exists()
    assert complete_records(run_dir, registry) == ["summary", "registry row", "card"]
    assert json.loads((run_dir / SUMMARY_FILE).read_text()) == SUMMARY
    (row,) = registry.runs()
    assert (row.status, row.test_top1, row.wall_s) == ("done", 0.3, 2.0)
    assert json.loads((run_dir / "card.json").read_text())["test"]["top1"] == 0.3
    assert complete_records(run_dir, registry) == []  # all there now: nothing written


def test_a_previous_sessions_card_is_replaced(tmp_path):
    """Killed after the summary sink, the folder still holds the card of the session before
    (interrupted): it does not match this `finished` event, so it is written again."""
    run_dir, registry = _killed_after_finished(tmp_path)
    complete_records(run_dir, registry)
    card = json.loads((run_dir / "card.json").read_text())
    card["timing"]["finished"] -= 60
    (run_dir / "card.json").write_text(json.dumps(card))
    assert complete_records(run_dir, registry) == ["card"]
    (run_dir / "card.md").write_text("# an older card\n")
    assert complete_records(run_dir, registry) == ["card"]
    assert complete_records(run_dir, registry) == []


@pytest.mark.parametrize("last", ["failed", "running"])
def test_nothing_is_written_without_a_finished_event_or_while_an_engine_holds_the_run(
    tmp_path, last
):
    run_dir, registry = _killed_after_finished(tmp_path)
    if last == "failed":
        log = EventWriter(run_dir / "events.jsonl")
        log.emit(Failed(status="error", message="boom"))
        log.close()
        assert complete_records(run_dir, registry) == []
    else:
        with RunLock(run_dir):
            assert complete_records(run_dir, registry) == []
    assert not (run_dir / SUMMARY_FILE).exists() and not (run_dir / "card.json").exists()
