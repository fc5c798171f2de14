"""A sweep's statistics on hand-made results: the difference against row 1 (paired or Welch),
`--plan-seeds` and `--stop-losers`, each against scipy or a hand computation. No engine runs."""

from __future__ import annotations

import csv
import io
import math
import sqlite3
from collections import deque
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import stats as sp

from engine.config import config_to_dict
from engine.outcome import RunSummary
from engine.runs import DB_FILE, RunRegistry
from tests.conftest import cli
from tui.orchestration import stats
from tui.orchestration import sweep as sweeps
from tui.orchestration.exports.results_table import (
    RunResult,
    build_table,
    compare,
    to_csv,
    to_markdown,
    to_rich,
)
from tui.orchestration.sweep import runner as sweep_runner
from tui.orchestration.sweep import seed_plan
from tui.orchestration.sweep.stop_losers import find_losers, look_confidence


def _result(recipe: str, seed: int, top1: float | None, status: str = "done") -> RunResult:
    summary = {"test_top1": top1, "test_top5": 0.9, "best_epoch": 3, "wall_s": 60.0}
    typed = RunSummary.from_dict(summary) if top1 is not None else None
    return RunResult(recipe, seed, f"{recipe}-{seed}", status, typed, "p")


def _results(rows: dict[str, list[float | None]]) -> list[RunResult]:
    """Seed-major results, value i of each row at seed i (None: that seed is still pending)."""
    seeds = max(len(v) for v in rows.values())
    return [
        _result(name, s, values[s], "done" if values[s] is not None else "pending")
        for s in range(seeds)
        for name, values in rows.items()
        if s < len(values)
    ]


# --------------------------------------------------------------------------- the difference


def test_matching_seeds_give_scipys_paired_t_interval():
    ref = {0: 0.701, 1: 0.713, 2: 0.698, 3: 0.709}
    row = {0: 0.712, 1: 0.716, 2: 0.705, 3: 0.720}
    d = compare(row, ref)
    assert d is not None and d.paired and d.n_a == 4
    expected = sp.ttest_rel([row[s] for s in range(4)], [ref[s] for s in range(4)])
    ci = expected.confidence_interval(0.95)
    assert d.mean == pytest.approx(np.mean([row[s] - ref[s] for s in range(4)]))
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.p == pytest.approx(expected.pvalue)


def test_seeds_that_differ_give_scipys_welch_interval():
    ref = {0: 0.70, 1: 0.72, 2: 0.71}
    row = {0: 0.74, 1: 0.73}  # seed 2 did not finish: nothing to pair it with
    d = compare(row, ref)
    assert d is not None and d.method == "Welch t"
    expected = sp.ttest_ind(list(row.values()), list(ref.values()), equal_var=False)
    ci = expected.confidence_interval(0.95)
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert d.df == pytest.approx(expected.df)
    assert compare({}, ref) is None


def test_the_table_shows_the_paired_and_welch_numbers_of_hand_made_results():
    results = _results({"a": [0.70, 0.72, 0.74], "b": [0.71, 0.74, 0.75], "c": [0.60, 0.64, None]})
    table = build_table("t", results)
    a, b, c = table.rows
    # b - a per seed: 0.01, 0.02, 0.01: mean 1/75, sd sqrt(1/30000), se sd/sqrt(3)
    assert b.delta is not None and b.delta.paired
    assert b.delta.mean == pytest.approx(0.04 / 3) and b.delta.se == pytest.approx(0.01 / 3)
    half = 4.302652729749464 * 0.01 / 3  # t(2) 97.5 % quantile x se
    assert b.delta.high == pytest.approx(0.04 / 3 + half)
    assert c.delta is not None and c.delta.method == "Welch t"
    welch = sp.ttest_ind([0.60, 0.64], [0.70, 0.72, 0.74], equal_var=False)
    assert c.delta.p == pytest.approx(welch.pvalue)
    md = to_markdown(table).splitlines()
    assert md[2] == (
        "| # | recipe | runs | test top-1 % | Δ top-1 (pp) | 95 % CI (pp) | Δ test | test top-5 % "
        "| best val epoch | wall time | img/s |"
    )
    assert md[5].startswith("| 2 | b | 3/3 | 73.33 ± 2.08 | +1.33 ± 0.33 | -0.10 to +2.77 |")
    assert "| paired t, 3 seeds |" in md[5]
    low, high = (f"{100 * x:+.2f}" for x in welch.confidence_interval(0.95))
    assert md[6].startswith(f"| 3 | c | 2/3 (1 pending) | 62.00 ± 2.83 | -10.00 ± 2.31 | {low} to")
    assert f"to {high} | Welch t |" in md[6]
    assert "paired t on the per-seed differences" in md[-1]
    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    assert [r["delta_test"] for r in rows] == ["", "paired t", "Welch t"]
    assert float(rows[1]["delta_top1_low"]) == pytest.approx(0.04 / 3 - half)
    assert float(rows[2]["delta_top1_df"]) == pytest.approx(welch.df)


