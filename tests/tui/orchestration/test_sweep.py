"""Sweeps: the sweep file, the plan, the table's statistics, and a real sweep interrupted midway."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from rich.console import Console

from engine.card import CARD_FIELDS
from engine.errors import BadInputError, ConfigError
from engine.events import Finished, RunStarted, read_events
from engine.outcome import RunSummary
from engine.presets import bundled_folder
from engine.runs import DB_FILE, RunRegistry, run_ids
from tests.conftest import ROOT, cli
from tui.orchestration import procs
from tui.orchestration import sweep as sweeps
from tui.orchestration.exports.results_table import (
    CSV_FIELDS,
    RunResult,
    Stat,
    build_table,
    to_csv,
    to_markdown,
)
from tui.orchestration.sweep import runner as sweep_runner

PRESETS = bundled_folder("preset")

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers

TINY = sweeps.SWEEPS_DIR / "tiny.yaml"
LABELS = ["sgd-baseline", "+random-erasing", "asam+label-smoothing"]


def _sweep_file(folder: Path, text: str, name: str = "s.yaml") -> str:
    path = folder / name
    path.write_text(text)
    return str(path)


# --------------------------------------------------------------------------- the sweep file


def test_presets_form_gives_one_recipe_per_entry_with_common_overrides_first():
    spec = sweeps.parse_sweep("tiny")
    assert spec.name == "tiny" and spec.seeds == (0, 1) and spec.source == TINY
    assert [r.label for r in spec.recipes] == LABELS
    assert [r.preset for r in spec.recipes] == ["resnet18", "resnet50_erasing", "resnet50_sam_ls"]
    assert spec.recipes[0].overrides[0] == 'model.name="vit"'
    assert "train.epochs=2" in spec.recipes[2].overrides


def test_grid_form_is_the_product_first_key_slowest_and_runs_go_seed_major(tmp_path):
    path = _sweep_file(
        tmp_path,
        "base: quickstart\nseeds: [3, 4]\nset: {data.subset: 200}\n"
        "grid: {optim.lr: [0.05, 0.1], train.epochs: [1, 2]}\n",
    )
    spec = sweeps.parse_sweep(path)
    assert [r.label for r in spec.recipes] == [
        "optim.lr=0.05 train.epochs=1",
        "optim.lr=0.05 train.epochs=2",
        "optim.lr=0.1 train.epochs=1",
        "optim.lr=0.1 train.epochs=2",
    ]
    plan = sweeps.plan_sweep(spec)
    assert [(r.seed, r.recipe.label) for r in plan.runs[:5]] == [
        (3, spec.recipes[0].label),
        (3, spec.recipes[1].label),
        (3, spec.recipes[2].label),
        (3, spec.recipes[3].label),
        (4, spec.recipes[0].label),
    ]
    last = plan.runs[-1].config
    assert (last.optim.params["lr"], last.train.epochs, last.train.seed) == (0.1, 2, 4)
    assert last.data.subset == 200


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("seed: [0]\npresets: [quickstart]\n", "unknown key seed; did you mean seeds?"),
        ("presets: [{presset: quickstart}]\n", "did you mean preset?"),
        ("presets: [quickstart]\nbase: quickstart\n", "either `presets:`"),
        ("name: x\n", "either `presets:`"),
        ("presets: [quickstart]\ngrid: {optim.lr: [0.1]}\n", "`grid:` goes with `base:`"),
        ("base: quickstart\ngrid: {optim.lr: 0.1}\n", "grid.optim.lr must be a non-empty list"),
        ("seeds: [0, 0]\npresets: [quickstart]\n", "lists a seed twice"),
        ("seeds: [zero]\npresets: [quickstart]\n", "seeds must be a list of integers"),
        ("set: {train.seed: 3}\npresets: [quickstart]\n", "train.seed comes from"),
        ("presets: [quickstart, quickstart]\n", "two recipes are labelled 'quickstart'"),
        ("presets: []\n", "non-empty list"),
        ("- quickstart\n", "must be a mapping"),
        (  # 10^6 recipes: refused at once with the count, before one of them is made
            "base: quickstart\ngrid: {"
            + ", ".join(f"k{i}: [{', '.join(map(str, range(10)))}]" for i in range(6))
            + "}\n",
            "plans 1,000,000 runs (1,000,000 recipes x 1 seeds): more than 1,000",
        ),
        (
            "seeds: [0, 1, 2]\npresets: ["
            + ", ".join(f"{{preset: quickstart, label: r{i}}}" for i in range(334))
            + "]\n",
            "plans 1,002 runs (334 recipes x 3 seeds)",
        ),
    ],
)
def test_a_bad_sweep_file_is_refused_naming_what_is_wrong(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=None) as info:
        sweeps.parse_sweep(_sweep_file(tmp_path, text))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("presets: [resnet5]\n", "did you mean 'resnet50'"),
        (
            "presets: [{preset: quickstart, label: fast, set: {optim.lrr: 0.1}}]\n",
            "recipe 'fast': unknown key optim.lrr; did you mean optim.lr?",
        ),
        ("base: quickstart\ngrid: {train.epochs: [1, 0]}\n", "train.epochs = 0 is out of range"),
    ],
)
def test_every_recipe_is_validated_like_set_before_anything_runs(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        sweeps.plan_sweep(sweeps.parse_sweep(_sweep_file(tmp_path, text)))
    assert expected in str(info.value)


def test_cli_refuses_a_bad_sweep_with_one_line_and_writes_nothing(tmp_path):
    path = _sweep_file(tmp_path, "presets: [{preset: quickstart, set: {optim.lrr: 0.1}}]\n")
    result = cli("sweep", path, checkpoints=tmp_path / "ck")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "did you mean optim.lr?" in result.stderr
    assert not (tmp_path / "ck").exists()
    unknown = cli("sweep", "tinny", checkpoints=tmp_path / "ck")
    assert unknown.returncode == 2 and "did you mean 'tiny'" in unknown.stderr


def test_writeup_sweep_lists_the_eleven_rows_of_the_design_table():
    spec = sweeps.parse_sweep("writeup")
    presets = [r.preset for r in spec.recipes]
    assert presets == [
        "resnet18",
        "resnet50",
        "resnet101",
        "resnet50_erasing",
        "resnet50_erasing_autoaugment",
        "resnet50_adam",
        "resnet50_ranger",
        "resnet50_sam",
        "resnet50_sam_ls",
        "wrn40_10_sam_ls",
        "wrn40_10_sam_ls_full_tta",
    ]
    assert len(spec.seeds) >= 2  # a spread needs two runs per row
    if not (PRESETS / "wrn40_10_sam_ls_full_tta.yaml").is_file():
        pytest.skip("the TTA row's preset (presets/wrn40_10_sam_ls_full_tta.yaml) is not there yet")
    plan = sweeps.plan_sweep(spec)  # every row resolves (data is downloaded when missing)
    assert len(plan.runs) == 11 * len(spec.seeds)
    assert plan.runs[10].config.eval.tta and not plan.runs[9].config.eval.tta


def test_sweep_id_ignores_where_a_run_executes_but_not_what_it_computes(tmp_path):
    spec = sweeps.parse_sweep("tiny")
    plain = sweeps.plan_sweep(spec).sweep_id
    assert plain.startswith("tiny-")
    assert sweeps.plan_sweep(spec, data_dir=str(tmp_path), device="cpu").sweep_id == plain
    fewer = sweeps.SweepSpec(spec.name, "", (0,), spec.recipes, spec.source)
    assert sweeps.plan_sweep(fewer).sweep_id != plain
    preset = tmp_path / "mine.yaml"
    preset.write_text((PRESETS / "quickstart.yaml").read_text())
    path = _sweep_file(tmp_path, f"presets: [{preset}]\n")
    before = sweeps.plan_sweep(sweeps.parse_sweep(path)).sweep_id
    preset.write_text(preset.read_text().replace("lr: 0.05", "lr: 0.02"))
    assert sweeps.plan_sweep(sweeps.parse_sweep(path)).sweep_id != before


@pytest.mark.parametrize(("visible", "count"), [("0,1", 2), ("3", 1), ("", 0), ("-1", 0)])
def test_gpu_count_follows_cuda_visible_devices(monkeypatch, visible, count):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert sweeps.gpu_count() == count


def test_with_several_gpus_each_slot_gets_its_own_device(tmp_path):
    plan = sweeps.plan_sweep(sweeps.parse_sweep("tiny"))
    console = Console(file=io.StringIO())
    two = sweeps.SweepRunner(plan, tmp_path, console, slots=2, gpus=2)
    assert [two._slot_device(plan.runs[0], s) for s in (0, 1)] == ["cuda:0", "cuda:1"]
    cpu = sweeps.SweepRunner(plan, tmp_path, console, slots=2, gpus=0)
    assert cpu._slot_device(plan.runs[0], 1) is None
    assert not (tmp_path / "sweeps").exists(), "planning writes nothing"


# --------------------------------------------------------------------------- statistics


def test_stat_is_the_mean_and_sample_std_of_the_statistics_module():
    rng = random.Random(3)
    for n in (2, 3, 7):
        values = [rng.uniform(0.6, 0.9) for _ in range(n)]
        stat = Stat.of(values)
        assert stat.mean == pytest.approx(statistics.mean(values), abs=1e-15)
        assert stat.std == pytest.approx(statistics.stdev(values), abs=1e-15)
    assert Stat.of([0.5]) == Stat(1, 0.5, None, (0.5,))
    assert Stat.of([]).mean is None


def _result(recipe, seed, top1, status="done"):
    summary = {"test_top1": top1, "test_top5": 0.9, "best_epoch": 3, "wall_s": 60.0}
    typed = RunSummary.from_dict(summary) if top1 else None
    return RunResult(recipe, seed, f"{recipe}-{seed}", status, typed, "p")


def test_table_counts_only_finished_runs_and_says_why_the_others_are_missing():
    table = build_table(
        "t",
        [
            _result("a", 0, 0.70),
            _result("b", 0, 0.75),
            _result("a", 1, 0.72),
            _result("b", 1, None, "diverged"),
            _result("b", 2, None, "pending"),
        ],
    )
    a, b = table.rows
    assert (a.recipe, a.runs_text(), a.top1.n) == ("a", "2/2", 2)
    assert b.runs_text() == "1/3 (1 diverged, 1 pending)"
    assert b.delta is not None and b.delta.method == "Welch t"  # seeds {0} against {0, 1}
    assert b.delta.mean == pytest.approx(0.75 - 0.71) and b.delta.se is None  # one run: no spread
    md = to_markdown(table).splitlines()
    assert md[2].startswith("| # | recipe | runs | test top-1 % | Δ top-1 (pp) |")
    assert md[4] == ("| 1 | a | 2/2 | 71.00 ± 1.41 | ref | - | - | 90.00 ± 0.00 | 3 | 1:00 | - |")
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert list(rows[0]) == CSV_FIELDS and rows[1]["test_top1_std"] == ""
    assert float(rows[0]["test_top1_std"]) == pytest.approx(statistics.stdev([0.70, 0.72]))


# --------------------------------------------------------------------------- the registry

_OLD_SCHEMA = """
CREATE TABLE runs (run_id TEXT PRIMARY KEY, preset TEXT NOT NULL, dataset TEXT NOT NULL,
    model TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, device TEXT, epochs INTEGER,
    epochs_done INTEGER DEFAULT 0, started REAL NOT NULL, heartbeat REAL NOT NULL, wall_s REAL,
    best_val_top1 REAL, best_epoch INTEGER, test_top1 REAL, test_top5 REAL, test_top1_last REAL,
    img_per_s REAL, pid INTEGER);
