"""Interruptions: SIGKILL at random moments, resume from the CLI, NaN losses, a full disk."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine import __main__ as engine_main
from engine import checkpoint, checkpoint_files, test_hooks
from engine.config import dump_config, load_config
from engine.events import BadStep, EventWriter, Failed, Finished, Resumed, RunStarted, read_events
from engine.runs import RunRegistry, create_run_dir
from engine.trainer import Trainer
from tests.conftest import ROOT, cli
from tests.engine.test_strict_json import assert_strict_json_files

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers

SMALL = [
    *("--set", "model.name=wrn", "--set", "model.depth=10", "--set", "model.width=1"),
    *("--set", "model.dropout=0.2", "--set", "data.subset=320", "--set", "data.val_size=100"),
    *("--set", "train.epochs=6", "--set", "eval.test=false", "--set", "train.checkpoint_every_s=1"),
]


def _start(ck: Path, *args: str, pause_at: list[int] | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(ck), "NO_COLOR": "1"}
    env.pop(test_hooks.PAUSE_ENV, None)
    if pause_at:
        env[test_hooks.PAUSE_ENV] = ",".join(map(str, pause_at))
    return subprocess.Popen(
        [sys.executable, "-c", "from tui.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait_for(log: Path, predicate, timeout: float = 90) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        events = read_events(log) if log.exists() else []
        if predicate(events):
            return events
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting on {log}")


def _wait_for_log(ck: Path, timeout: float = 90) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list(ck.glob("*/events.jsonl"))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no run folder appeared under {ck}")


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(run_dir / "last.pt")["model"]


def test_sigkill_at_random_moments_then_resume_matches_an_uninterrupted_run(tmp_path):
    """Three sessions are each killed at a random moment, but never past a step chosen in
    advance: the engine stops itself (test hook) at its session's deadline step, so every kill
    lands inside training, before the run's end, however fast or slow the machine is."""
    reference = cli("--run", "quickstart", "--json", *SMALL, checkpoints=tmp_path / "ref")
    assert reference.returncode == 0, reference.stderr
    expected = _weights(tmp_path / "ref" / json.loads(reference.stdout)["run_id"])
    (started,) = [
        e
        for e in read_events(next((tmp_path / "ref").glob("*/events.jsonl")))
        if isinstance(e, RunStarted) and e.type == "run_started"
    ]
    spe = started.steps_per_epoch
    total = spe * started.epochs
    # deadlines after the first epoch's checkpoint and before the last step, evenly spread
    deadlines = [spe + 2 + i * (total - spe - 4) // 2 for i in range(3)]
    assert deadlines == sorted(set(deadlines)) and deadlines[-1] < total - 1, deadlines

    ck = tmp_path / "killed"
    rng = random.Random(7)
    proc = _start(ck, "--run", "quickstart", *SMALL, pause_at=deadlines)
    log = _wait_for_log(ck)
    for kill in range(3):
        # wait until this session has started (and the first checkpoint exists) ...
        events = _wait_for(
            log,
            lambda ev, n=kill + 1: (
                sum(e.type in ("run_started", "resumed") for e in ev) >= n
                and any(e.type == "checkpoint" for e in ev)
            ),
        )
        pid = [e for e in events if e.type in ("run_started", "resumed")][-1].pid
        # ... then kill it after a random delay, or as soon as it stopped at its deadline
        kill_at = time.time() + rng.uniform(0.0, 1.5)
        while time.time() < kill_at and not test_hooks.is_paused(pid):
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert checkpoint.load_with_fallback(log.parent / "last.pt")[0]["model"]  # intact
        proc = _start(ck, "--resume", "last", pause_at=deadlines if kill < 2 else None)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    run_dir = log.parent
    got = _weights(run_dir)
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    events = read_events(run_dir / "events.jsonl")
    assert sum(e.type == "resumed" for e in events) == 3
    last = events[-1]
    assert isinstance(last, Finished) and last.status == "done"
    assert RunRegistry(ck).runs()[0].status == "done"


def test_sigterm_exit_is_quick_and_resume_continues_the_same_run(tmp_path):
    proc = _start(tmp_path, "--run", "quickstart", "--json", *SMALL, "--set", "train.epochs=50")
    log = None
    while log is None:
        found = list(tmp_path.glob("*/events.jsonl"))
        log = found[0] if found else None
        time.sleep(0.05)
    _wait_for(log, lambda ev: any(e.type == "step" for e in ev))
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    took = time.time() - sent
    assert proc.returncode == 143, err
    assert took < 30, took
    print(f"SIGTERM to exit: {took:.2f} s")
    assert json.loads(out)["status"] == "interrupted"
    # a changed recipe is refused without --force ...
    changed = cli("--resume", log.parent.name, "--set", "optim.lr=0.01", checkpoints=tmp_path)
    assert changed.returncode == 2 and "optim.lr" in changed.stderr and "--force" in changed.stderr
    # ... and accepted with it, recorded in the resumed event
    forced = cli(
        "--resume",
        "last",
        "--json",
        "--force",
        "--set",
        "optim.lr=0.01",
        "--set",
        "train.epochs=2",
        checkpoints=tmp_path,
    )
    assert forced.returncode == 0, forced.stderr
    summary = json.loads(forced.stdout)
    assert summary["status"] == "done" and summary["run_id"] == log.parent.name
    (resumed,) = [e for e in read_events(log) if isinstance(e, Resumed)]
    assert resumed.config_changes == ["optim.lr", "train.epochs"]
    assert "resuming after epoch" in forced.stderr
    assert (log.parent / "config.prev.yaml").exists()
    again = cli("--resume", "last", checkpoints=tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr


def _tiny_trainer(tmp_path: Path, *overrides: str) -> Trainer:
    cfg = load_config(
        "quickstart",
        [
            "model.name=wrn",
            "model.depth=10",
            "model.width=1",
            "data.subset=320",
            "data.val_size=100",
            "train.epochs=2",
            "eval.test=false",
            *overrides,
        ],
    )
    return Trainer(cfg, tmp_path, "nan", "quickstart", EventWriter(tmp_path / "events.jsonl"))


def _poison_loss(trainer: Trainer, bad_steps: set[int]) -> None:
    """Make the loss non-finite at the given (1-based) steps."""
    original_setup = trainer._setup

    def setup() -> None:
        original_setup()
        loss_fn = trainer.loss_fn

        def poisoned(logits, target):
            loss = loss_fn(logits, target)
            return loss * float("nan") if trainer.state.step + 1 in bad_steps else loss

        trainer.loss_fn = poisoned

    trainer._setup = setup  # type: ignore[method-assign]


def test_nan_loss_skips_the_update_and_records_it(tmp_path):
    trainer = _tiny_trainer(tmp_path)
    _poison_loss(trainer, {3, 4})
    summary = trainer.run()
    assert summary["status"] == "done"
    bad = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, BadStep)]
    assert [(e.step, e.consecutive) for e in bad] == [(3, 1), (4, 2)]
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_consecutive_nan_losses_end_as_diverged_with_the_checkpoint_intact(tmp_path):
    trainer = _tiny_trainer(tmp_path, "train.max_bad_steps=3")
    _poison_loss(trainer, set(range(13, 100)))  # epoch 1 (10 steps) is fine, then all bad
    summary = trainer.run()
    assert summary["status"] == "diverged" and summary["epochs_done"] == 1
    state = checkpoint.load(tmp_path / "last.pt")
    assert state["loop"]["epoch"] == 1 and state["loop"]["step"] == 10
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    last = read_events(tmp_path / "events.jsonl")[-1]
    assert isinstance(last, Finished) and last.status == "diverged"
    # the NaN losses are written as strict JSON (null and a flag), in every file of the run
    assert assert_strict_json_files(tmp_path) >= 3
    bad = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, BadStep)]
    assert len(bad) == 3 and all(math.isnan(e.loss) for e in bad)


