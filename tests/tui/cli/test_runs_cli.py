"""`cifar-tui runs` lists every run, the ones refused at start too (in-process: no engine)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from engine.events import Failed
from engine.runs import RunRegistry, create_run_dir
from engine.sinks import RunRecorder, run_sinks
from tests.tui.test_runs_screen import refused_run
from tui.cli import app


def _runs(*args: str) -> list[list[str]]:
    result = CliRunner().invoke(app, ["runs", *args], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return [line.split() for line in result.stdout.splitlines()]


def test_runs_lists_runs_refused_at_start_as_bad_input(tmp_path: Path) -> None:
    run_id, run_dir = create_run_dir(tmp_path, "quickstart", "train: {device: cuda}\n")
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, RunRegistry(tmp_path)))
    recorder.emit(Failed(status="bad_input", message="train.device = cuda but no CUDA device"))
    recorder.close()
    older = refused_run(tmp_path)  # refused by an older engine: no row was written
    rows = {r[0]: r[1:3] for r in _runs("--checkpoints", str(tmp_path)) if r}
    assert rows[run_id] == rows[older] == ["quickstart", "bad_input"]