INSERT INTO runs VALUES ('old-run', 'quickstart', 'synthetic', 'wrn10_2', 'done', '{}', 'cpu', 4,
    4, 1.0, 1.0, 80.0, 0.5, 4, 0.6, 0.9, 0.6, 300.0, NULL);
"""


def test_a_registry_from_before_sweeps_gains_the_column_and_keeps_its_runs(tmp_path):
    db = sqlite3.connect(tmp_path / DB_FILE)
    db.executescript(_OLD_SCHEMA)
    db.close()
    registry = RunRegistry(tmp_path)
    (old,) = registry.runs()
    assert (old.run_id, old.test_top1, old.sweep_id) == ("old-run", 0.6, None)
    RunRegistry(tmp_path)  # opening it again: nothing to add, no error
    run_dir = tmp_path / "new-run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(
        json.dumps({"run_id": "new-run", "preset": "p", "sweep_id": "s-1"})
    )
    registry.start(
        "new-run", preset="p", dataset="synthetic", model="m", config={}, device="cpu", epochs=1
    )
    assert {r.run_id: r.sweep_id for r in registry.runs()} == {"old-run": None, "new-run": "s-1"}


# --------------------------------------------------------------------------- a real sweep


def _start_sweep(ck: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(ck), "NO_COLOR": "1", "COLUMNS": "160"}
    return subprocess.Popen(
        [sys.executable, "-c", "from tui.cli import main; main()", "sweep", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _wait(predicate, what: str, timeout: float = 180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _proc_status(pid: int) -> dict[str, str] | None:
    """Linux /proc/PID/status as a mapping; None where there is no /proc."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)


