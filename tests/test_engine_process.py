"""The engine process entry point: exit codes and what a failure leaves behind."""

from __future__ import annotations

from engine import __main__ as engine_main
from engine.config import dump_config, load_config
from engine.events import CheckpointSaved, Failed, read_events
from engine.runs import create_run_dir


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


def test_builder_value_error_is_bad_input(tmp_path, capsys):
    _, run_dir = _prepare(tmp_path, "model.name=wrn", "model.depth=27")
    assert engine_main.run(run_dir, progress=False) == 2
    assert "depth" in capsys.readouterr().err
    last = read_events(run_dir / "events.jsonl")[-1]
    assert isinstance(last, Failed) and last.status == "bad_input"
    assert not (run_dir / "traceback.txt").exists()


def test_control_requests_checkpoint_now_and_stop_after_epoch(tmp_path):
    from engine import control
    from engine.events import EventWriter
    from engine.trainer import Trainer

    cfg = load_config(
        "quickstart",
        ["model.name=wrn", "model.depth=10", "model.width=1", "data.subset=640", "train.epochs=5"],
    )
    cfg.train.log_interval_s = 0.05
    trainer = Trainer(cfg, tmp_path, "ctl", "quickstart", EventWriter(tmp_path / "events.jsonl"))
    control.request(tmp_path, "checkpoint_now")
    control.request(tmp_path, "stop_after_epoch")
    summary = trainer.run()
    assert summary["status"] == "interrupted" and summary["epochs_done"] == 1
    saves = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, CheckpointSaved)]
    assert saves[0].epoch == 0  # the mid-epoch checkpoint came first, before epoch 1 ended
    assert control.pending(tmp_path) == set()


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
