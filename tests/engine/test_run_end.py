"""The end of a run (training over: checkpoints, test pass, TTA, `finished`, its sinks), killed or
signalled at known moments: the engine pauses itself at a named point (test_hooks.pause_at), the
test acts on it there, then waits on its pid. Every case ends with a run whose summary.json, card
and registry row hold an uninterrupted run's numbers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import checkpoint, test_hooks
from engine.events import Resumed, RunStarted, read_events
from engine.runs import RunRegistry
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.e2e  # starts engine processes: see pyproject's markers

END = [  # 2 epochs, the best one the first: the test pass evaluates best.pt and the last weights
    *("--set", "model.name=wrn", "--set", "model.depth=10", "--set", "model.width=1"),
    *("--set", "data.subset=320", "--set", "data.val_size=100", "--set", "train.epochs=2"),
    *("--set", "eval.batch_size=500", "--set", 'eval.tta=[identity, hflip, "shift:2,0"]'),
]
# what an interruption must not change (timings aside)
NUMBERS = (
    "status",
    "epochs_done",
    "step",
    "best_val_top1",
    "best_epoch",
    "test_top1",
    "test_top5",
    "test_loss",
    "test_top1_last",
    "test_top5_last",
    "macro_ap",
    "macro_auc",
    "per_class_ap",
    "per_class_auc",
    "tta",
)


def _env(ck: Path, pause_at: str | None) -> dict[str, str]:
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(ck), "NO_COLOR": "1", "COLUMNS": "160"}
    env.pop(test_hooks.PAUSE_ENV, None)
    env.pop(test_hooks.PAUSE_AT_ENV, None)
    if pause_at:
        env[test_hooks.PAUSE_AT_ENV] = pause_at
    return env


def _start(ck: Path, *args: str, pause_at: str | None = None) -> subprocess.Popen[str]:
    """`cifar-tui ARGS`, its engine pausing itself at `pause_at`."""
    return subprocess.Popen(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        cwd=ROOT,
        env=_env(ck, pause_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


_PAUSED: list[int] = []  # engines a test found paused: none outlives its test


@pytest.fixture(autouse=True)
def _no_paused_engine_left():
    yield
    while _PAUSED:
        pid = _PAUSED.pop()
        with contextlib.suppress(OSError):  # gone already: nothing to do
            if test_hooks.is_paused(pid):  # still stopped: the test failed before its kill
                os.kill(pid, signal.SIGKILL)


def _paused_engine(run_dir: Path, sessions: int, proc: subprocess.Popen[str]) -> int:
    """The pid of the run's engine, once its session number `sessions` has paused itself."""
    deadline = time.time() + 300
    while time.time() < deadline:
        log = run_dir / "events.jsonl"
        starts = [e for e in read_events(log) if isinstance(e, RunStarted)]  # resumed too
        if len(starts) >= sessions and test_hooks.is_paused(starts[-1].pid):
            _PAUSED.append(starts[-1].pid)
            return starts[-1].pid
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"the engine of {run_dir.name} never paused")


def _numbers(summary: dict) -> dict:
    return {k: summary.get(k) for k in NUMBERS}


def _check_records(run_dir: Path, reference: dict) -> None:
    """summary.json, card.json / card.md and the registry row hold the reference's numbers."""
    summary = json.loads((run_dir / "summary.json").read_text())
    assert _numbers(summary) == _numbers(reference)
    card = json.loads((run_dir / "card.json").read_text())
    assert card["status"] == "done" and card["test"]["top1"] == reference["test_top1"]
    assert card["tta"] == reference["tta"] and card["timing"]["finished"] is not None
    assert "status: done" in (run_dir / "card.md").read_text()
    (row,) = RunRegistry(run_dir.parent).runs()
    assert (row.status, row.test_top1, row.test_top1_last, row.best_val_top1) == (
        "done",
        reference["test_top1"],
        reference["test_top1_last"],
        reference["best_val_top1"],
    )
    assert row.wall_s == summary["wall_s"]