def _stopped(pid: int) -> bool:
    status = _proc_status(pid)
    return status is None or status["State"].split()[0] == "T"


def _signal_pending(pid: int, signum: int) -> bool:
    """Whether `signum` waits for (stopped) process `pid` (True where unknown)."""
    status = _proc_status(pid)
    if status is None:
        return True
    masks = [int(status[k], 16) for k in ("SigPnd", "ShdPnd")]
    return any(m & (1 << (signum - 1)) for m in masks)


def _state(ck: Path) -> dict:
    (path,) = (ck / "sweeps").glob("tiny-*.json")
    return json.loads(path.read_text())


def _engine_in_training(ck: Path, index: int) -> int | None:
    """The engine pid of planned run `index` once it has taken a training step."""
    try:
        run_id = _state(ck)["runs"][index]["run_id"]
    except (ValueError, OSError):
        return None
    log = ck / (run_id or "-") / "events.jsonl"
    events = read_events(log) if log.is_file() else []
    started = [e for e in events if isinstance(e, RunStarted) and e.type == "run_started"]
    return started[0].pid if started and any(e.type == "step" for e in events) else None


def _hold(pid: int) -> None:
    """SIGSTOP an engine and wait until it is stopped (so what comes next lands mid-training)."""
    os.kill(pid, signal.SIGSTOP)
    _wait(lambda: _stopped(pid), "the engine to stop", 30)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """The tiny sweep (3 recipes x 2 seeds) on one job, stopped by Ctrl-C while its second run
    trains; started again on two jobs and killed (SIGKILL: its engines live on) while its third
    run trains; started a third time, which follows the engine still running and ends the sweep.
    """
    ck = tmp_path_factory.mktemp("sweep")
    first = _start_sweep(ck, "tiny")
    try:
        pid = _wait(lambda: _engine_in_training(ck, 1), "the second run to train")
        _hold(pid)
        first.send_signal(signal.SIGINT)
        _wait(lambda: _signal_pending(pid, signal.SIGINT), "Ctrl-C forwarded to the engine", 30)
        os.kill(pid, signal.SIGCONT)
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    interrupted = {
        "code": first.returncode,
        "stderr": err,
        "state": _state(ck),
        "runs": run_ids(ck),
    }
    second = _start_sweep(ck, "tiny", "--jobs", "2")
    try:
        orphan = _wait(lambda: _engine_in_training(ck, 2), "the third run to train")
        _hold(orphan)
        second.kill()  # the sweep dies; its engines (own sessions) go on
        _, killed_err = second.communicate(timeout=60)
        third = _start_sweep(ck, "tiny", "--jobs", "2")
        assert third.stderr is not None
        lines = [third.stderr.readline()]
        while f"(pid {orphan})" not in lines[-1] and lines[-1]:  # it has seen the orphan alive
            lines.append(third.stderr.readline())
        os.kill(orphan, signal.SIGCONT)
        out, err = third.communicate(timeout=300)
    finally:
        for proc in (second, locals().get("third")):
            if proc is not None and proc.poll() is None:
                proc.kill()
        with contextlib.suppress(ProcessLookupError, NameError):
            os.kill(orphan, signal.SIGCONT)
    restarted = {"stderr": killed_err, "orphan": orphan}
    finished = SimpleNamespace(returncode=third.returncode, stdout=out, stderr="".join(lines) + err)
    return ck, interrupted, restarted, finished