def test_the_terminal_table_fits_120_columns_with_its_legend():
    long_label = "asam+label-smoothing"  # as long as the write-up's labels
    rows: dict[str, list[float | None]] = {"sgd-baseline": [0.7, 0.72], long_label: [0.71, 0.7]}
    table = build_table("t", _results(rows))
    console = Console(width=120, record=True)
    console.print(to_rich(table))
    text = console.export_text()
    assert "-0.50 ± 1.50 paired" in text and "-19.56 to +18.56" in text  # one cell, two lines
    assert "71.00 ± 1.41" in text and "(paired), else Welch t" in text  # unwrapped; legend
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 120


# --------------------------------------------------------------------------- --stop-losers


def test_each_look_is_bonferroni_over_the_planned_looks_and_rows():
    assert look_confidence(5, 3) == pytest.approx(1 - 0.05 / 10)
    assert look_confidence(1, 2) == pytest.approx(0.95)


def test_one_seed_never_stops_a_row_however_far_below():
    results = _results({"best": [0.80], "bad": [0.10]})
    assert find_losers(results, 0.99, set(), 1, 3) == []


def test_a_row_stops_exactly_when_its_interval_against_the_best_lies_below_zero():
    rng = np.random.default_rng(7)
    confidence = look_confidence(4, 2)
    stopped = kept = 0
    for _ in range(60):
        n = int(rng.integers(2, 5))
        best = rng.normal(0.75, 0.01, n)
        other = best - rng.normal(0.01, 0.01, n)
        if other.mean() > best.mean():
            continue  # the best row is the other one: covered below
        results = _results({"best": best.tolist(), "other": other.tolist()})
        diffs = other - best
        se = diffs.std(ddof=1) / math.sqrt(n)
        high = diffs.mean() + sp.t.ppf(0.5 + confidence / 2, n - 1) * se
        stops = find_losers(results, confidence, set(), 2, 4)
        assert bool(stops) == (high < 0), (best, other)
        if stops:
            assert stops[0].best == "best" and stops[0].difference.high == pytest.approx(high)
        stopped += bool(stops)
        kept += not stops
    assert stopped and kept  # both outcomes were exercised


def test_the_best_row_is_the_highest_mean_and_stopped_rows_are_not_looked_at_again():
    results = _results({"a": [0.50, 0.51, 0.50], "b": [0.80, 0.81, 0.82], "c": [0.60, 0.62, 0.61]})
    stops = find_losers(results, look_confidence(3, 3), set(), 3, 3)
    assert [(s.recipe, s.best) for s in stops] == [("a", "b"), ("c", "b")]
    assert "look 3 of 3: Δ top-1 -30.67 pp against b" in stops[0].reason()
    assert "(paired t, 3 seeds) lies below 0" in stops[0].reason()
    assert [s.recipe for s in find_losers(results, 0.99, {"a"}, 3, 3)] == ["c"]
    same = _results({"a": [0.5, 0.6], "b": [0.7, 0.8]})  # every difference 0.2: no spread
    assert find_losers(same, 0.99, set(), 2, 2) == []


def _sweep_plan(tmp_path: Path, seeds: str = "[0, 1, 2]") -> sweeps.Plan:
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: s\nbase: quickstart\nseeds: {seeds}\ngrid: {{optim.lr: [0.05, 0.1, 0.2]}}\n"
    )
    return sweeps.plan_sweep(sweeps.parse_sweep(str(path)))


