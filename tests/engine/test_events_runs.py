"""Event stream and run registry: the contract between engine and every consumer."""

from __future__ import annotations

import json
import sqlite3

from engine.events import EpochEnd, EventTail, EventWriter, Finished, Step, parse_event, read_events
from engine.run_lock import RunLock
from engine.runs import RunRegistry, create_run_dir


def _step(n: int) -> Step:
    return Step(
        epoch=1,
        step=n,
        epoch_step=n,
        steps_per_epoch=10,
        total_steps=10,
        loss=1.0,
        top1=0.5,
        lr=0.1,
        img_per_s=10.0,
    )


def test_events_round_trip_as_typed_objects(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl")
    writer.emit(_step(1))
    writer.emit(Finished(status="done", summary={"test_top1": 0.5}))
    writer.close()
    events = read_events(tmp_path / "events.jsonl")
    assert [e.type for e in events] == ["step", "finished"]
    assert isinstance(events[0], Step) and events[0].step == 1 and events[0].t > 0
    assert isinstance(events[1], Finished) and events[1].summary == {"test_top1": 0.5}


def test_each_event_is_one_flushed_line(tmp_path):
    writer = EventWriter(tmp_path / "events.jsonl")
    writer.emit(_step(1))
    # readable by another reader before close: flushed per line
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["type"] == "step"
    writer.close()


def test_tail_returns_only_new_events_and_waits_for_partial_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.poll() == []  # no file yet
    writer = EventWriter(path)
    writer.emit(_step(1))
    (polled,) = tail.poll()
    assert isinstance(polled, Step) and polled.step == 1
    line = _step(2).to_json()
    with path.open("a") as f:  # a writer caught mid-line
        f.write(line[:10])
    assert tail.poll() == []
    with path.open("a") as f:
        f.write(line[10:] + "\n")
    (polled,) = tail.poll()
    assert isinstance(polled, Step) and polled.step == 2


def test_truncated_last_line_and_unknown_types_are_ignored(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(_step(1).to_json() + '\n{"type": "from_the_future"}\n{"type": "st')
    assert [e.type for e in read_events(path)] == ["step"]
    assert parse_event('{"type": "from_the_future"}') is None


def test_registry_records_runs_and_epochs(tmp_path):
    reg = RunRegistry(tmp_path)
    run_id, run_dir = create_run_dir(tmp_path, "quickstart", "model: {name: wrn10_2}\n")
    assert (run_dir / "config.yaml").exists()
    reg.start(
        run_id,
        preset="quickstart",
        dataset="synthetic",
        model="wrn10_2",
        config={},
        device="cpu",
        epochs=2,
    )
    reg.record_epoch(
        run_id, 1, {"train_loss": 2.0, "val_top1": 0.3, "best_val_top1": 0.3, "best_epoch": 1}
    )
    reg.finish(
        run_id, "done", {"test_top1": 0.31, "wall_s": 12.0, "best_val_top1": 0.3, "best_epoch": 1}
    )
    (row,) = reg.runs()
    assert row.status == "done" and row.test_top1 == 0.31 and row.epochs_done == 1
    assert reg.epochs(run_id)[0]["val_top1"] == 0.3


def test_running_row_reads_running_while_its_lock_is_held_and_crashed_after(tmp_path):
    reg = RunRegistry(tmp_path)
    run_id, run_dir = create_run_dir(tmp_path, "p", "{}\n")
    reg.start(run_id, preset="p", dataset="synthetic", model="m", config={}, device="cpu", epochs=1)
    with RunLock(run_dir):
        assert reg.runs()[0].status == "running"
    assert reg.runs()[0].status == "crashed"  # no engine, no final event


def test_running_row_whose_engine_died_after_its_final_event_follows_the_events(tmp_path):
    """The event is the record: an engine killed between its `finished` line and the registry
    update leaves a row that the next reading repairs from the log."""
    reg = RunRegistry(tmp_path)
    run_id, run_dir = create_run_dir(tmp_path, "p", "{}\n")
    reg.start(run_id, preset="p", dataset="synthetic", model="m", config={}, device="cpu", epochs=1)
    writer = EventWriter(run_dir / "events.jsonl")
    writer.emit(Finished(status="done", summary={"test_top1": 0.42, "wall_s": 3.0}))
    writer.close()
    (row,) = reg.runs()
    assert (row.status, row.test_top1, row.wall_s) == ("done", 0.42, 3.0)
    db = sqlite3.connect(reg.path)  # repaired in the registry itself, not only in this reading
    assert db.execute("SELECT status FROM runs").fetchone() == ("done",)
    db.close()


def test_epoch_end_serialises_none_values(tmp_path):
    e = EpochEnd(
        epoch=1,
        epochs=1,
        train_loss=1.0,
        train_top1=0.1,
        val_loss=None,
        val_top1=None,
        val_top5=None,
        lr=0.1,
        epoch_s=1.0,
        img_per_s=1.0,
        best_val_top1=None,
        best_epoch=None,
        eta_s=0.0,
    )
    again = parse_event(e.to_json())
    assert again == e


def test_registry_stays_readable_while_a_writer_holds_a_transaction(tmp_path):
    reg = RunRegistry(tmp_path)
    reg.start("r1", preset="p", dataset="synthetic", model="m", config={}, device="cpu", epochs=1)
    writer = sqlite3.connect(tmp_path / "runs.sqlite")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE runs SET epochs_done = 5 WHERE run_id = 'r1'")
    assert [r.run_id for r in reg.runs()] == ["r1"]  # WAL: readers never wait for the writer
    assert reg.runs()[0].epochs_done == 0  # and see the last committed state
    writer.commit()
    assert reg.runs()[0].epochs_done == 5
    writer.close()