def test_ctrl_c_stops_the_sweep_with_130_after_the_run_checkpoints(sweep_run):
    ck, interrupted, _, _ = sweep_run
    assert interrupted["code"] == 130, interrupted["stderr"]
    assert "again to continue" in interrupted["stderr"]
    runs = interrupted["state"]["runs"]
    assert [bool(r["run_id"]) for r in runs] == [True, True, False, False, False, False]
    assert interrupted["runs"] == sorted(r["run_id"] for r in runs[:2])
    second = ck / runs[1]["run_id"]
    first_events = read_events(ck / runs[0]["run_id"] / "events.jsonl")
    last = first_events[-1]
    assert isinstance(last, Finished) and last.status == "done"
    stopped = [e for e in read_events(second / "events.jsonl") if isinstance(e, Finished)][0]
    assert stopped.status == "interrupted"


def test_started_again_it_skips_finished_runs_and_resumes_the_interrupted_one(sweep_run):
    ck, interrupted, restarted, finished = sweep_run
    assert "1 finished, 1 to resume, 4 to start; 2 at a time" in restarted["stderr"]
    assert finished.returncode == 0, finished.stderr
    state = _state(ck)
    ids = [r["run_id"] for r in state["runs"]]
    assert sorted(ids) == run_ids(ck) and len(set(ids)) == 6, "one folder per planned run"
    assert ids[:2] == [r["run_id"] for r in interrupted["state"]["runs"][:2]]
    types = [[e.type for e in read_events(ck / i / "events.jsonl")] for i in ids]
    assert types[0].count("run_started") == 1 and "resumed" not in types[0]
    assert types[1].count("resumed") == 1 and types[1][-1] == "finished"
    # the run whose sweep was killed was followed to its end, never started a second time
    followed = f"{ids[2]} is still running (pid {restarted['orphan']}); following it"
    assert followed in finished.stderr
    assert types[2].count("run_started") == 1 and "resumed" not in types[2]
    for run_id in ids:
        summary = json.loads((ck / run_id / "summary.json").read_text())
        assert summary["status"] == "done" and summary["test_top1"] is not None


