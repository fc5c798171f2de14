"""A run's outcome from its events and lock: one status vocabulary, one summary type."""

from __future__ import annotations

import pytest

from engine.events import EventWriter, Failed, Finished, RunStarted, Step
from engine.outcome import RunStatus, RunSummary, read_outcome
from engine.run_lock import RunLock

STARTED = RunStarted(
    run_id="r",
    preset="p",
    dataset="synthetic",
    synthetic=True,
    device="cpu",
    model="wrn10_2",
    num_params=1,
    epochs=1,
    steps_per_epoch=1,
    batch_size=1,
    train_size=1,
    val_size=1,
    test_size=1,
    config={},
    pid=1,
)
STEP = Step(
    epoch=1,
    step=1,
    epoch_step=1,
    steps_per_epoch=1,
    total_steps=1,
    loss=1.0,
    top1=0.0,
    lr=0.1,
    img_per_s=1.0,
)


def write(run_dir, *events):
    writer = EventWriter(run_dir / "events.jsonl")
    for event in events:
        writer.emit(event)
    writer.close()


def test_a_folder_without_events_has_not_started(tmp_path):
    assert read_outcome(tmp_path).status is RunStatus.NOT_STARTED


def test_events_without_a_final_one_are_a_crash_unless_an_engine_holds_the_lock(tmp_path):
    write(tmp_path, STARTED, STEP)
    outcome = read_outcome(tmp_path)
    assert outcome.status is RunStatus.CRASHED and outcome.status.resumable
    assert outcome.final is None
    with RunLock(tmp_path):
        assert read_outcome(tmp_path).status is RunStatus.RUNNING


@pytest.mark.parametrize(
    ("final", "status"),
    [
        (Finished(status="done", summary={"test_top1": 0.5}), RunStatus.DONE),
        (Finished(status="interrupted", summary={}), RunStatus.INTERRUPTED),
        (Finished(status="diverged", summary={}), RunStatus.DIVERGED),
        (Failed(status="bad_input", message="m"), RunStatus.BAD_INPUT),
        (Failed(status="error", message="m"), RunStatus.ERROR),
        (Failed(status="interrupted", message="before training started"), RunStatus.INTERRUPTED),
    ],
)
def test_the_final_event_names_the_status(tmp_path, final, status):
    write(tmp_path, STARTED, STEP, final)
    outcome = read_outcome(tmp_path)
    assert outcome.status is status and outcome.status.final and outcome.final == final
    assert status.failed == (status in (RunStatus.BAD_INPUT, RunStatus.ERROR, RunStatus.DIVERGED))


def test_a_resumed_run_that_then_finishes_is_done(tmp_path):
    write(tmp_path, STARTED, Finished(status="interrupted", summary={}), STARTED, STEP)
    assert read_outcome(tmp_path).status is RunStatus.CRASHED  # the last session said nothing
    write(tmp_path, Finished(status="done", summary={"best_val_top1": 0.3}))
    outcome = read_outcome(tmp_path)
    assert outcome.status is RunStatus.DONE
    assert outcome.summary is not None and outcome.summary.best_val_top1 == 0.3


def test_summary_round_trips_and_leaves_out_a_test_pass_that_did_not_run():
    data = {"run_id": "r", "status": "done", "epochs_done": 3, "best_val_top1": 0.4, "wall_s": 9.0}
    summary = RunSummary.from_dict({**data, "unknown_newer_key": 1})
    assert summary.epochs_done == 3 and summary.test_top1 is None
    out = summary.to_dict()
    assert "test_top1" not in out and "per_class_ap" not in out and "tta" not in out
    assert {k: out[k] for k in data} == data
    tested = RunSummary.from_dict({**data, "test_top1": 0.41, "per_class_ap": [0.5, None]})
    assert RunSummary.from_dict(tested.to_dict()) == tested
