"""Headless display: a rich consumer of a run's event stream, on stderr.

It renders what `events.jsonl` says (progress bars on a terminal, one line per epoch always, a
final summary table) and never talks to the engine any other way. What it knows about the run
is the Monitor screen's model of it, `RunState`: each event is applied to that first, then shown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from engine.events import (
    BadStep,
    EpochEnd,
    Evaluated,
    Event,
    Failed,
    Finished,
    Resumed,
    RunStarted,
    Step,
    TTAEvaluated,
)
from engine.outcome import RunSummary
from tui.fmt import duration, load_text, pct
from tui.orchestration import what_next
from tui.orchestration.runstate import RunState
from tui.orchestration.supervisor import supervise

POLL_S = 0.2


class HeadlessPrinter:
    """Turns events into terminal output. Feed it with `handle(event)`; close with `stop()`."""

    EPOCH_HEADER = (
        f"{'epoch':>9}  {'train loss':>10}  {'train acc':>9}  {'val loss':>8}  {'val acc':>8}  "
        f"{'val top5':>8}  {'lr':>9}  {'time':>6}  {'img/s':>7}  {'best':>13}"
    )

    def __init__(
        self,
        console: Console | None = None,
        echo_failures: bool = True,
        *,
        run_dir: Path | None = None,
    ) -> None:
        """`echo_failures=False` when the engine shares our stderr and has said it already."""
        self.console = console or Console(stderr=True)
        self.echo_failures = echo_failures
        self.state = RunState(run_dir if run_dir is not None else Path())
        self.progress: Progress | None = None
        self.epoch_task: TaskID | None = None
        self.step_task: TaskID | None = None
        self.t0 = time.time()

    @property
    def started(self) -> RunStarted | None:
        return self.state.started

    @property
    def final(self) -> Finished | Failed | None:
        return self.state.final

    @property
    def tests(self) -> dict[str, Evaluated]:
        return self.state.tests

    @property
    def data_wait(self) -> float | None:
        """The latest step's input-wait fraction, when the engine reports it."""
        return self.state.data_wait

    @property
    def memory_mb(self) -> float | None:
        return self.state.memory_mb

    # -------------------------------------------------------------- events

    def handle(self, event: Event) -> None:
        """Apply the event to the run's state, then show it."""
        self.state.apply([event])
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, e: RunStarted) -> None:
        self.t0 = e.t or time.time()
        tag = " [bold yellow]SYNTHETIC DATA[/]" if e.synthetic else ""
        self.console.print(
            f"[bold]{e.run_id}[/]{tag}  {e.model} ({e.num_params / 1e6:.2f}M params) "
            f"on {e.device}; "
            f"{e.dataset}: {e.train_size} train / {e.val_size} val / {e.test_size} test; "
            f"{e.epochs} epochs x {e.steps_per_epoch} steps of {e.batch_size}",
            soft_wrap=True,
        )
        for i, line in enumerate(what_next.header_lines(e)):  # a first run: its size, banner
            style = "bold" if i == 0 else "bold yellow"
            self.console.print(line, style=style, markup=False, highlight=False, soft_wrap=True)
        self.console.print(self.EPOCH_HEADER, style="dim", soft_wrap=True)
        if self.console.is_terminal:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self.epoch_task = self.progress.add_task("epochs", total=e.epochs, info="")
            self.step_task = self.progress.add_task("steps ", total=e.steps_per_epoch, info="")
            self.progress.start()

    def _on_resumed(self, e: Resumed) -> None:
        self.console.print(
            f"resuming after epoch {e.epoch} + {e.epoch_step} steps (step {e.step}) "
            f"from {e.checkpoint}",
            soft_wrap=True,
        )
        if e.warning:
            self.console.print(f"[yellow]warning:[/] {e.warning}", soft_wrap=True)
        if e.config_changes:
            self.console.print(f"config changed (--force): {', '.join(e.config_changes)}")
        self._on_run_started(e)
        if self.progress is not None and self.epoch_task is not None:
            self.progress.update(self.epoch_task, completed=e.epoch)

    def _on_bad_step(self, e: BadStep) -> None:
        self.console.print(
            f"[yellow]step {e.step}: loss is {e.loss}; update skipped[/] "
            f"({e.consecutive} in a row)",
            soft_wrap=True,
        )

    def _on_step(self, e: Step) -> None:
        if self.progress is None or self.step_task is None or self.epoch_task is None:
            return
        elapsed = time.time() - self.t0
        left = elapsed / max(e.step, 1) * (e.total_steps - e.step)
        load = load_text(getattr(e, "data_wait", None), getattr(e, "memory_mb", None))
        info = (
            f"loss {e.loss:.3f}  acc {pct(e.top1)}  lr {e.lr:.2e}  "
            f"{e.img_per_s:,.0f} img/s  {load + '  ' if load else ''}run left ~{duration(left)}"
        )
        self.progress.update(
            self.step_task, completed=e.epoch_step, total=e.steps_per_epoch, info=info
        )
        self.progress.update(self.epoch_task, completed=e.epoch - 1)

    def _on_epoch_end(self, e: EpochEnd) -> None:
        load = load_text(self.state.data_wait, self.state.memory_mb)  # the epoch's last step's
        best = (
            "-" if e.best_val_top1 is None else f"{pct(e.best_val_top1, width=5)} (e{e.best_epoch})"
        )
        train, val, val5 = (pct(x, width=5) for x in (e.train_top1, e.val_top1, e.val_top5))
        self.console.print(
            f"{f'{e.epoch}/{e.epochs}':>9}  {e.train_loss:10.4f}  {train:>9}  "
            f"{'-' if e.val_loss is None else f'{e.val_loss:8.4f}':>8}  {val:>8}  "
            f"{val5:>8}  {e.lr:9.2e}  {e.epoch_s:5.1f}s  {e.img_per_s:7,.0f}  "
            f"{best:>13}{'  ' + load if load else ''}",
            soft_wrap=True,
        )
        if self.progress is not None and self.epoch_task is not None:
            self.progress.update(self.epoch_task, completed=e.epoch)

    def _on_evaluated(self, e: Evaluated) -> None:
        self.console.print(
            f"test set, {e.checkpoint} checkpoint (epoch {e.epoch}): top-1 {pct(e.top1, width=5)}, "
            f"top-5 {pct(e.top5, width=5)}, loss {e.loss:.4f} on {e.count} images",
            soft_wrap=True,
        )

    def _on_tta_evaluated(self, e: TTAEvaluated) -> None:
        self.console.print(
            f"test set, {e.checkpoint} checkpoint with TTA ({len(e.views)} views, {e.cost}x cost): "
            f"top-1 {pct(e.top1, width=5)}, top-5 {pct(e.top5, width=5)}",
            soft_wrap=True,
        )

    def _on_finished(self, e: Finished) -> None:
        self.stop()
        self.console.print(summary_table(RunSummary.from_dict(e.summary)))
        if e.status == "done" and what_next.is_first_run(self.started):
            s = self.state
            for line in what_next.what_next_lines(s.run_id, s.run_dir, dashboard=False):
                self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    def _on_failed(self, e: Failed) -> None:
        self.stop()
        if not self.echo_failures:
            return
        where = f" (traceback: {e.traceback_path})" if e.traceback_path else ""
        self.console.print(f"[bold red]run failed[/] ({e.status}): {e.message}{where}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def summary_table(s: RunSummary) -> Table:
    title = f"{s.run_id}: {s.status}"
    if s.synthetic:
        title += "  [SYNTHETIC DATA]"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("dataset", (s.dataset or "-") + (" (SYNTHETIC)" if s.synthetic else "")),
        ("model", f"{s.model} ({(s.num_params or 0) / 1e6:.2f}M params) on {s.device}"),
        ("epochs", f"{s.epochs_done} of {s.epochs}"),
        ("best val top-1", _best(s.best_val_top1, s.best_epoch)),
        ("test top-1 / top-5 (best)", f"{pct(s.test_top1, width=5)} / {pct(s.test_top5, width=5)}"),
        (
            "test top-1 / top-5 (last)",
            f"{pct(s.test_top1_last, width=5)} / {pct(s.test_top5_last, width=5)}",
        ),
        ("macro AP / AUC (best)", _pair(s.macro_ap, s.macro_auc)),
        *_tta_rows(s.tta),
        ("wall time", duration(s.wall_s)),
        ("train throughput", "-" if s.img_per_s is None else f"{s.img_per_s:,.0f} img/s"),
        ("run folder", s.run_dir or "-"),
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


def _tta_rows(tta: Any) -> list[tuple[str, str]]:
    """Summary rows for test-time augmentation: merged, then each distinct view (none: no TTA)."""
    if not isinstance(tta, dict) or not tta.get("views"):
        return []
    views = tta["views"]
    merged = (
        f"{pct(tta.get('top1'), width=5)} / {pct(tta.get('top5'), width=5)}  "
        f"({len(views)} views, {tta.get('cost')}x cost)"
    )
    width = max(len(v["view"]) for v in views)
    per_view = "\n".join(
        f"{v['view']:<{width}}  {pct(v.get('top1'), width=5)} / {pct(v.get('top5'), width=5)}"
        for v in views
    )
    return [("TTA top-1 / top-5 (best)", merged), ("TTA per view", per_view)]


def _best(top1: float | None, epoch: int | None) -> str:
    return "-" if top1 is None else f"{pct(top1, width=5)} (epoch {epoch})"


def _pair(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a:.4f} / {b:.4f}"


def follow(run_dir: Path, process: Any, printer: HeadlessPrinter, offset: int = 0) -> Event | None:
    """Render the run's events (from byte `offset`) until the engine process has exited.

    Returns the final event (`finished` or `failed`), or None if the engine died silently.
    """

    def show(batch: list[Event]) -> None:
        for event in batch:
            printer.handle(event)

    def warn(text: str) -> None:
        printer.console.print(f"warning: {text}", style="yellow", markup=False, soft_wrap=True)

    supervise(run_dir, show, process=process, poll_s=POLL_S, warn=warn, offset=offset)
    printer.stop()
    return printer.final