def test_a_stopped_row_skips_its_remaining_seeds_now_and_in_every_later_run(tmp_path, monkeypatch):
    plan = _sweep_plan(tmp_path)
    labels = [r.label for r in plan.spec.recipes]
    results = [
        _result(r.recipe.label, r.seed, v)
        for r, v in zip(plan.runs[:6], [0.5, 0.8, 0.6, 0.508, 0.81, 0.59], strict=True)
    ]
    monkeypatch.setattr(sweep_runner, "sweep_results", lambda *_a: ({}, results))
    out = io.StringIO()
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=out, width=200), stop_losers=True)
    todo = deque((r, "start") for r in plan.runs[6:])  # seeds 0 and 1 done, seed 2 to run
    runner._look(todo, {})
    assert [r.recipe.label for r, _ in todo] == [labels[1], labels[2]]
    assert runner.state.looked == {0, 1}
    assert set(runner.state.stopped) == {labels[0]}
    assert f"stop-losers: {labels[0]} stops: look 1 of 3:" in out.getvalue()
    assert "seeds skipped: 2" in out.getvalue()
    runner._look(todo, {})  # no round closed since: no second look
    assert runner.state.looked == {0, 1} and runner.state.looks == 1
    again = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()))  # without the flag
    assert [r.key for r, _ in again.todo()] == [r.key for r in plan.runs if r is not plan.runs[6]]
    assert again.state.skipped(plan.runs[6].key) == runner.state.stopped[labels[0]]
    _, listed = sweeps.sweep_results(tmp_path, plan.sweep_id)
    assert [r.status for r in listed if r.recipe == labels[0]] == ["pending"] * 2 + ["stopped"]
    table = sweeps.sweep_table(tmp_path, plan.sweep_id)
    assert table.rows[0].stopped == runner.state.stopped[labels[0]]
    assert table.rows[0].runs_text() == "0/3 (2 pending, 1 stopped)"
    assert "stopped: the row's remaining seeds were skipped by --stop-losers" in table.note


def test_a_row_with_nothing_left_to_skip_is_not_stopped(tmp_path, monkeypatch):
    plan = _sweep_plan(tmp_path, "[0, 1]")
    values = [0.5, 0.8, 0.6, 0.508, 0.81, 0.59]  # the first row far below the second
    results = [_result(r.recipe.label, r.seed, v) for r, v in zip(plan.runs, values, strict=True)]
    monkeypatch.setattr(sweep_runner, "sweep_results", lambda *_a: ({}, results))
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()), stop_losers=True)
    runner._look(deque(), {})  # the last round closed: nothing left a stop could skip
    assert runner.state.stopped == {} and runner.state.looked == set()
    followed = deque([(plan.runs[3], "follow")])  # its engine runs already: it is followed
    runner._look(followed, {})
    assert runner.state.stopped == {} and len(followed) == 1


def test_the_dry_run_plan_says_which_runs_are_skipped(tmp_path):
    plan = _sweep_plan(tmp_path, "[0, 1]")
    runner = sweeps.SweepRunner(plan, tmp_path, Console(file=io.StringIO()))
    label = plan.runs[0].recipe.label
    runner.state.record_look({0}, {label: "why"}, {label: [plan.runs[3].key]})
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(sweeps.plan_table(runner))
    assert "skipped (stopped)" in console.export_text()


# --------------------------------------------------------------------------- --plan-seeds


def _record(root: Path, plan: sweeps.Plan, label: str, seed: int, top1: float, n: int) -> None:
    """A finished run in the registry with the recipe's resolved config and `seed`."""
    run = next(r for r in plan.runs if r.recipe.label == label)
    config = config_to_dict(run.config)
    config["train"]["seed"] = seed
    config["train"]["device"] = "cuda:1"  # where a run executed does not make another recipe
    registry = RunRegistry(root)
    run_id = f"{label}-{seed}-{n}"
    registry.start(run_id, preset="quickstart", dataset="synthetic", model="wrn10_2",
                   config=config, device="cpu", epochs=4)  # fmt: skip
    registry.finish(run_id, "done", {"test_top1": top1})


def test_the_recipe_key_drops_the_seed_and_where_a_run_executes_but_not_the_recipe(tmp_path):
    plan = _sweep_plan(tmp_path)
    first = config_to_dict(plan.runs[0].config)
    moved = config_to_dict(plan.runs[3].config)  # the same recipe, seed 1
    moved["train"]["device"] = "cpu"
    assert seed_plan.recipe_key(first) == seed_plan.recipe_key(moved)
    other = config_to_dict(plan.runs[1].config)  # another lr
    assert seed_plan.recipe_key(first) != seed_plan.recipe_key(other)


