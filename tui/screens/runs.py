"""Runs: every run in runs.sqlite, overlaid validation curves, open / attach / delete.

Runs planned by `cifar-tui sweep` carry their sweep id; `w` cycles through the sweeps, showing
only that sweep's runs, its result table (mean ± std over seeds) and all its curves overlaid.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Footer, Static

from engine.errors import BadInputError
from engine.runs import RunRow, read_run_meta
from tui.orchestration.exports.results_table import to_rich
from tui.orchestration.sweep import sweep_ids, sweep_table
from tui.screens.common import CifarScreen, ConfirmScreen, TitleBar, duration, pct
from tui.widgets.plots import Line, MetricPlot

HINT = "space: select for the plot · enter/o: results · a: attach · d: delete"


class RunsScreen(CifarScreen):
    DEFAULT_CSS = """
    RunsScreen #runs { height: 1fr; min-height: 5; }
    RunsScreen #overlay { height: 1fr; min-height: 8; }
    RunsScreen #hint { height: 1; padding: 0 1; }
    RunsScreen #sweep-table { height: auto; max-height: 50%; display: none; padding: 0 1; }
    RunsScreen #sweep-table.shown { display: block; }
    """
    BINDINGS = [
        Binding("space", "toggle_select", "select"),
        Binding("o", "open", "results"),
        Binding("a", "attach", "attach"),
        Binding("d", "delete", "delete"),
        Binding("r", "reload", "refresh"),
        Binding("w", "cycle_sweep", "sweep"),  # shown only when there are sweeps (check_action)
        Binding("R", "resume", "resume the run", show=False),  # tui.screens.resume
        Binding("e", "evaluate", "evaluate best.pt", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[RunRow] = []
        self.selected: set[str] = set()
        self.sweeps: list[str] = []  # sweep ids found in the registry and the sweep states
        self.sweep: str | None = None  # the sweep shown alone, or None for every run

    def compose(self) -> ComposeResult:
        yield TitleBar("Runs", id="title")
        yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
        yield Static(Text(HINT, "dim"), id="hint")
        yield Static(id="sweep-table")
        yield MetricPlot("val top-1 % by epoch", xlabel="epoch", percent=True, id="overlay")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        for key, label in (
            ("sel", " "),
            ("run", "run"),
            ("preset", "preset"),
            ("status", "status"),
            ("data", "data"),
            ("best", "best val"),
            ("test", "test top-1"),
            ("time", "time"),
        ):
            table.add_column(label, key=key)
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload_later(self) -> None:
        self.call_later(self.reload)

    def reload(self) -> None:
        app = self.cifar
        root: Path = app.checkpoints
        try:
            every = app.registry.runs()
        except Exception as exc:  # noqa: BLE001 - a broken registry is shown, not raised
            self.notify(f"cannot read the runs registry: {exc}", severity="error")
            every = []
        found = {r.sweep_id for r in every if r.sweep_id} | set(sweep_ids(root))
        self.sweeps = sorted(found)
        if self.sweep not in found:
            self.sweep = None
        self.rows = [r for r in every if self.sweep is None or r.sweep_id == self.sweep]
        self.query_one("#title", TitleBar).set(
            str(root), f"sweep {self.sweep}" if self.sweep else ""
        )
        self.show_sweep_table(root)
        self.refresh_bindings()
        table = self.query_one("#runs", DataTable)
        if self.sweeps and "sweep" not in table.columns:
            table.add_column("sweep", key="sweep")
        current = None
        if table.row_count and table.cursor_row < table.row_count:
            current = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        table.clear()
        for r in self.rows:
            best = "-" if r.best_val_top1 is None else f"{pct(r.best_val_top1)} e{r.best_epoch}"
            data = Text("SYNTHETIC", style="bold") if r.dataset == "synthetic" else r.dataset
            cells: list[str | Text] = [
                "✓" if r.run_id in self.selected else " ",
                r.run_id,
                r.preset,
                r.status,
                data,
                best,
                pct(r.test_top1),
                duration(r.wall_s),
            ]
            if "sweep" in table.columns:
                cells.append(r.sweep_id or "")
            table.add_row(*cells, key=r.run_id)
        if self.rows and self.sweeps:
            self.query_one("#hint", Static).update(
                Text(f"{HINT} · w: {'next sweep' if self.sweep else 'sweeps'}", "dim")
            )
        if not self.rows:
            self.query_one("#hint", Static).update(
                Text("no runs yet: launch one from Setup (1)", "dim")
            )
        if current is not None and current in {r.run_id for r in self.rows}:
            table.move_cursor(row=table.get_row_index(current))
        self.selected &= {r.run_id for r in self.rows}
        self.draw_overlay()

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
        table = self.query_one("#runs", DataTable)
        if not self.rows or table.cursor_row >= len(self.rows):
            return None
        key = table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value
        return next((r for r in self.rows if r.run_id == key), None)

    @on(DataTable.RowHighlighted, "#runs")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        if not self.selected:
            self.draw_overlay()

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
        registry = self.cifar.registry
        lines = []
        synthetic = False
        for run_id in ids:
            try:
                epochs = registry.epochs(run_id)
            except BadInputError as exc:  # a damaged registry: said, nothing drawn
                self.app.call_from_thread(self.notify, str(exc), severity="error")
                return
            row = next((r for r in self.rows if r.run_id == run_id), None)
            synthetic |= bool(row and row.dataset == "synthetic")
            xs = [e["epoch"] for e in epochs if e.get("val_top1") is not None]
            ys = [e["val_top1"] for e in epochs if e.get("val_top1") is not None]
            label = run_id if row is None else f"{row.preset} {run_id[-4:]}"
            if row is not None and row.sweep_id:
                label = self._sweep_label(run_id, label)
            lines.append(Line(label, xs, ys))
        title = "val top-1 % by epoch" + (" (SYNTHETIC data)" if synthetic else "")
        self.app.call_from_thread(self.query_one("#overlay", MetricPlot).show, lines, title)

    def _sweep_label(self, run_id: str, default: str) -> str:
        try:
            meta = read_run_meta(self.cifar.checkpoints / run_id)
        except (OSError, ValueError):
            return default
        return f"{meta.get('recipe', default)} s{meta.get('seed', '?')}"

    # ------------------------------------------------------------------ actions

    def action_reload(self) -> None:
        self.reload()

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
        table = self.query_one("#runs", DataTable)
        table.update_cell(row.run_id, "sel", "✓" if row.run_id in self.selected else " ")
        self.draw_overlay()

    def action_open(self) -> None:
        row = self.current()
        if row is None:
            return
        run_dir = self.cifar.checkpoints / row.run_id
        if not (run_dir / "eval.npz").is_file():
            if row.status == "running":
                self.notify("still running: a to attach, results come at the end")
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
