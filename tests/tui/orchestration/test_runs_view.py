"""The Runs table's columns without a screen: config keys, sorting, fitting the width."""

from __future__ import annotations

from engine.runs import RunRow
from tui.orchestration.runs_view import (
    View,
    fit,
    flatten_config,
    key_summaries,
    make_cell,
    matches,
    plain,
    shorten_run_id,
    sorted_rows,
)


def row(run_id: str, started: float, test: float | None, status: str = "done") -> RunRow:
    return RunRow(run_id, "quickstart", "cifar100", "wrn", status, "cpu", 2, 2, started, 60.0,
                  0.5, 2, test, None, None, None)  # fmt: skip


def test_a_config_flattens_to_dotted_keys_and_components_to_their_names():
    flat = flatten_config(
        {"optim": {"name": "sgd", "lr": 0.1}, "augment": [{"name": "crop", "padding": 4}]}
    )
    assert flat == {
        "optim.name": "sgd",
        "optim.lr": 0.1,
        "augment": "crop",
        "augment.crop.padding": 4,
    }
    keys = key_summaries([{"optim.lr": 0.1, "seed": 0}, {"optim.lr": 0.05, "seed": 0}])
    assert keys == [("optim.lr", ["0.05", "0.1"]), ("seed", ["0"])]  # what differs first


def test_missing_values_sort_last_in_either_direction_and_a_number_by_value():
    rows = [row("a", 1, 0.5), row("b", 2, None), row("c", 3, 0.7), row("d", 4, 0.05)]
    cells = {r.run_id: {"test": make_cell(r, "test", {}, 0, False)} for r in rows}
    assert [r.run_id for r in sorted_rows(rows, cells, "test", True)] == ["c", "a", "d", "b"]
    assert [r.run_id for r in sorted_rows(rows, cells, "test", False)] == ["d", "a", "c", "b"]
    lrs = {"a": 0.1, "b": 2e-4, "c": 0.05, "d": None}
    cfg = {r.run_id: {"cfg:optim.lr": make_cell(r, "cfg:optim.lr", {"optim.lr": lrs[r.run_id]},
                                                0, False)} for r in rows}  # fmt: skip
    assert [r.run_id for r in sorted_rows(rows, cfg, "cfg:optim.lr", False)] == [
        "b", "c", "a", "d"
    ]  # fmt: skip


def test_the_filter_reads_every_column_and_key_equals_value():
    r = row("20260101-120000-wrn-a1b2", 1, 0.5)
    cell = make_cell(r, "test", {}, 0, False)
    assert matches(["wrn", "50.00%"], r, [cell], {}) and not matches(["adamw"], r, [cell], {})
    assert matches(["optim.name=sgd"], r, [cell], {"optim.name": "sgd"})
    assert not matches(["optim.name=adamw"], r, [cell], {"optim.name": "sgd"})


def test_a_narrow_terminal_keeps_run_status_test_and_the_sort_column():
    view = View(config_keys=["optim.lr", "optim.name"], sort="cfg:optim.lr")
    columns = view.columns(sweeps=False)
    r = row("20260101-120000-quickstart-a1b2", 1, 0.5)
    texts = {c.key: [plain(make_cell(r, c.key, {"optim.lr": 0.1}, 0, False))] for c in columns}
    texts["run"] = ["✓" + texts["run"][0]]
    headers = {c.key: view.header(c) for c in columns}
    wide = fit(columns, texts, headers, 160, view.sort)
    assert [c.key for c in wide.columns] == [c.key for c in columns] and not wide.narrow
    narrow = fit(columns, texts, headers, 60, view.sort)
    keys = [c.key for c in narrow.columns]
    assert {"run", "status", "test", "cfg:optim.lr"} <= set(keys)
    assert sum(w + 2 for w in narrow.widths.values()) <= 60 - 2
    assert shorten_run_id("20260101-120000-quickstart-a1b2", 22) == "20260101-120000-q…a1b2"
