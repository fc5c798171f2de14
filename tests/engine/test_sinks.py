"""The records that follow the event stream: each sink sees an event once it is on disk."""

from __future__ import annotations

import json

from engine.events import EpochEnd, Event, EventWriter, Failed, Finished, read_events
from engine.outcome import SUMMARY_FILE
from engine.runs import RunRegistry, create_run_dir
from engine.sinks import RunRecorder, run_sinks
from tests.engine.test_outcome import STARTED


def test_every_event_is_on_disk_before_a_sink_sees_it(tmp_path):
    seen: list[tuple[str, int]] = []

    class Reader:
        def on_event(self, event: Event) -> None:
            seen.append((event.type, len(read_events(tmp_path / "events.jsonl"))))

    recorder = RunRecorder(tmp_path / "events.jsonl", [Reader()])
    recorder.emit(STARTED)
    recorder.emit(Finished(status="done", summary={}))
    recorder.close()
    assert seen == [("run_started", 1), ("finished", 2)]


def test_the_row_summary_and_card_follow_a_run_from_start_to_end(tmp_path):
    run_id, run_dir = create_run_dir(tmp_path, "p", "{}\n", {})
    registry = RunRegistry(tmp_path)
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, registry))
    recorder.emit(STARTED)
    (row,) = registry.runs()
    assert row.status == "crashed"  # started, but no engine holds the run: the lock decides
    epoch = EpochEnd(
        epoch=1,
        epochs=1,
        train_loss=2.0,
        train_top1=0.2,
        val_loss=1.9,
        val_top1=0.25,
        val_top5=0.5,
        lr=0.1,
        epoch_s=1.0,
        img_per_s=10.0,
        best_val_top1=0.25,
        best_epoch=1,
        eta_s=0.0,
    )
    recorder.emit(epoch)
    assert registry.epochs(run_id)[0]["val_top1"] == 0.25
    assert not (run_dir / SUMMARY_FILE).exists()
    summary = {"status": "done", "best_val_top1": 0.25, "test_top1": 0.3, "wall_s": 2.0}
    recorder.emit(Finished(status="done", summary=summary))
    recorder.close()
    assert json.loads((run_dir / SUMMARY_FILE).read_text()) == summary
    (row,) = registry.runs()
    assert (row.status, row.epochs_done, row.test_top1, row.wall_s) == ("done", 1, 0.3, 2.0)
    assert json.loads((run_dir / "card.json").read_text())["status"] == "done"
    assert not list(run_dir.glob(".*.tmp-*"))  # atomic writes leave no temp file behind


def test_a_failure_ends_the_row_without_a_summary(tmp_path):
    _, run_dir = create_run_dir(tmp_path, "p", "{}\n", {})
    registry = RunRegistry(tmp_path)
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, registry))
    recorder.emit(STARTED)
    recorder.emit(Failed(status="bad_input", message="no data"))
    recorder.close()
    assert registry.runs()[0].status == "bad_input"
    assert not (run_dir / SUMMARY_FILE).exists() and not (run_dir / "card.json").exists()


REFUSED_CONFIG = "model: {name: wrn}\ndata: {dataset: cifar100}\ntrain: {device: cuda, epochs: 2}\n"


def test_a_run_refused_at_start_gets_a_row_from_its_folder(tmp_path):
    """`--device cuda` without CUDA: the engine's only event is `failed`; Runs still lists it."""
    run_id, run_dir = create_run_dir(tmp_path, "quickstart", REFUSED_CONFIG, {})
    registry = RunRegistry(tmp_path)
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, registry))
    recorder.emit(Failed(status="bad_input", message="train.device = cuda but no CUDA device"))
    recorder.close()
    (row,) = registry.runs()
    assert (row.run_id, row.status, row.preset) == (run_id, "bad_input", "quickstart")
    assert (row.dataset, row.model, row.device, row.epochs) == ("cifar100", "wrn", "cuda", 2)
    assert registry.configs()[run_id]["train"] == {"device": "cuda", "epochs": 2}
    assert registry.delete(run_id) and registry.runs() == [] and not run_dir.exists()


def test_a_refused_run_without_a_row_is_listed_from_its_folder(tmp_path):
    """Refused by an older engine (no row written), next to a run the registry knows."""
    known, _ = create_run_dir(tmp_path, "p", "{}\n", {})
    RunRegistry(tmp_path).start(
        known, preset="p", dataset="synthetic", model="wrn", config={}, device="cpu", epochs=1
    )
    refused, run_dir = create_run_dir(tmp_path, "p", "not: [valid", {})  # config unreadable too
    writer = EventWriter(run_dir / "events.jsonl")
    writer.emit(Failed(status="bad_input", message="no data"))
    writer.close()
    create_run_dir(tmp_path, "p", "{}\n", {})  # launched, no event yet: not listed
    rows = RunRegistry(tmp_path).runs()
    assert {(r.run_id, r.status) for r in rows} == {(known, "crashed"), (refused, "bad_input")}
    assert next(r for r in rows if r.run_id == refused).dataset == "?"