def _summaries_by_recipe(ck: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in _state(ck)["runs"]:
        summary = json.loads((ck / r["run_id"] / "summary.json").read_text())
        out.setdefault(r["recipe"], []).append(summary)
    return out


def test_the_table_holds_mean_and_sample_std_of_each_recipes_runs(sweep_run):
    ck, _, _, finished = sweep_run
    for label in LABELS:
        assert label in finished.stdout
    assert "SYNTHETIC" in finished.stdout and "±" in finished.stdout
    (csv_path,) = (ck / "sweeps").glob("tiny-*.csv")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["recipe"] for r in rows] == LABELS
    by_recipe = _summaries_by_recipe(ck)
    ref = [s["test_top1"] for s in by_recipe[LABELS[0]]]
    for row in rows:
        runs = by_recipe[row["recipe"]]
        top1 = [s["test_top1"] for s in runs]
        top5 = [s["test_top5"] for s in runs]
        assert row["runs_done"] == row["runs_planned"] == "2"
        assert float(row["test_top1_mean"]) == pytest.approx(statistics.mean(top1), abs=1e-12)
        assert float(row["test_top1_std"]) == pytest.approx(statistics.stdev(top1), abs=1e-12)
        assert float(row["test_top5_mean"]) == pytest.approx(statistics.mean(top5), abs=1e-12)
        assert float(row["best_epoch_mean"]) == statistics.mean(s["best_epoch"] for s in runs)
        wall = statistics.mean(s["wall_s"] for s in runs)
        assert float(row["wall_s_mean"]) == pytest.approx(wall)
        if row["index"] != "1":  # both rows ran seeds 0 and 1: the paired test
            diffs = [b - a for a, b in zip(ref, top1, strict=True)]
            assert row["delta_test"] == "paired t"
            assert float(row["delta_top1"]) == pytest.approx(statistics.mean(diffs), abs=1e-12)
            se = statistics.stdev(diffs) / math.sqrt(2)
            assert float(row["delta_top1_se"]) == pytest.approx(se, abs=1e-12)


def test_the_markdown_export_parses_back_to_the_same_rows(sweep_run):
    ck, _, _, _ = sweep_run
    (md_path,) = (ck / "sweeps").glob("tiny-*.md")
    (csv_path,) = (ck / "sweeps").glob("tiny-*.csv")
    lines = [ln for ln in md_path.read_text().splitlines() if ln.startswith("|")]
    header, rule, *body = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    assert header[:5] == ["#", "recipe", "runs", "test top-1 %", "Δ top-1 (pp)"]
    assert set(rule) == {"---"} and [b[1] for b in body] == LABELS
    for cells, row in zip(body, csv.DictReader(csv_path.open()), strict=True):
        mean, std = (float(x) for x in cells[3].split(" ± "))
        assert mean == pytest.approx(100 * float(row["test_top1_mean"]), abs=0.0051)
        assert std == pytest.approx(100 * float(row["test_top1_std"]), abs=0.0051)


def test_registry_rows_and_exports_carry_the_sweep(sweep_run):
    ck, _, _, _ = sweep_run
    sweep_id = _state(ck)["sweep_id"]
    assert {r.sweep_id for r in RunRegistry(ck).runs()} == {sweep_id}
    exported = cli("runs", "--export", "json", checkpoints=ck)
    assert exported.returncode == 0, exported.stderr
    records = json.loads(exported.stdout)
    assert len(records) == 6 and {r["sweep_id"] for r in records} == {sweep_id}
    assert sorted((r["recipe"], r["seed"]) for r in records) == sorted(
        (label, seed) for label in LABELS for seed in (0, 1)
    )
    out = ck / "runs.csv"
    as_csv = cli("runs", "--export", "csv", "--out", str(out), checkpoints=ck)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["run_id"] for r in rows] == [r["run_id"] for r in records]
    assert float(rows[0]["test_top1"]) == records[0]["test_top1"]


