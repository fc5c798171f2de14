"""Runs: every run in runs.sqlite, overlaid validation curves, open / attach / delete.

Runs planned by `cifar-tui sweep` carry their sweep id; `w` cycles through the sweeps, showing
only that sweep's runs, its result table (mean ± std over seeds) and all its curves overlaid.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Input, Static

from engine.errors import BadInputError
from engine.events import Failed
from engine.outcome import read_outcome
from engine.runs import RunRow
from tui.notify import notify_run_end
from tui.orchestration.exports.results_table import to_rich
from tui.orchestration.runs_view import (
    View,
    arrange,
    cut,
    fit,
    flatten_config,
    key_summaries,
    make_cell,
    plain,
    shorten_run_id,
)
from tui.orchestration.sweep import sweep_ids, sweep_table
from tui.screens.common import CifarScreen, ConfirmScreen, TitleBar
from tui.screens.runs_columns import ColumnsScreen
from tui.screens.runs_overlay import METRICS, overlay
from tui.widgets.plots import MetricPlot

HINT = "s/S: sort · /: filter · c: columns · m: plot metric · space: select · v: compare"

LIVE_RELOAD_S = 5  # a live run's row is read again this often (its time goes on every second)


class RunsTable(DataTable[Any]):
    """The runs, one per row: Home / End go to the first / last run."""

    BINDINGS = [
        Binding("home", "first", "first run", show=False),
        Binding("end", "last", "last run", show=False),
    ]

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)

    def action_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class RunsScreen(CifarScreen):
    AUTO_FOCUS = "#runs"  # not the filter box, hidden until `/`
    DEFAULT_CSS = """
    RunsScreen #runs { height: 1fr; min-height: 5; }
    RunsScreen #overlay { height: 1fr; min-height: 8; }
    RunsScreen #hint { height: 1; padding: 0 1; }
    RunsScreen #filter { height: 1; border: none; padding: 0 1; display: none; }
    RunsScreen #filter.shown { display: block; }
    RunsScreen #sweep-table { height: auto; max-height: 50%; display: none; padding: 0 1; }
    RunsScreen #sweep-table.shown { display: block; }
    """
    BINDINGS = [
        Binding("space", "toggle_select", "select"),
        Binding("v", "compare", "compare"),
        Binding("o", "open", "results"),
        Binding("a", "attach", "attach"),
        Binding("d", "delete", "delete"),
        Binding("s", "next_sort", "sort"),
        Binding("S", "reverse_sort", "reverse", show=False),
        Binding("slash", "filter", "filter"),
        Binding("c", "columns", "columns"),
        Binding("m", "next_metric", "metric"),
        Binding("r", "reload", "refresh", show=False),
        Binding("w", "cycle_sweep", "sweep"),  # shown only when there are sweeps (check_action)
        Binding("R", "resume", "resume the run", show=False),  # tui.screens.resume
        Binding("e", "evaluate", "evaluate best.pt", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.every: list[RunRow] = []  # the registry's runs (of the sweep shown)
        self.rows: list[RunRow] = []  # those shown: filtered and sorted, as in the table
        self.flat: dict[str, dict[str, Any]] = {}  # run id -> its flattened config
        self.selected: set[str] = set()
        self.sweeps: list[str] = []  # sweep ids found in the registry and the sweep states
        self.sweep: str | None = None  # the sweep shown alone, or None for every run
        self.view = View()
        self.metric = 0  # index into METRICS
        self.width = 0  # the width the columns were fitted to
        self.hint = Text()  # the hint line shown
        self.ticks = 0  # seconds a live run was shown (tick_live)
        self.drawn: tuple[object, ...] = ()  # what the overlay shows: its runs, metric, epochs

    def compose(self) -> ComposeResult:
        yield TitleBar("Runs", id="title")
        yield Input(placeholder="filter: words in any column, or key=value", id="filter")
        yield RunsTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(Text(HINT, "dim"), id="hint")
        yield Static(id="sweep-table")
        yield MetricPlot("val top-1 % by epoch", xlabel="epoch", percent=True, id="overlay")
        yield Footer()

    def on_mount(self) -> None:
        self.view = View.load(self.cifar.checkpoints)
        self.reload()
        self.set_interval(1.0, self.tick_live)

    def on_screen_resume(self) -> None:
        self.reload()

    def on_resize(self) -> None:
        if self.size.width != self.width:
            self.show_rows()

    def reload_later(self) -> None:
        self.call_later(self.reload)

    def reload(self) -> None:
        app = self.cifar
        root: Path = app.checkpoints
        try:
            every = app.registry.runs()
            configs = app.registry.configs()
        except Exception as exc:  # noqa: BLE001 - a broken registry is shown, not raised
            self.notify(f"cannot read the runs registry: {exc}", severity="error")
            every, configs = [], {}
        found = {r.sweep_id for r in every if r.sweep_id} | set(sweep_ids(root))
        self.sweeps = sorted(found)
        if self.sweep not in found:
            self.sweep = None
        live_before = {r.run_id for r in self.every if r.status == "running"}
        self.every = [r for r in every if self.sweep is None or r.sweep_id == self.sweep]
        self.ring_for_ended(live_before)
        self.flat = {run_id: flatten_config(c) for run_id, c in configs.items()}
        self.query_one("#title", TitleBar).set(
            str(root), f"sweep {self.sweep}" if self.sweep else ""
        )
        self.show_sweep_table(root)
        self.refresh_bindings()
        self.selected &= {r.run_id for r in self.every}
        self.show_rows()
        self.draw_overlay()

    def show_rows(self) -> None:
        """The table again: filtered, sorted and fitted to the width, the cursor kept on its run."""
        table = self.query_one("#runs", RunsTable)
        view = self.view
        columns = view.columns(bool(self.sweeps))
        if view.sort not in {c.key for c in columns}:
            view.sort, view.descending = "run", True
        current = self.current()
        now = time.time()
        columns, self.rows, cells = arrange(self.every, self.flat, view, bool(self.sweeps), now)
        headers = {c.key: view.header(c) for c in columns}
        texts = {c.key: [plain(cells[r.run_id][c.key]) for r in self.rows] for c in columns}
        texts["run"] = [f"✓{t}" for t in texts["run"]]
        self.width = self.size.width or self.app.size.width
        layout = fit(columns, texts, headers, self.width, view.sort)
        if layout.narrow:
            _, _, cells = arrange(self.every, self.flat, view, bool(self.sweeps), now, True)
        table.clear(columns=True)
        for column in layout.columns:
            table.add_column(headers[column.key], key=column.key, width=layout.widths[column.key])
        for r in self.rows:
            row_cells: list[str | Text] = []
            for column in layout.columns:
                width = layout.widths[column.key]
                if column.key == "run":
                    mark = "✓" if r.run_id in self.selected else " "
                    row_cells.append(mark + shorten_run_id(r.run_id, width - 1))
                else:
                    row_cells.append(cut(cells[r.run_id][column.key].text, width))
            table.add_row(*row_cells, key=r.run_id)
        if current is not None and current.run_id in {r.run_id for r in self.rows}:
            table.move_cursor(row=table.get_row_index(current.run_id))
        self.show_hint()

    def show_hint(self) -> None:
        """The keys; the filter's count; a failed run's reason when the cursor is on it."""
        text = self.hint_text()
        if text != self.hint:  # an unchanged line is not drawn again (nor the plot below it)
            self.hint = text
            self.query_one("#hint", Static).update(text)

    def hint_text(self) -> Text:
        if not self.every:
            return Text("no runs yet: launch one from Setup (1)", "dim")
        row = self.current()
        if row is not None and row.status in ("bad_input", "error"):
            reason = self.failure(row)
            if reason:
                return Text(f"{row.status}: {reason}", "bold red", no_wrap=True)
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.view.filter:
            shown = f"filter {self.view.filter!r}: {len(self.rows)} of {len(self.every)} runs"
            text.append(shown + " · ", "bold")
        sweeps = f" · w: {'next sweep' if self.sweep else 'sweeps'}" if self.sweeps else ""
        text.append(HINT + sweeps, "dim")
        return text

    def failure(self, row: RunRow) -> str:
        """The `failed` event's message of a run refused or failed, or ''."""
        final = read_outcome(self.cifar.checkpoints / row.run_id).final
        return final.message if isinstance(final, Failed) else ""

    def ring_for_ended(self, live_before: set[str]) -> None:
        """Bell and desktop notification for a run seen live here that has now ended (failed,
        crashed); the Monitor rings for the run it follows itself."""
        monitor = self.cifar.monitor
        followed = monitor.state.run_id if monitor and monitor.state else None
        for r in self.every:
            if r.run_id in live_before and r.status != "running" and r.run_id != followed:
                notify_run_end(self.app, r.run_id, r.status)

    def tick_live(self) -> None:
        """Live runs' time goes on once a second; their rows (epochs, best val, status) are read
        again every `LIVE_RELOAD_S`. Nothing is done while no shown run is live."""
        live = [r for r in self.rows if r.status == "running"]
        if not live or not self.is_current:
            return
        self.ticks += 1
        if self.ticks % LIVE_RELOAD_S == 0:
            self.reload()
            return
        table = self.query_one("#runs", RunsTable)
        if "time" in table.columns:
            now = time.time()
            for r in live:
                table.update_cell(r.run_id, "time", make_cell(r, "time", {}, now, False).text)

    def show_sweep_table(self, root: Path) -> None:
        """The filtered sweep's result table above the plot (hidden when every run is shown)."""
        widget = self.query_one("#sweep-table", Static)
        widget.set_class(self.sweep is not None, "shown")
        if self.sweep is None:
            return
        try:
            warn = partial(self.notify, severity="warning", timeout=10)
            widget.update(to_rich(sweep_table(root, self.sweep, warn)))
        except BadInputError:  # a sweep known only from the registry: no state file to read
            widget.update(Text(f"sweep {self.sweep}: no table (its state file is missing)"))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cycle_sweep":
            return bool(self.sweeps)
        return True

    def current(self) -> RunRow | None:
        table = self.query_one("#runs", RunsTable)
        if not table.row_count or table.cursor_row >= table.row_count:
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((r for r in self.every if r.run_id == key), None)

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.show_hint()
        if not self.selected:
            self.draw_overlay()

    @on(DataTable.HeaderSelected, "#runs")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by its column (again: the other way)."""
        key = event.column_key.value
        if key is not None:
            self.view.sort_by(key, self.view.columns(bool(self.sweeps)))
            self.sorted_now()

    @on(DataTable.RowSelected, "#runs")
    def _selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()

    @work(thread=True, exclusive=True, exit_on_error=False, group="overlay", name="the runs plot")
    def draw_overlay(self) -> None:
        ids = sorted(self.selected) if self.selected else []
        if not ids and self.sweep is not None:  # a sweep: every run of it
            ids = [r.run_id for r in reversed(self.rows)]
        if not ids:
            row = self.app.call_from_thread(self.current)
            ids = [row.run_id] if row else []
        done = {r.run_id: r.epochs_done for r in self.every}
        drawn = (tuple(ids), self.metric, tuple(done.get(i) for i in ids))
        if drawn == self.drawn:  # the same lines: a key that moved nothing (sort, filter)
            return
        try:
            lines, title, percent = overlay(self.cifar.registry, ids, self.every, self.metric)
        except BadInputError as exc:  # a damaged registry: said, nothing drawn
            self.app.call_from_thread(self.notify, str(exc), severity="error")
            return
        plot = self.query_one("#overlay", MetricPlot)

        def show() -> None:
            plot.percent = percent
            plot.show(lines, title)

        self.app.call_from_thread(show)
        self.drawn = drawn

    # ------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.drawn = ()  # drawn again, even if its runs and epochs look the same
        self.reload()

    def sorted_now(self) -> None:
        self.show_rows()
        self.view.save(self.cifar.checkpoints)
        table = self.query_one("#runs", RunsTable)
        if table.row_count:
            table.move_cursor(row=0)

    def action_next_sort(self) -> None:
        """Sort by the next column (left to right); `S` reverses."""
        self.view.next_sort(self.view.columns(bool(self.sweeps)))
        self.sorted_now()

    def action_reverse_sort(self) -> None:
        self.view.descending = not self.view.descending
        self.sorted_now()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("shown")
        box.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.view.filter = event.value.strip()
        self.show_rows()

    @on(Input.Submitted, "#filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        """Enter: the filter stays (shown above the table), the keys go to the table again."""
        event.input.set_class(bool(self.view.filter), "shown")
        self.query_one("#runs", RunsTable).focus()

    def on_key(self, event: events.Key) -> None:
        """Escape in the filter clears it."""
        box = self.query_one("#filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            box.value = ""
            self.view.filter = ""
            box.remove_class("shown")
            self.query_one("#runs", RunsTable).focus()
            self.show_rows()

    def action_columns(self) -> None:
        """Choose config keys (any, of any run listed) as columns."""
        keys = key_summaries(self.flat[r.run_id] for r in self.every if r.run_id in self.flat)
        if not keys:
            self.notify("no run here records its config", severity="warning")
            return

        def chosen(picked: list[str] | None) -> None:
            if picked is None:
                return
            self.view.config_keys = picked
            self.view.save(self.cifar.checkpoints)
            self.show_rows()

        self.app.push_screen(ColumnsScreen(keys, self.view.config_keys), chosen)

    def action_next_metric(self) -> None:
        """The overlay's metric: val top-1 -> val loss -> train loss -> train top-1 -> lr."""
        self.metric = (self.metric + 1) % len(METRICS)
        self.draw_overlay()

    def action_cycle_sweep(self) -> None:
        """Every run -> the first sweep -> the next ... -> every run again."""
        if not self.sweeps:
            return
        order: list[str | None] = [None, *self.sweeps]
        self.sweep = order[(order.index(self.sweep) + 1) % len(order)]
        self.selected.clear()
        self.reload()
        self.notify(f"sweep {self.sweep}" if self.sweep else "every run")

    def action_toggle_select(self) -> None:
        row = self.current()
        if row is None:
            return
        self.selected ^= {row.run_id}
        self.show_rows()
        self.draw_overlay()

    def action_compare(self) -> None:
        """The selected runs (two or more), oldest first, on the Compare screen."""
        from tui.screens.compare import CompareScreen

        chosen = [r.run_id for r in sorted(self.every, key=lambda r: r.started)]
        chosen = [i for i in chosen if i in self.selected]
        if len(chosen) < 2:
            self.notify("select two runs or more with space, then v to compare them")
            return
        self.app.push_screen(CompareScreen(chosen))

    def action_open(self) -> None:
        row = self.current()
        if row is None:
            return
        run_dir = self.cifar.checkpoints / row.run_id
        if not (run_dir / "eval.npz").is_file():
            if row.status == "running":
                self.notify("still running: a to attach, results come at the end")
            elif reason := self.failure(row):
                self.notify(f"{row.run_id}: {row.status}: {reason}", severity="warning")
            else:
                self.notify(f"{row.run_id} has no test results ({row.status})", severity="warning")
            return
        self.cifar.call_later(self.cifar.show_results, run_dir)

    def action_attach(self) -> None:
        row = self.current()
        if row is None:
            return
        run_dir = self.cifar.checkpoints / row.run_id
        if not (run_dir / "events.jsonl").is_file():
            self.notify(f"{row.run_id} has no event log in {run_dir}", severity="error")
            return
        self.cifar.call_later(self.cifar.attach, run_dir)

    def action_delete(self) -> None:
        row = self.current()
        if row is None:
            return
        if row.status == "running":
            self.notify("stop this run before deleting it", severity="warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                try:
                    self.cifar.registry.delete(row.run_id)
                except (BadInputError, OSError) as exc:  # a damaged or read-only registry
                    self.notify(f"cannot delete {row.run_id}: {exc}", severity="error")
                    return
                self.selected.discard(row.run_id)
                self.notify(f"deleted {row.run_id}")
                self.reload()

        self.app.push_screen(
            ConfirmScreen(
                f"Delete run {row.run_id}?\nIts folder (checkpoints, logs, results) and its "
                "registry rows are removed.",
                yes="Delete",
            ),
            done,
        )

    def action_resume(self) -> None:
        """`--resume` the highlighted run, then its Monitor (refusals are one notification)."""
        from tui.screens.resume import resume_run

        row = self.current()
        if row is not None:
            resume_run(self.cifar, self.cifar.checkpoints / row.run_id)

    def action_evaluate(self) -> None:
        """Evaluate the highlighted run's best.pt on its Results screen."""
        row = self.current()
        if row is not None:
            self.cifar.call_later(self._evaluate, self.cifar.checkpoints / row.run_id)

    async def _evaluate(self, run_dir: Path) -> None:
        await self.cifar.show_results(run_dir)
        if self.cifar.results is not None:
            self.cifar.results.action_evaluate(False)
