"""The engine process entry point: exit codes and what a failure leaves behind."""

from __future__ import annotations

import pytest

from engine import __main__ as engine_main
from engine.config import dump_config, load_config
from engine.events import CheckpointSaved, Failed, read_events
from engine.runs import create_run_dir

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers


def _prepare(tmp_path, *overrides: str):
    cfg = load_config("quickstart", list(overrides))
    return create_run_dir(tmp_path, "quickstart", dump_config(cfg))


def test_unexpected_error_saves_traceback_and_exits_1(tmp_path, monkeypatch, capsys):
    from engine import trainer

    def boom(self):
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer.Trainer, "run", boom)
    _, run_dir = _prepare(tmp_path)
    assert engine_main.run(run_dir, progress=False) == 1
    assert "RuntimeError: boom" in (run_dir / "traceback.txt").read_text()
    (failed,) = read_events(run_dir / "events.jsonl")
    assert isinstance(failed, Failed) and failed.status == "error"
    assert failed.traceback_path == str(run_dir / "traceback.txt")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "boom" in err[0] and "traceback.txt" in err[0]


def test_builder_value_error_is_bad_input(tmp_path, capsys, monkeypatch):
    from engine.models import wrn

    def refuse(*args, **kwargs):
        raise ValueError("depth 16 is refused by this builder")

    monkeypatch.setattr(wrn, "build_wrn", refuse)  # the config layer lets it through
    _, run_dir = _prepare(tmp_path, "model.name=wrn", "model.depth=16")
    assert engine_main.run(run_dir, progress=False) == 2
    assert "depth" in capsys.readouterr().err
    last = read_events(run_dir / "events.jsonl")[-1]
    assert isinstance(last, Failed) and last.status == "bad_input"
    assert not (run_dir / "traceback.txt").exists()


def test_control_requests_checkpoint_now_and_stop_after_epoch(tmp_path):
    """A stop after an epoch: tested on its best checkpoint as it stops, still `interrupted`
    (resumable: a resume trains the epochs left and tests again at the end)."""
    from engine import control
    from engine.events import Evaluated, EventWriter
    from engine.trainer import Trainer

    cfg = load_config(
        "quickstart",
        ["model.name=wrn", "model.depth=10", "model.width=1", "data.subset=640", "train.epochs=5"],
    )
    cfg.train.log_interval_s = 0.05
    log = tmp_path / "events.jsonl"
    trainer = Trainer(cfg, tmp_path, "ctl", "quickstart", EventWriter(log))
    control.request(tmp_path, "checkpoint_now")
    control.request(tmp_path, "stop_after_epoch")
    summary = trainer.run()
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 1
    saves = [e for e in read_events(log) if isinstance(e, CheckpointSaved)]
    assert saves[0].epoch == 0  # the mid-epoch checkpoint came first, before epoch 1 ended
    assert control.pending(tmp_path) == set()
    tested = [e for e in read_events(log) if isinstance(e, Evaluated) and e.split == "test"]
    assert [(e.checkpoint, e.epoch) for e in tested] == [("last", 1), ("best", 1)]
    assert summary["test_top1"] == tested[-1].top1 and (tmp_path / "eval.npz").is_file()


def test_cuda_out_of_memory_names_the_batch_size_and_a_smaller_one(tmp_path, monkeypatch, capsys):
    from engine import trainer

    class OutOfMemoryError(RuntimeError):  # stands in for torch.cuda.OutOfMemoryError
        pass

    def oom(self):
        raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.Trainer, "run", oom)
    _, run_dir = _prepare(tmp_path, "data.batch_size=512")
    assert engine_main.run(run_dir, progress=False) == 2
    err = capsys.readouterr().err
    assert "data.batch_size = 512" in err and "data.batch_size=256" in err
    assert not list(run_dir.glob("*.pt"))


def _tree(folder):
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def test_a_second_engine_on_a_held_run_is_refused_and_writes_nothing(tmp_path, capsys):
    from engine.run_lock import RunLock

    _, run_dir = _prepare(tmp_path)
    before = _tree(run_dir)
    with RunLock(run_dir).acquire(signal_pid=4242):  # the first engine, still running
        assert engine_main.run(run_dir, progress=False) == 2
        assert engine_main.run(run_dir, progress=False, resume=True) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "already running (engine pid 4242)" in err[0]
    assert "last.pt does not exist" in err[1]  # a resume checks its checkpoint first
    after = _tree(run_dir)
    assert after.keys() == before.keys() and not (run_dir / "events.jsonl").exists()
    assert {k: v for k, v in after.items() if k != "engine.lock"} == {
        k: v for k, v in before.items() if k != "engine.lock"
    }


def test_the_registry_row_summary_and_card_follow_the_events(tmp_path):
    """The engine writes events; the row, summary.json and the card are derived from them."""
    import json

    from engine.outcome import RunStatus, read_outcome
    from engine.runs import RunRegistry

    run_id, run_dir = _prepare(tmp_path, "train.epochs=1", "data.subset=256", "eval.test=false")
    assert engine_main.run(run_dir, progress=False) == 0
    outcome = read_outcome(run_dir)
    assert outcome.status is RunStatus.DONE and outcome.summary is not None
    finished = outcome.final
    summary = json.loads((run_dir / "summary.json").read_text())
    assert finished is not None and summary == finished.summary  # type: ignore[union-attr]
    (row,) = RunRegistry(tmp_path).runs()
    assert (row.run_id, row.status, row.epochs_done) == (run_id, "done", 1)
    assert row.best_val_top1 == summary["best_val_top1"] and row.wall_s == summary["wall_s"]
    card = json.loads((run_dir / "card.json").read_text())
    assert card["status"] == "done"