def test_every_run_folder_has_a_complete_card(sweep_run):
    ck, _, _, _ = sweep_run
    state = _state(ck)
    for i, entry in enumerate(state["runs"]):
        card = json.loads((ck / entry["run_id"] / "card.json").read_text())
        assert tuple(card) == CARD_FIELDS
        summary = json.loads((ck / entry["run_id"] / "summary.json").read_text())
        assert card["test"]["top1"] == summary["test_top1"]
        assert card["sweep"] == {
            "sweep_id": state["sweep_id"],
            "recipe": entry["recipe"],
            "seed": entry["seed"],
        }
        assert card["seeds"] == {"train.seed": entry["seed"]}
        assert card["timing"]["sessions"] == (2 if i == 1 else 1)
        for section in ("dataset", "timing", "validation", "test", "libraries"):
            assert None not in card[section].values(), (section, card[section])
        assert card["code"]["git_commit"] and card["device"] == "cpu"
        assert (ck / entry["run_id"] / "card.md").is_file()


def test_tensorboard_export_reads_back_in_tensorboard_with_curves_and_hparams(sweep_run, tmp_path):
    """`runs --tensorboard` (tensorboardX, in an engine process), read with TensorBoard's own
    event reader: step and epoch curves, test numbers, and one HParams session per run."""
    from engine.events import Step, read_events
    from tests.tensorboard_reader import hparams_view, read_run

    ck, _, _, _ = sweep_run
    logdir = tmp_path / "tb"
    (logdir / "someone-elses").mkdir(parents=True)
    (logdir / "someone-elses" / "events.out.tfevents.1.host").write_bytes(b"")
    for _ in range(2):  # a second export replaces the first's files
        result = cli("runs", "--tensorboard", str(logdir), checkpoints=ck)
        assert result.returncode == 0, result.stderr
    registry = RunRegistry(ck)
    rows = registry.runs()
    assert "6 runs written" in result.stderr and len(rows) == 6
    for row in rows:
        (path,) = (logdir / row.run_id).iterdir()
        scalars, hparams = read_run(logdir / row.run_id)
        expected = [(e["epoch"], e["val_top1"]) for e in registry.epochs(row.run_id)]
        assert scalars["epoch/val_top1"] == [(s, pytest.approx(v, rel=1e-6)) for s, v in expected]
        steps = {
            e.step: e.loss
            for e in read_events(ck / row.run_id / "events.jsonl")
            if isinstance(e, Step)
        }
        assert scalars["step/loss"] == [
            (s, pytest.approx(v, rel=1e-6)) for s, v in sorted(steps.items())
        ]
        assert {"step/lr", "step/top1", "step/img_per_s", "epoch/img_per_s"} <= scalars.keys()
        assert scalars["test/top1"] == [(row.epochs_done, pytest.approx(row.test_top1, rel=1e-6))]
        assert scalars["hparams/test_top1"][-1][1] == pytest.approx(row.test_top1, rel=1e-6)
        assert hparams["sweep"] == row.sweep_id and hparams["preset"] == row.preset
        config = yaml.safe_load((ck / row.run_id / "config.yaml").read_text())
        assert hparams["optim.lr"] == pytest.approx(config["optim"]["lr"])
        assert hparams["train.seed"] == config["train"]["seed"]
        assert "data.data_dir" not in hparams  # where-keys are not hyperparameters
    view = hparams_view(logdir)
    assert view.splitlines()[0].split()[:1] == ["run"] and "train.seed" in view
    assert (logdir / "someone-elses" / "events.out.tfevents.1.host").exists()


def test_sweep_results_of_an_unknown_sweep_is_refused(tmp_path):
    with pytest.raises(BadInputError, match="no readable sweep state"):
        sweeps.sweep_results(tmp_path, "nope-00000000")


# --------------------------------------------------------------------------- the dashboard

SWEEP_ID = "demo-0a1b2c3d"