def test_full_disk_stops_cleanly_with_the_previous_checkpoint_intact(tmp_path, monkeypatch, capsys):
    cfg = load_config(
        "quickstart",
        [
            "model.name=wrn",
            "model.depth=10",
            "model.width=1",
            "data.subset=320",
            "data.val_size=100",
            "train.epochs=3",
            "eval.test=false",
        ],
    )
    _, run_dir = create_run_dir(tmp_path, "quickstart", dump_config(cfg))
    real_save = checkpoint.save_atomic
    calls = []

    def save(state, path, keep_previous=False):
        calls.append(path.name)
        if len(calls) > 2:  # epoch 1's last.pt and best.pt are written, then the disk is full
            raise OSError(28, "No space left on device")
        real_save(state, path, keep_previous)

    monkeypatch.setattr(checkpoint, "save_atomic", save)
    assert engine_main.run(run_dir, progress=False) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "intact" in err[0]
    assert checkpoint.load(run_dir / "last.pt")["loop"]["epoch"] == 1


def test_every_torch_load_is_weights_only():
    for path in [*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("tui").rglob("*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}:{number}: {line.strip()}"


@pytest.mark.parametrize("flip_at", [-1, -5000])
def test_any_damaged_byte_is_refused(tmp_path, flip_at):
    state = {"model": {"w": torch.arange(4096.0)}}
    path = tmp_path / "last.pt"
    checkpoint.save_atomic(state, path)
    data = bytearray(path.read_bytes())
    data[flip_at] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(checkpoint_files.CheckpointError, match=str(path)):
        checkpoint.load(path)


def test_a_signal_while_the_engine_starts_up_stops_it_before_training(tmp_path, monkeypatch):
    """SIGINT/SIGTERM before the trainer exists (the engine is importing torch) must not be lost:
    an exception raised from the handler inside an import would be swallowed and the run would
    train on. The handler notes it and the engine stops before the first step."""
    import engine.trainer

    cfg = load_config("quickstart", ["data.subset=64", "eval.test=false"])
    _, run_dir = create_run_dir(tmp_path, "quickstart", dump_config(cfg))
    built = []

    class SignalledWhileStarting(engine.trainer.Trainer):
        def __init__(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGTERM)  # arrives before run() has a trainer
            super().__init__(*args, **kwargs)
            built.append(self)

        def run(self):
            raise AssertionError("trained after a signal during start-up")

    monkeypatch.setattr(engine.trainer, "Trainer", SignalledWhileStarting)
    previous = signal.getsignal(signal.SIGTERM)
    try:
        assert engine_main.run(run_dir, progress=False) == 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert built  # the handler ran while the trainer was being built, and did not raise there
    last = read_events(run_dir / "events.jsonl")[-1]
    assert isinstance(last, Failed) and last.status == "interrupted"
    assert not (run_dir / "last.pt").exists()


def _snapshot(trainer: Trainer) -> tuple[dict, dict]:
    """Parameters (and EMA parameters) and optimizer state; BatchNorm statistics are left out:
    the forward pass updates them before the loss is known, as in any framework."""
    weights = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    if trainer.ema is not None:
        weights |= {f"ema.{k}": v.clone() for k, v in trainer.ema.named_parameters()}
    state = {
        (i, k): v.clone()
        for i, s in enumerate(trainer.optimizer.state.values())
        for k, v in s.items()
        if torch.is_tensor(v)
    }
    return weights, state


@pytest.mark.parametrize(
    ("optim", "bad_step"),
    [
        ("optim.name=sgd", 1),
        ("optim.name=sgd", 3),
        ("optim.name=adam", 1),
        ("optim.name=adamw", 3),
        ("train.ema_decay=0.9", 2),
    ],
)
def test_a_skipped_step_leaves_weights_and_optimizer_state_bit_for_bit(tmp_path, optim, bad_step):
    """Fused SGD/Adam/AdamW skip a non-finite step on the device (no host read): the weights
    (and EMA) and every optimizer state tensor after it equal those before it, also when the
    very first step is skipped (SGD's momentum buffers start at zero, not `empty_like`)."""
    trainer = _tiny_trainer(tmp_path, optim, "train.epochs=1")
    _poison_loss(trainer, {bad_step})
    trainer._setup()
    assert trainer.found_inf is not None  # the device-side skip is in use
    snapshots = []
    original = trainer._step

    def step(*args):
        snapshots.append(_snapshot(trainer))
        original(*args)
        snapshots.append(_snapshot(trainer))
        if trainer.state.step == bad_step + 1:
            trainer.stop_signal = 2

    trainer._setup = lambda: None  # type: ignore[method-assign]
    trainer._step = step  # type: ignore[method-assign]
    trainer.run()
    before, after = snapshots[2 * (bad_step - 1)], snapshots[2 * bad_step - 1]
    for part_before, part_after in zip(before, after, strict=True):
        assert part_before.keys() <= part_after.keys()
        for key in part_after:
            if key in part_before:
                assert torch.equal(part_before[key], part_after[key]), key
            else:  # Adam creates its state on the first step: zeros are a fresh state
                assert not part_after[key].any(), key
    # the next step trains normally, from finite state
    following = snapshots[2 * bad_step + 1][0]
    assert any(not torch.equal(following[k], after[0][k]) for k in following)
    assert all(torch.isfinite(v).all() for v in following.values())
    bad = [e for e in read_events(tmp_path / "events.jsonl") if isinstance(e, BadStep)]
    assert [(e.step, e.consecutive) for e in bad] == [(bad_step, 1)]
