"""`cifar-tui runs` lists every run, the ones refused at start too, sorted by any column or
config key and filtered (in-process: no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.events import Failed
from engine.runs import RunRegistry, create_run_dir
from engine.sinks import RunRecorder, run_sinks
from tests.tui.test_runs_screen import RECIPES, made_once, refused_run, varied  # noqa: F401
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


@pytest.mark.usefixtures("checkpoints", "varied")
def test_runs_sorts_by_a_config_key_shown_as_a_column_and_filters() -> None:
    ids = [recipe[0] for recipe in RECIPES]  # lr 0.1, 0.001, 0.05
    lines = _runs("--sort", "optim.lr", "--column", "optim.name", "--filter", "sgd")
    header = next(line for line in lines if line and line[0] == "run")
    assert header[3:6] == ["optim.name", "optim.lr", "▲"]
    listed = [line[0] for line in lines if line and line[0] in ids]
    assert listed == [ids[2], ids[0]]  # lr 0.05, 0.1; adamw filtered out
    lines = _runs(
        "--sort", "optim.lr", "--column", "optim.name", "--filter", "cifar100 optim.name=sgd"
    )
    listed = [line[0] for line in lines if line and line[0] in ids]
    assert listed == [ids[2]]  # the other sgd run is on synthetic data
    result = CliRunner().invoke(app, ["runs", "--sort", "optim.lrr"], env={"COLUMNS": "160"})
    assert result.exit_code == 2 and "did you mean optim.lr?" in result.output