def _fake_sweep(root: Path) -> list[str]:
    """Four finished fixture runs planned by one sweep (2 recipes x 2 seeds) and one other run."""
    from tests.tui.fixtures import make_run

    entries = []
    for i, (recipe, seed) in enumerate([("a", 0), ("b", 0), ("a", 1), ("b", 1)]):
        run_id = f"20260101-12000{i}-fixture-000{i}"
        run_dir = make_run(root, run_id=run_id, epochs=3)
        meta = {"run_id": run_id, "preset": "quickstart", "sweep_id": SWEEP_ID}
        (run_dir / "run.json").write_text(json.dumps({**meta, "recipe": recipe, "seed": seed}))
        summary = json.loads((run_dir / "summary.json").read_text())
        (run_dir / "summary.json").write_text(json.dumps({**summary, "test_top1": 0.5 + i / 100}))
        entries.append(
            {"key": f"{recipe}#{seed}", "recipe": recipe, "seed": seed, "run_id": run_id}
        )
    make_run(root, run_id="20260101-130000-fixture-other", epochs=3)
    db = sqlite3.connect(root / DB_FILE)
    with db:
        db.execute("UPDATE runs SET sweep_id = ? WHERE run_id LIKE '%-000_'", (SWEEP_ID,))
    db.close()
    state = {"sweep_id": SWEEP_ID, "name": "demo", "runs": entries}
    (root / "sweeps").mkdir()
    (root / "sweeps" / f"{SWEEP_ID}.json").write_text(json.dumps(state))
    return [str(e["run_id"]) for e in entries]


def test_runs_screen_filters_a_sweep_and_shows_its_table(tmp_path):
    import asyncio

    from rich.table import Table as RichTable
    from textual.widgets import Static

    from tests.tui.conftest import wait_for
    from tui.app import CifarApp
    from tui.screens.runs import RunsScreen

    ids = _fake_sweep(tmp_path)

    async def scenario() -> None:
        app = CifarApp(checkpoints=tmp_path, start="runs")
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.rows, 10, "runs"
            )
            screen = app.screen
            assert isinstance(screen, RunsScreen)
            assert len(screen.rows) == 5 and screen.sweeps == [SWEEP_ID]
            assert screen.check_action("cycle_sweep", ()) is True
            await pilot.press("w")
            await wait_for(pilot, lambda: screen.sweep == SWEEP_ID, 5, "the sweep filter")
            assert sorted(r.run_id for r in screen.rows) == sorted(ids)
            table = screen.query_one("#sweep-table", Static)
            assert table.has_class("shown")
            rich_table = table.content  # the rich Table the widget shows
            assert isinstance(rich_table, RichTable)
            cells = [list(column.cells) for column in rich_table.columns]
            assert cells[1] == ["a", "b"] and cells[3] == ["51.00 ± 1.41", "52.00 ± 1.41"]
            await pilot.press("w")
            await wait_for(pilot, lambda: screen.sweep is None, 5, "every run again")
            assert len(screen.rows) == 5 and not table.has_class("shown")

    asyncio.run(scenario())


def test_sweep_table_and_export_modules_load_no_torch():
    code = (
        "import sys, tui.orchestration.sweep, tui.orchestration.exports.results_table, "
        "tui.orchestration.exports.runs_export, engine.card; "
        "print(any(m.split('.')[0] in ('torch', 'torchvision') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_runs_export_refuses_an_unknown_format(tmp_path):
    RunRegistry(tmp_path)
    result = cli("runs", "--export", "xml", checkpoints=tmp_path)
    assert result.returncode == 2 and "choose one of csv, json" in result.stderr


def test_an_engine_that_has_not_written_an_event_yet_counts_as_running(tmp_path):
    """A restarted sweep must not start a second engine on a folder whose engine is still
    importing torch (no `run_started`/`resumed` event yet): the engine holds the run's lock
    from its first line, and the lock finds it."""
    live_engine = procs.live_engine
    run_dir = tmp_path / "20261127-000000-tiny-abcd"
    run_dir.mkdir()
    assert live_engine(run_dir) is None
    # stands in for `python -m engine run RUN_DIR --resume` before its first event
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert live_engine(run_dir) == holder.pid
        assert live_engine(tmp_path / "20261127-000000-tiny-other") is None
    finally:
        holder.kill()
        holder.wait()
    assert live_engine(run_dir) is None


HOLD_LOCK = (
    "import sys, time; from pathlib import Path; from engine.run_lock import RunLock; "
    "RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(600)"
)


def test_a_run_is_followed_while_its_engine_holds_the_lock_and_a_result_once_it_let_go(tmp_path):
    """todo() asks the run's lock, then its events: an engine writes `finished` before it lets go
    of the lock, so a run that ends at any moment is either followed or taken as finished, never
    a dead run to resume (a second session re-ran a done run's test pass)."""
    from engine.events import EventWriter, Finished, Step
    from engine.run_lock import RunLock

    plan = sweeps.plan_sweep(sweeps.parse_sweep("tiny"))
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()))
    first = plan.runs[0]
    run_dir = tmp_path / "20261127-000000-resnet18-aaaa"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"checkpoint")
    runner.state.set_run_id(first.key, run_dir.name)
    engine = RunLock(run_dir).acquire()
    writer = EventWriter(run_dir / "events.jsonl")
    writer.emit(Step(1, 1, 1, 2, 4, 4.6, 0.0, 0.1, 100.0))  # the engine is training
    assert dict((run.key, how) for run, how in runner.todo())[first.key] == "follow"
    writer.emit(Finished(status="done", summary={}))
    assert dict((run.key, how) for run, how in runner.todo())[first.key] == "follow"  # still held
    engine.release()  # the engine exits
    todo = {run.key: how for run, how in runner.todo()}
    assert first.key not in todo
    assert len(todo) == len(plan.runs) - 1 and set(todo.values()) == {"start"}


