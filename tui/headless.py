"""Headless display: a rich consumer of a run's event stream, on stderr.

It renders what `events.jsonl` says (progress bars on a terminal, one line per epoch always, a
final summary table) and never talks to the engine any other way.
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
    EVENTS_FILE,
    BadStep,
    EpochEnd,
    Evaluated,
    Event,
    EventTail,
    Failed,
    Finished,
    Resumed,
    RunStarted,
    Step,
    TTAEvaluated,
)

POLL_S = 0.2


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:5.2f}%"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def memory_text(mib: float | None) -> str:
    """Device memory: '812 MiB', '10.2 GiB'; '-' when not reported (CPU, older logs)."""
    if mib is None:
        return "-"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def wait_text(fraction: float | None) -> str:
    """Share of step time spent waiting for input: '3%', '<1%'; '-' when not reported."""
    if fraction is None:
        return "-"
    pct = 100 * fraction
    return "<1%" if 0 < pct < 0.5 else f"{pct:.0f}%"


def _load_text(wait: float | None, mib: float | None) -> str:
    """'input wait 3%  mem 10.2 GiB', the parts that were reported, or ''."""
    parts = []
    if wait is not None:
        parts.append(f"input wait {wait_text(wait)}")
    if mib is not None:
        parts.append(f"mem {memory_text(mib)}")
    return "  ".join(parts)


class HeadlessPrinter:
    """Turns events into terminal output. Feed it with `handle(event)`; close with `stop()`."""

    EPOCH_HEADER = (
        f"{'epoch':>9}  {'train loss':>10}  {'train acc':>9}  {'val loss':>8}  {'val acc':>8}  "
        f"{'val top5':>8}  {'lr':>9}  {'time':>6}  {'img/s':>7}  {'best':>13}"
    )

    def __init__(self, console: Console | None = None, echo_failures: bool = True) -> None:
        """`echo_failures=False` when the engine shares our stderr and has said it already."""
        self.console = console or Console(stderr=True)
        self.echo_failures = echo_failures
        self.progress: Progress | None = None
        self.epoch_task: TaskID | None = None
        self.step_task: TaskID | None = None
        self.started: RunStarted | None = None
        self.t0 = time.time()
        self.final: Event | None = None
        self.tests: dict[str, Evaluated] = {}
        self.data_wait: float | None = None  # the latest step's, when the engine reports them
        self.memory_mb: float | None = None

    # -------------------------------------------------------------- events

    def handle(self, event: Event) -> None:
        handler = getattr(self, f"_on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _on_run_started(self, e: RunStarted) -> None:
        self.started = e
        self.t0 = e.t or time.time()
        tag = " [bold yellow]SYNTHETIC DATA[/]" if e.synthetic else ""
        self.console.print(
            f"[bold]{e.run_id}[/]{tag}  {e.model} ({e.num_params / 1e6:.2f}M params) "
            f"on {e.device}; "
            f"{e.dataset}: {e.train_size} train / {e.val_size} val / {e.test_size} test; "
            f"{e.epochs} epochs x {e.steps_per_epoch} steps of {e.batch_size}",
            soft_wrap=True,
        )
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
        wait, memory = getattr(e, "data_wait", None), getattr(e, "memory_mb", None)
        self.data_wait = wait if wait is not None else self.data_wait
        self.memory_mb = memory if memory is not None else self.memory_mb
        if self.progress is None or self.step_task is None or self.epoch_task is None:
            return
        elapsed = time.time() - self.t0
        left = elapsed / max(e.step, 1) * (e.total_steps - e.step)
        load = _load_text(wait, memory)
        info = (
            f"loss {e.loss:.3f}  acc {_pct(e.top1).strip()}  lr {e.lr:.2e}  "
            f"{e.img_per_s:,.0f} img/s  {load + '  ' if load else ''}run left ~{duration(left)}"
        )
        self.progress.update(
            self.step_task, completed=e.epoch_step, total=e.steps_per_epoch, info=info
        )
        self.progress.update(self.epoch_task, completed=e.epoch - 1)

    def _on_epoch_end(self, e: EpochEnd) -> None:
        load = _load_text(self.data_wait, self.memory_mb)  # the epoch's last step's numbers
        best = "-" if e.best_val_top1 is None else f"{_pct(e.best_val_top1)} (e{e.best_epoch})"
        self.console.print(
            f"{f'{e.epoch}/{e.epochs}':>9}  {e.train_loss:10.4f}  {_pct(e.train_top1):>9}  "
            f"{'-' if e.val_loss is None else f'{e.val_loss:8.4f}':>8}  {_pct(e.val_top1):>8}  "
            f"{_pct(e.val_top5):>8}  {e.lr:9.2e}  {e.epoch_s:5.1f}s  {e.img_per_s:7,.0f}  "
            f"{best:>13}{'  ' + load if load else ''}",
            soft_wrap=True,
        )
        if self.progress is not None and self.epoch_task is not None:
            self.progress.update(self.epoch_task, completed=e.epoch)

    def _on_evaluated(self, e: Evaluated) -> None:
        self.tests[e.checkpoint] = e
        self.console.print(
            f"test set, {e.checkpoint} checkpoint (epoch {e.epoch}): top-1 {_pct(e.top1)}, "
            f"top-5 {_pct(e.top5)}, loss {e.loss:.4f} on {e.count} images",
            soft_wrap=True,
        )

    def _on_tta_evaluated(self, e: TTAEvaluated) -> None:
        self.console.print(
            f"test set, {e.checkpoint} checkpoint with TTA ({len(e.views)} views, {e.cost}x cost): "
            f"top-1 {_pct(e.top1)}, top-5 {_pct(e.top5)}",
            soft_wrap=True,
        )

    def _on_finished(self, e: Finished) -> None:
        self.final = e
        self.stop()
        self.console.print(summary_table(e.summary))

    def _on_failed(self, e: Failed) -> None:
        self.final = e
        self.stop()
        if not self.echo_failures:
            return
        where = f" (traceback: {e.traceback_path})" if e.traceback_path else ""
        self.console.print(f"[bold red]run failed[/] ({e.status}): {e.message}{where}")

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def summary_table(s: dict[str, Any]) -> Table:
    title = f"{s['run_id']}: {s['status']}"
    if s.get("synthetic"):
        title += "  [SYNTHETIC DATA]"
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("dataset", s.get("dataset", "-") + (" (SYNTHETIC)" if s.get("synthetic") else "")),
        (
            "model",
            f"{s.get('model')} ({s.get('num_params', 0) / 1e6:.2f}M params) on {s.get('device')}",
        ),
        ("epochs", f"{s.get('epochs_done')} of {s.get('epochs')}"),
        ("best val top-1", _best(s.get("best_val_top1"), s.get("best_epoch"))),
        ("test top-1 / top-5 (best)", f"{_pct(s.get('test_top1'))} / {_pct(s.get('test_top5'))}"),
        (
            "test top-1 / top-5 (last)",
            f"{_pct(s.get('test_top1_last'))} / {_pct(s.get('test_top5_last'))}",
        ),
        ("macro AP / AUC (best)", _pair(s.get("macro_ap"), s.get("macro_auc"))),
        *_tta_rows(s.get("tta")),
        ("wall time", duration(s.get("wall_s"))),
        ("train throughput", "-" if s.get("img_per_s") is None else f"{s['img_per_s']:,.0f} img/s"),
        ("run folder", str(s.get("run_dir", "-"))),
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
        f"{_pct(tta.get('top1'))} / {_pct(tta.get('top5'))}  "
        f"({len(views)} views, {tta.get('cost')}x cost)"
    )
    width = max(len(v["view"]) for v in views)
    per_view = "\n".join(
        f"{v['view']:<{width}}  {_pct(v.get('top1'))} / {_pct(v.get('top5'))}" for v in views
    )
    return [("TTA top-1 / top-5 (best)", merged), ("TTA per view", per_view)]


def _best(top1: float | None, epoch: int | None) -> str:
    return "-" if top1 is None else f"{_pct(top1)} (epoch {epoch})"


def _pair(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a:.4f} / {b:.4f}"


def follow(run_dir: Path, process: Any, printer: HeadlessPrinter, offset: int = 0) -> Event | None:
    """Render the run's events (from byte `offset`) until the engine process has exited.

    Returns the final event (`finished` or `failed`), or None if the engine died silently.
    """
    tail = EventTail(run_dir / EVENTS_FILE, offset)
    while True:
        alive = process.poll() is None
        for event in tail.poll():
            printer.handle(event)
        if not alive:
            break
        time.sleep(POLL_S)
    printer.stop()
    return printer.final
