"""Headless runs end to end, as a user runs them: `cifar-tui --run PRESET ...` without a TTY."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from engine.config import load_config, recipe_summary
from engine.events import Finished, read_events
from engine.runs import RunRegistry
from tests.conftest import ROOT, cli

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers

# quickstart cut down to seconds: WRN-10-1, 2 epochs of 1,600 synthetic images
FAST = [
    *("--set", "model.name=wrn", "--set", "model.depth=10", "--set", "model.width=1"),
    *("--set", "data.subset=1600", "--set", "train.epochs=2", "--set", "data.val_size=500"),
]
SUMMARY_KEYS = {
    "run_id",
    "status",
    "dataset",
    "epochs",
    "best_val_top1",
    "best_epoch",
    "test_top1",
    "test_top5",
    "test_top1_last",
    "wall_s",
    "img_per_s",
}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One short synthetic run shared by the tests that inspect its outputs."""
    ck = tmp_path_factory.mktemp("checkpoints")
    result = cli("--run", "quickstart", "--json", *FAST, checkpoints=ck)
    assert result.returncode == 0, result.stderr
    return ck, result


def test_json_summary_on_stdout(finished_run):
    _, result = finished_run
    summary = json.loads(result.stdout)
    assert set(summary) >= SUMMARY_KEYS
    assert (
        summary["status"] == "done" and summary["dataset"] == "synthetic" and summary["synthetic"]
    )
    assert summary["epochs"] == 2 and summary["best_epoch"] in (1, 2)
    assert len(summary["per_class_ap"]) == 100 and len(summary["per_class_auc"]) == 100
    # learned something: above the 1 % of chance after two tiny epochs (measured about 7 %)
    assert summary["test_top1"] > 0.03, summary


def test_display_on_stderr_marks_synthetic_and_prints_epochs(finished_run):
    _, result = finished_run
    assert "SYNTHETIC" in result.stderr
    assert "1/2" in result.stderr and "2/2" in result.stderr
    assert "test top-1 / top-5 (best)" in result.stderr


def test_run_folder_holds_everything(finished_run):
    ck, result = finished_run
    run_dir = ck / json.loads(result.stdout)["run_id"]
    for name in ("config.yaml", "events.jsonl", "last.pt", "best.pt", "eval.npz", "summary.json"):
        assert (run_dir / name).is_file(), name
    types = [e.type for e in read_events(run_dir / "events.jsonl")]
    assert types[0] == "run_started" and types[-1] == "finished"
    assert types.count("epoch_end") == 2 and "step" in types and "checkpoint" in types
    assert types.count("evaluated") == 2
    with np.load(run_dir / "eval.npz") as ev:
        confusion = ev["confusion"]
        assert confusion.shape == (100, 100) and confusion.sum() == 2000
        # rows are true classes: each synthetic test class has 20 images
        assert (confusion.sum(axis=1) == 20).all()
        assert ev["pr_precision"].shape == (100, 101) and ev["class_names"].shape == (100,)
        summary = json.loads((run_dir / "summary.json").read_text())
        assert np.trace(confusion) / 2000 == pytest.approx(summary["test_top1"])


def test_registry_and_runs_command_list_the_run(finished_run):
    ck, result = finished_run
    run_id = json.loads(result.stdout)["run_id"]
    (row,) = [r for r in RunRegistry(ck).runs() if r.run_id == run_id]
    assert row.status == "done" and row.test_top1 is not None and row.epochs_done == 2
    listing = cli("runs", checkpoints=ck)
    assert listing.returncode == 0 and run_id in listing.stdout and "done" in listing.stdout


def test_misspelt_override_is_refused_naming_the_key(tmp_path):
    result = cli("--run", "quickstart", "--set", "optim.lrr=0.1", checkpoints=tmp_path)
    assert result.returncode == 2
    assert "optim.lr" in result.stderr and "Traceback" not in result.stderr
    assert not any(tmp_path.iterdir()), "nothing may be written for bad input"


def test_unknown_preset_is_refused(tmp_path):
    result = cli("--run", "resnet5", checkpoints=tmp_path)
    assert result.returncode == 2 and "did you mean 'resnet50'" in result.stderr


def test_missing_dataset_offline_says_where_to_put_it(tmp_path):
    result = cli(
        "--run",
        "resnet18",
        "--data-dir",
        str(tmp_path / "nowhere"),
        "--set",
        "data.download=false",
        checkpoints=tmp_path / "ck",
    )
    assert result.returncode == 2
    assert "cifar-100-python" in result.stderr and "Traceback" not in result.stderr