def test_a_followed_run_that_finishes_before_its_turn_is_not_resumed(tmp_path, monkeypatch):
    """todo() found the run's engine alive ("follow"); by the time the run is started the engine
    has written `finished` and exited: its result is taken as it is, no second session (seen in
    the full suite: a third `resumed` session re-ran a done run's test pass)."""
    from engine.events import EventWriter, Finished

    plan = sweeps.plan_sweep(sweeps.parse_sweep("tiny"))
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()))
    first = plan.runs[0]
    run_dir = tmp_path / "20261127-000000-resnet18-bbbb"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"checkpoint")
    EventWriter(run_dir / "events.jsonl").emit(Finished(status="done", summary={}))
    runner.state.set_run_id(first.key, run_dir.name)
    started = []
    monkeypatch.setattr(sweep_runner, "live_engine", lambda path: None)  # it has exited
    monkeypatch.setattr(sweep_runner, "start_engine", lambda *a, **k: started.append(a))
    job = runner._start(first, "follow", 0)
    assert started == [] and job.run_dir == run_dir
    assert job.process.poll() == 0 and job.process.wait() == 0
    job.process.send_signal(2)  # signals nothing: it has no process


def test_a_sweep_never_deletes_a_folder_with_a_result_or_a_valid_checkpoint(tmp_path):
    """Starting a planned run again removes its old folder only when nothing in it is worth
    keeping (a run killed at its very end once lost a fully trained and tested result)."""
    from engine.checkpoint_files import header
    from tui.orchestration.sweep.runner import worth_keeping

    plan = sweeps.plan_sweep(sweeps.parse_sweep("tiny"))
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()))
    run = plan.runs[0]
    checkpointed, finished, empty = (tmp_path / name for name in ("r-ck", "r-done", "r-empty"))
    for folder in (checkpointed, finished, empty):
        folder.mkdir()
        (folder / "events.jsonl").write_text("")
    payload = b"any payload whose checksum matches"
    (checkpointed / "last.pt").write_bytes(header(payload) + payload)
    (empty / "last.pt").write_bytes(b"damaged")
    (finished / "summary.json").write_text(json.dumps({"status": "done", "test_top1": 0.7}))
    assert worth_keeping(checkpointed) == "a valid checkpoint (last.pt)"
    assert worth_keeping(finished) == "a finished result"
    assert worth_keeping(empty) is None
    for folder in (checkpointed, finished, empty):
        runner._discard(run, folder.name)
    assert checkpointed.is_dir() and (checkpointed / "last.pt").is_file()
    assert finished.is_dir() and (finished / "summary.json").is_file()
    assert not empty.exists()
    printed = runner.console.file.getvalue()  # type: ignore[attr-defined]
    assert "so its folder is kept as it is" in printed and "its folder is removed" in printed


def test_a_damaged_registry_does_not_stop_a_sweep_starting_a_run_again(tmp_path):
    plan = sweeps.plan_sweep(sweeps.parse_sweep("tiny"))
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()))
    (tmp_path / DB_FILE).write_bytes(b"not a database\n" * 40)
    empty = tmp_path / "r-empty"
    empty.mkdir()
    (empty / "events.jsonl").write_text("")
    runner._discard(plan.runs[0], empty.name)
    assert not empty.exists()
    assert "its folder is removed" in runner.console.file.getvalue()  # type: ignore[attr-defined]
