"""What a sweep prints: each run's `--run` display with a one-line result, and the `--dry-run`
plan table (torch-free)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table

from engine.events import Event, Failed, Finished
from engine.outcome import RunSummary
from tui.fmt import duration, pct
from tui.orchestration.headless import HeadlessPrinter

if TYPE_CHECKING:
    from pathlib import Path

    from tui.orchestration.sweep.runner import SweepRunner


class SweepPrinter(HeadlessPrinter):
    """The `--run` display for each run, with a one-line result instead of the summary table.

    `quiet` (several runs at once): only that line, since the epoch lines would interleave.
    """

    def __init__(
        self, console: Console, prefix: str, quiet: bool, run_dir: Path | None = None
    ) -> None:
        super().__init__(console, echo_failures=False, run_dir=run_dir)
        self.prefix = prefix
        self.quiet = quiet

    def handle(self, event: Event) -> None:
        if self.quiet and not isinstance(event, Finished | Failed):
            self.state.apply([event])  # followed, not shown
            return
        super().handle(event)

    def _on_finished(self, e: Finished) -> None:
        self.stop()
        s = RunSummary.from_dict(e.summary)
        result = "no test" if s.test_top1 is None else f"test top-1 {pct(s.test_top1)}"
        self.console.print(
            f"{self.prefix} {e.status}: {result}, best val epoch {s.best_epoch}, "
            f"{duration(s.wall_s)}",
            soft_wrap=True,
            highlight=False,
        )

    def _on_failed(self, e: Failed) -> None:
        self.stop()
        if self.quiet:
            self.console.print(f"{self.prefix} failed ({e.status}): {e.message}", soft_wrap=True)


def plan_table(runner: SweepRunner) -> Table:
    """What `--dry-run` shows: every planned run, its overrides and what a start would do."""
    todo = {run.key: how for run, how in runner.todo()}
    table = Table(
        "#",
        "recipe",
        "seed",
        "preset",
        "overrides",
        "run",
        "next",
        title=f"sweep {runner.plan.sweep_id} ({runner.plan.spec.source})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for run in runner.plan.runs:
        table.add_row(
            str(run.index),
            run.recipe.label,
            str(run.seed),
            run.recipe.preset,
            " ".join(run.recipe.overrides) or "-",
            runner.state.run_id(run.key) or "-",
            todo.get(run.key)
            or ("skipped (stopped)" if runner.state.skipped(run.key) else "finished"),
        )
    return table