def test_plan_seeds_uses_the_paired_within_row_or_default_spread(tmp_path):
    plan = _sweep_plan(tmp_path)
    a, b, c = (r.label for r in plan.spec.recipes)
    for seed, (top_a, top_b) in enumerate([(0.700, 0.700), (0.702, 0.707), (0.704, 0.714)]):
        _record(tmp_path, plan, a, seed, top_a, 0)
        _record(tmp_path, plan, b, seed, top_b, 0)  # differences 0, 0.5, 1 pp: sd 0.5 pp
    registry = RunRegistry(tmp_path)
    registry.start("failed", preset="q", dataset="s", model="m",
                   config={"train": {"seed": 9}}, device="cpu", epochs=1)  # fmt: skip
    result = seed_plan.plan_seeds(plan, registry.tested_runs(), effect_pp=0.5)
    ref, row_b, row_c = result.rows
    assert row_b.source == "paired" and row_b.sd_pp == pytest.approx(0.5)
    # a paired t test of an effect of one sd: 10 seeds for 80 % power (the textbook case)
    assert row_b.needed == 10 == stats.seeds_needed(0.5, 0.5, paired=True)
    sp_power = (
        1
        - sp.nct.cdf(sp.t.ppf(0.975, 9), 9, math.sqrt(10))
        + sp.nct.cdf(-sp.t.ppf(0.975, 9), 9, math.sqrt(10))
    )
    assert sp_power >= 0.8 > stats.t_test_power(0.5, 0.5, 9, paired=True)
    # c has no earlier run, a has three seeds: the within-row spread of row 1, unpaired
    assert row_c.source == "within rows" and row_c.sd_pp is not None
    assert row_c.sd_pp == pytest.approx(100 * np.std([0.700, 0.702, 0.704], ddof=1))
    assert row_c.needed == stats.seeds_needed(0.5, row_c.sd_pp, paired=False)
    assert row_c.needed is not None
    assert ref.source == "ref" and ref.needed == max(row_b.needed, row_c.needed)
    assert result.default_rows == []


def test_plan_seeds_pools_two_rows_and_states_its_default_when_nothing_ran(tmp_path):
    plan = _sweep_plan(tmp_path)
    a, b, _ = (r.label for r in plan.spec.recipes)
    for seed, top in [(0, 0.70), (1, 0.71)]:
        _record(tmp_path, plan, a, seed, top, 0)
    for seed, top in [(5, 0.60), (6, 0.64), (6, 0.66)]:  # seed 6 twice: counted once, its mean
        _record(tmp_path, plan, b, seed, top, seed * 10 + int(100 * top))
    result = seed_plan.plan_seeds(plan, RunRegistry(tmp_path).tested_runs(), effect_pp=1.0)
    pooled = math.sqrt((np.var([0.70, 0.71], ddof=1) + np.var([0.60, 0.65], ddof=1)) / 2)
    assert result.rows[1].source == "within rows"
    assert result.rows[1].sd_pp == pytest.approx(100 * pooled)
    empty = seed_plan.plan_seeds(plan, [], effect_pp=0.5)
    assert empty.default_rows == [2, 3]
    assert empty.rows[1].needed == stats.seeds_needed(0.5, 0.3, paired=False) == 7
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(seed_plan.seed_plan_table(empty, "sweep s"))
    text = " ".join(console.export_text().split())
    assert "rows 2, 3: too few earlier runs" in text and "the default is 0.3 pp" in text
    assert "7 (the most of any row)" in text


def test_plan_seeds_prints_the_plan_and_writes_nothing(tmp_path):
    plan = _sweep_plan(tmp_path)
    for seed, top in [(0, 0.70), (1, 0.71), (2, 0.73)]:
        _record(tmp_path / "ck", plan, plan.spec.recipes[0].label, seed, top, 0)
    db = sqlite3.connect(tmp_path / "ck" / DB_FILE)  # no WAL: a reader leaves no files behind
    db.execute("PRAGMA journal_mode=DELETE")
    db.close()
    before = sorted(p.name for p in (tmp_path / "ck").iterdir())
    done = cli("sweep", str(tmp_path / "s.yaml"), "--plan-seeds", "--effect", "0.5",
               checkpoints=tmp_path / "ck")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "seeds per row to detect 0.5 pp" in done.stdout and "within rows" in done.stdout
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--effect", "0.5"], "--effect goes with --plan-seeds"),
        (["--plan-seeds", "--effect", "-0.5"], "--effect must be a positive number"),
    ],
)
def test_a_bad_effect_is_one_line_and_exit_2(tmp_path, args, expected):
    done = cli("sweep", "tiny", *args, checkpoints=tmp_path / "ck")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and expected in done.stderr
    assert not (tmp_path / "ck").exists()