def _trained_in_last_session(run_dir: Path) -> list[str]:
    """The training events (`step`, `epoch_end`) after the log's last `resumed` event."""
    events = read_events(run_dir / "events.jsonl")
    last = max(i for i, e in enumerate(events) if isinstance(e, Resumed))
    return [e.type for e in events[last:] if e.type in ("step", "epoch_end")]


@pytest.fixture(scope="module")
def ended(tmp_path_factory) -> tuple[dict, Path, str]:
    """(an uninterrupted run's summary, a runs folder whose one run was SIGKILLed right after
    training, its id). The kill lands where the test pass is about to start: the first kill
    point of the end of a run."""
    base = tmp_path_factory.mktemp("ended")
    reference = cli("--run", "quickstart", "--json", *END, checkpoints=base / "ref")
    assert reference.returncode == 0, reference.stderr
    ck = base / "trained"
    proc = _start(ck, "--run", "quickstart", "--json", *END, pause_at="test_pass")
    deadline = time.time() + 120
    while not list(ck.glob("*/events.jsonl")):
        assert time.time() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    (run_dir,) = [p.parent for p in ck.glob("*/events.jsonl")]
    os.kill(_paused_engine(run_dir, 1, proc), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 137 and json.loads(out)["status"] == "crashed", err
    assert "ended without a final event" in err
    assert checkpoint.load(run_dir / "last.pt")["loop"]["epoch"] == 2
    return json.loads(reference.stdout), ck, run_dir.name


def _copy(ended: tuple[dict, Path, str], to: Path) -> tuple[dict, Path, Path]:
    """(the reference summary, a copy of the killed run's runs folder, its run folder)."""
    reference, ck, run_id = ended
    shutil.copytree(ck, to)
    return reference, to, to / run_id


# (a kill at `test_pass`, after the last checkpoint, is how the `ended` fixture makes its run)
@pytest.mark.parametrize("point", ["test_batch:3"])
def test_a_kill_before_finished_leaves_a_crashed_run_that_resume_only_evaluates(
    ended, tmp_path, point
):
    reference, ck, run_dir = _copy(ended, tmp_path / "ck")
    proc = _start(ck, "--resume", run_dir.name, "--json", pause_at=point)
    os.kill(_paused_engine(run_dir, 2, proc), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 137 and json.loads(out)["status"] == "crashed", err
    listed = cli("runs", checkpoints=ck)
    assert "crashed" in listed.stdout, listed.stdout
    resumed = cli("--resume", run_dir.name, "--json", checkpoints=ck)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 2 + 0 steps" in resumed.stderr
    assert _trained_in_last_session(run_dir) == []
    assert _numbers(json.loads(resumed.stdout)) == _numbers(reference)
    _check_records(run_dir, reference)


@pytest.mark.parametrize("point", ["finished"])  # between sinks: the cases below
def test_a_kill_after_finished_is_a_done_run_whose_launcher_completes_it(ended, tmp_path, point):
    """The engine dies after its `finished` event, before (or between) its sinks: the launcher
    reports the run done (exit 0, its summary on --json) and writes what the sinks did not."""
    reference, ck, run_dir = _copy(ended, tmp_path / "ck")
    proc = _start(ck, "--resume", run_dir.name, "--json", pause_at=point)
    os.kill(_paused_engine(run_dir, 2, proc), signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert _numbers(json.loads(out)) == _numbers(reference)
    assert "ended (exit 137) after the run finished" in err and "completed from its event" in err
    _check_records(run_dir, reference)


@pytest.mark.parametrize(
    ("point", "completed"),
    [
        ("finished", "its summary and card were completed"),  # the row: `runs` repaired it
        ("sink:2", "its card was completed"),  # summary and row written, the card not
    ],
)
def test_a_kill_after_finished_with_no_launcher_is_completed_by_resume(
    ended, tmp_path, point, completed
):
    """No launcher saw the engine die (it ran alone, or was killed too): `runs` says done
    (the registry repairs its row from the log), and `--resume` completes the summary and card
    from the log without training or evaluating, once."""
    reference, ck, run_dir = _copy(ended, tmp_path / "ck")
    engine = subprocess.Popen(
        [sys.executable, "-m", "engine", "run", str(run_dir), "--resume", "--no-progress"],
        cwd=ROOT,
        env=_env(ck, point),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.kill(_paused_engine(run_dir, 2, engine), signal.SIGKILL)
    engine.communicate(timeout=60)
    assert not (run_dir / "card.json").exists()
    log_size = (run_dir / "events.jsonl").stat().st_size
    listed = cli("runs", checkpoints=ck)
    assert "done" in listed.stdout and "crashed" not in listed.stdout, listed.stdout
    resumed = cli("--resume", run_dir.name, "--json", checkpoints=ck)
    assert resumed.returncode == 0, resumed.stderr
    line = f"cifar-tui: run {run_dir.name} was already finished; {completed} from its event log"
    assert resumed.stderr == line + "\n"
    assert _numbers(json.loads(resumed.stdout)) == _numbers(reference)
    assert (run_dir / "events.jsonl").stat().st_size == log_size  # no engine ran
    _check_records(run_dir, reference)
    again = cli("--resume", run_dir.name, checkpoints=ck)
    assert again.returncode == 2 and "already finished; nothing to resume" in again.stderr


@pytest.mark.parametrize("point", ["test_batch:2", "tta:2"])
def test_sigterm_in_the_test_pass_or_tta_interrupts_and_resume_only_evaluates(
    ended, tmp_path, point
):
    """SIGTERM inside the test pass or TTA: the engine stops there (exit 143, `interrupted`),
    its final checkpoint intact; `--resume` trains nothing, evaluates, and ends `done` with the
    numbers of a run never interrupted."""
    reference, ck, run_dir = _copy(ended, tmp_path / "ck")
    proc = _start(ck, "--resume", run_dir.name, "--json", pause_at=point)
    pid = _paused_engine(run_dir, 2, proc)
    os.kill(pid, signal.SIGTERM)  # pending while it is stopped: handled where it paused
    os.kill(pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert json.loads(out)["status"] == "interrupted"
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert checkpoint.load(run_dir / "last.pt")["loop"]["epoch"] == 2
    resumed = cli("--resume", run_dir.name, "--json", checkpoints=ck)
    assert resumed.returncode == 0, resumed.stderr
    assert _trained_in_last_session(run_dir) == []
    assert _numbers(json.loads(resumed.stdout)) == _numbers(reference)
    _check_records(run_dir, reference)


def test_a_sweep_rerun_counts_a_run_killed_after_finished_as_done_and_completes_it(ended, tmp_path):
    """The sweep and its engine are both killed after the engine's `finished` event: run again,
    the sweep counts the run finished, completes its records from the log and trains nothing."""
    reference = ended[0]
    sets = ", ".join(json.dumps(value) for value in END[1::2])  # ["key=value", ...]
    sweep = tmp_path / "end.yaml"
    sweep.write_text(f"name: end\nseeds: [0]\npresets: [quickstart]\nset: [{sets}]\n")
    ck = tmp_path / "ck"
    first = _start(ck, "sweep", str(sweep), pause_at="finished")
    deadline = time.time() + 120
    while not list(ck.glob("*/events.jsonl")):
        assert time.time() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    (run_dir,) = [p.parent for p in ck.glob("*/events.jsonl")]
    engine = _paused_engine(run_dir, 1, first)
    first.kill()
    first.wait(timeout=60)
    os.kill(engine, signal.SIGKILL)  # (it shares the sweep's pipes: read them once it is gone)
    first.communicate(timeout=60)
    assert not (run_dir / "summary.json").exists()
    log_size = (run_dir / "events.jsonl").stat().st_size
    again = cli("sweep", str(sweep), checkpoints=ck)
    assert again.returncode == 0, again.stderr
    assert "= 1 runs; 1 finished, 0 to resume, 0 to start" in again.stderr, again.stderr
    completed = "its summary, registry row and card were completed from its event log"
    assert f"{run_dir.name} finished; {completed}" in again.stderr
    assert (run_dir / "events.jsonl").stat().st_size == log_size  # no engine ran
    assert [p.parent for p in ck.glob("*/events.jsonl")] == [run_dir]
    _check_records(run_dir, reference)
