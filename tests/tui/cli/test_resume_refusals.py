"""A refused resume changes nothing: every file of the run and its registry row stay byte for
byte as they were, whichever check refuses it (the launcher's, or the engine's once it has
loaded the data and the checkpoint); and the engine checks what the launcher cannot (a
config.yaml edited by hand, a checkpoint that is not ours or does not fit)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import checkpoint_files
from engine.events import Resumed, read_events
from engine.run_lock import holder_pid
from engine.test_hooks import PAUSE_ENV, is_paused
from tests.conftest import ROOT, cli

TINY = [
    *("--set", "model.name=wrn", "--set", "model.depth=10", "--set", "model.width=1"),
    *("--set", "data.subset=320", "--set", "data.val_size=100", "--set", "eval.test=false"),
]


def _state(root: Path, run_dir: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every file of the run folder, and the registry's whole content."""
    files = {p.name: p.read_bytes() for p in sorted(run_dir.iterdir()) if p.is_file()}
    with sqlite3.connect(root / "runs.sqlite") as db:
        dump = list(db.iterdump())
    return files, dump


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A finished one-epoch run: (checkpoints root, run folder); tests work on copies."""
    root = tmp_path_factory.mktemp("finished")
    result = cli(
        "--run", "quickstart", "--json", *TINY, "--set", "train.epochs=1", checkpoints=root
    )
    assert result.returncode == 0, result.stderr
    return root, root / json.loads(result.stdout)["run_id"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> tuple[Path, Path]:
    """A three-epoch run stopped by SIGTERM after its first step (the pause hook holds the
    engine there until the signal is queued): interrupted, with its checkpoint."""
    root = tmp_path_factory.mktemp("interrupted")
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(root), "NO_COLOR": "1", PAUSE_ENV: "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tui.cli import main; main()", "--run", "quickstart"]
        + [*TINY, "--set", "train.epochs=3"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    pid = None
    while pid is None:
        assert time.time() < deadline and proc.poll() is None, "the engine never started"
        pid = next((holder_pid(p.parent) for p in root.glob("*/engine.lock")), None)
        time.sleep(0.05)
    while not is_paused(pid):
        assert time.time() < deadline, "the engine never reached its pause step"
        time.sleep(0.05)
    os.kill(pid, signal.SIGTERM)  # queued while stopped, handled once it continues
    os.kill(pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    (run_dir,) = [p.parent for p in root.glob("*/run.json")]
    return root, run_dir


def _copy(run: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    root, run_dir = run
    shutil.copytree(root, tmp_path / "ck")
    return tmp_path / "ck", tmp_path / "ck" / run_dir.name


def _refused(root: Path, run_dir: Path, *args: str) -> str:
    """Resume with `args`, which must be refused in one line with nothing changed."""
    before = _state(root, run_dir)
    result = cli("--resume", run_dir.name, *args, checkpoints=root)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("cifar-tui: error: "), result.stderr
    assert _state(root, run_dir) == before
    return lines[0]


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


@no_cuda
def test_a_forced_resume_the_engine_refuses_leaves_the_finished_run_as_it_was(finished, tmp_path):
    """`--force --set train.epochs=2 --device cuda` on a machine without CUDA: the engine
    refuses the device after the launcher accepted the change; config.yaml is not rewritten, no
    config.prev.yaml appears, no `failed` event follows `finished`, the registry keeps its
    numbers."""
    root, run_dir = _copy(finished, tmp_path)
    line = _refused(root, run_dir, "--force", "--set", "train.epochs=2", "--device", "cuda")
    assert "cuda" in line.lower()
    assert not (run_dir / "config.prev.yaml").exists()


@no_cuda
def test_an_engine_refused_resume_of_an_interrupted_run_leaves_it_resumable(interrupted, tmp_path):
    """A plain resume with another device (a where-key: no --force needed) that the engine
    refuses writes nothing, so the next plain `--resume` still works."""
    root, run_dir = _copy(interrupted, tmp_path)
    _refused(root, run_dir, "--device", "cuda")
    again = cli("--resume", run_dir.name, "--json", checkpoints=root)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["status"] == "done"


def test_a_hand_edited_config_is_refused_by_the_engine_and_accepted_with_force(
    interrupted, tmp_path
):
    """config.yaml edited after the run started: the launcher cannot tell (it compares against
    config.yaml), the engine can (against the config its checkpoint was trained with)."""
    root, run_dir = _copy(interrupted, tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("epochs: 3\n", "epochs: 2\n", 1))
    line = _refused(root, run_dir)
    assert "differs from its checkpoint" in line and "train.epochs" in line and "--force" in line
    forced = cli("--resume", run_dir.name, "--force", checkpoints=root)
    assert forced.returncode == 0, forced.stderr
    (resumed,) = [e for e in read_events(run_dir / "events.jsonl") if isinstance(e, Resumed)]
    assert resumed.config_changes == ["train.epochs"]


def test_a_config_edited_to_another_model_cannot_resume_even_with_force(interrupted, tmp_path):
    root, run_dir = _copy(interrupted, tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("depth: 10", "depth: 16", 1))
    assert "model.depth" in _refused(root, run_dir)
    line = _refused(root, run_dir, "--force")
    assert "does not fit this run's model" in line and "last.pt" in line


def _write_checkpoint(path: Path, state: object) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    path.write_bytes(checkpoint_files.header(payload) + payload)


DAMAGES = {
    "no-loop": (lambda s: s.pop("loop"), "its loop is missing or of the wrong type"),
    "loop-damaged": (lambda s: s.update(loop={"epoch": 1}), "its loop state is damaged"),
    "model-not-a-dict": (
        lambda s: s.update(model=[1]),
        "its model is missing or of the wrong type",
    ),
    "not-ours": (lambda s: s.clear() or s.update(model={}), "its optimizer, scheduler, loop"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGES))
def test_a_crafted_checkpoint_cannot_continue_a_run(interrupted, kind):
    from engine import checkpoint
    from engine.checkpoint_files import CheckpointError
    from engine.loop_state import check_training_state

    state = checkpoint.load(interrupted[1] / "last.pt")
    damage, expected = DAMAGES[kind]
    damage(state)
    with pytest.raises(CheckpointError) as info:
        check_training_state(state, Path("/x/last.pt"))
    assert str(info.value).startswith("checkpoint /x/last.pt cannot continue a run: ")
    assert expected in str(info.value)


def test_a_crafted_checkpoint_is_refused_in_one_line(interrupted, tmp_path):
    """Through the CLI and the engine: a payload that is not ours, with a valid signature."""
    root, run_dir = _copy(interrupted, tmp_path)
    from engine import checkpoint

    state = checkpoint.load(run_dir / "last.pt")
    DAMAGES["not-ours"][0](state)
    _write_checkpoint(run_dir / "last.pt", state)
    line = _refused(root, run_dir)
    assert f"checkpoint {run_dir / 'last.pt'} cannot continue a run" in line


def test_resuming_a_read_only_run_folder_is_refused_before_anything_starts(tmp_path, monkeypatch):
    """A run folder the user may not write (faked: the tests run as root, which may write
    anywhere) is refused in one line before an engine starts."""
    from engine.config import dump_config, load_config
    from engine.errors import BadInputError
    from engine.runs import create_run_dir
    from tui.orchestration import launcher

    run_id, run_dir = create_run_dir(tmp_path, "quickstart", dump_config(load_config("quickstart")))
    real_access = os.access
    monkeypatch.setattr(
        launcher.os, "access", lambda p, mode: Path(p) != run_dir and real_access(p, mode)
    )
    with pytest.raises(BadInputError, match=f"cannot resume run {run_id}: its folder .* read-only"):
        launcher.prepare_resume(run_id, tmp_path, None, [], force=True)