def test_no_terminal_without_run_prints_hint_and_exits_2(tmp_path):
    result = cli(checkpoints=tmp_path)
    assert result.returncode == 2 and "--run PRESET" in result.stderr


def test_presets_command_lists_descriptions(tmp_path):
    result = cli("presets", checkpoints=tmp_path)
    assert result.returncode == 0
    assert (
        "quickstart" in result.stdout
        and "resnet101" in result.stdout
        and "ResNet-50" in result.stdout
    )
    header = next(
        line for line in result.stdout.splitlines() if "preset" in line and "loss" in line
    )
    for column in ("model", "optimizer", "augmentation", "epochs", "description"):
        assert column in header
    rows: dict[str, list[str]] = {}  # table rows, wrapped cells joined back
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if not cells:
            continue
        if cells[1]:  # the preset column: a new row (the first column says where it is from)
            current = rows.setdefault(cells[1], cells)
        else:
            current[:] = [f"{a} {b}".strip() for a, b in zip(current, cells, strict=True)]
    assert rows["resnet50_sam_ls"][0] == "bundled"
    assert "bundled" in result.stdout.splitlines()[3] and "engine/recipes/presets" in result.stdout
    assert rows["resnet50_sam_ls"][2:6] == [
        "resnet50",
        "sgd lr 0.1 + asam rho 2",
        "cross_entropy ls 0.1",
        "random_crop, hflip, rotation, autoaugment, random_erasing",
    ]


def test_recipe_summary_names_every_part():
    cfg = load_config("resnet50_sam_ls")
    summary = recipe_summary(cfg)
    assert summary["model"] == "resnet50" and summary["epochs"] == "200"
    assert summary["optimizer"] == "sgd lr 0.1 + asam rho 2"
    assert summary["loss"] == "cross_entropy ls 0.1"
    assert summary["augmentation"].startswith("random_crop, hflip")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_exits_with_128_plus_signal(tmp_path, sig, code):
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(tmp_path), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from tui.cli import main; main()",
            "--run",
            "quickstart",
            "--json",
            "--set",
            "train.epochs=50",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    events_file = _wait_for_step(tmp_path)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted"
    events = read_events(events_file)
    last = events[-1]
    assert isinstance(last, Finished) and last.status == "interrupted"
    assert (events_file.parent / "last.pt").is_file()
    (row,) = RunRegistry(tmp_path).runs()
    assert row.status == "interrupted"


def _wait_for_step(root: Path, timeout: float = 60) -> Path:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in root.glob("*/events.jsonl"):
            if any(e.type == "step" for e in read_events(path)):
                return path
        time.sleep(0.1)
    raise AssertionError("no step event within the timeout")


def test_an_engine_killed_without_a_word_is_reported_with_the_way_back(tmp_path):
    """SIGKILL leaves no final event: the launcher says so in one line, with the resume command,
    and exits 137; the run reads as crashed."""
    from engine.test_hooks import PAUSE_ENV, is_paused

    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(tmp_path), "NO_COLOR": "1", PAUSE_ENV: "3"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tui.cli import main; main()", "--run", "quickstart"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.time() + 120
    started: list[Path] = []
    while not started:  # the engine's first event names its run folder
        assert time.time() < deadline, "the engine never started"
        started = [p.parent for p in tmp_path.glob("*/events.jsonl") if read_events(p)]
        time.sleep(0.05)
    run_dir = started[0]
    pid = int((run_dir / "engine.lock").read_text())  # the engine holding the run
    while not is_paused(pid):  # the engine stops itself after step 3 (test hook)
        assert time.time() < deadline, "the engine never reached its pause step"
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 137, err
    line = err.strip().splitlines()[-1]
    assert "ended without a final event (exit 137)" in line
    assert f"cifar-tui --resume {run_dir.name}" in line
    (row,) = RunRegistry(tmp_path).runs()
    assert row.status == "crashed"


def test_resuming_a_run_its_engine_still_holds_is_refused_before_anything_is_written(tmp_path):
    from engine.config import dump_config, load_config
    from engine.run_lock import RunLock
    from engine.runs import create_run_dir

    run_id, run_dir = create_run_dir(tmp_path, "quickstart", dump_config(load_config("quickstart")))
    with RunLock(run_dir).acquire(signal_pid=4242):
        before = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir())
        result = cli("--resume", run_id, "--force", "--set", "optim.lr=0.01", checkpoints=tmp_path)
        after = sorted((p.name, p.stat().st_mtime_ns) for p in run_dir.iterdir())
    assert result.returncode == 2, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.strip()]
    assert f"run {run_id} is already running (engine pid 4242)" in line and "attach" in line
    assert after == before  # no config.prev.yaml, no config.yaml rewritten
