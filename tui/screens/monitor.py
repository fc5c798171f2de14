"""Monitor: one run, live. A thread worker starts (or only follows) the engine process and tails
its events; the screen redraws from the accumulated `RunState` at most 4 times a second."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerState, get_current_worker

from engine import control
from engine.config import RunConfig
from engine.events import EpochEnd, Event, Failed, Finished, Phase
from engine.outcome import RunStatus, RunSummary
from engine.run_lock import holder_pid, is_running
from tui.fmt import memory_text, setup_advice, wait_text
from tui.messages import EngineEvents, EngineGone, LaunchFailed, RunLaunched
from tui.notify import notify_run_end
from tui.orchestration.runstate import RunState
from tui.orchestration.supervisor import ENGINE_LOG, no_events_text, supervise
from tui.screens import first_run
from tui.screens.common import (
    CifarScreen,
    ConfirmScreen,
    TitleBar,
    duration,
    pct,
    synthetic_tag,
)
from tui.screens.monitor_text import live_text, system_text
from tui.widgets.plots import Line, MetricPlot

# On a 2-core machine every millisecond the UI spends is taken from training (the engine keeps both
# cores busy): measured there, a text redraw costs ~9 ms and a plot redraw ~45 ms (plotext), so 4
# text and 1 plot redraws a second took ~7% of a core. These intervals keep the Monitor near 2%.
REDRAW_S = 1.0  # text and progress: at most once a second, however fast events arrive
PLOT_REDRAW_S = 3.0  # plots: at most every 3 s (and at once on epoch ends and final events)


# the status box's offer for a finished run: its results, or why it has none (and evaluate)
RESULTS_KEY = {True: "r: results  ·  4: all runs\n", False: "r: why no test results\n"}


@dataclass
class LaunchSpec:
    preset: str
    config: RunConfig
    checkpoints: str | Path | None = None
    edited: bool = False  # changed in Setup: see tui.orchestration.launcher.launch


def tail_text(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def fit_line(parts: list[tuple[int, Text]], width: int, sep: str = " · ") -> Text:
    """Join (rank, text) parts in order; while the line is wider than `width`, drop the part of
    the highest rank (least important; the last of equals first). Rank-0 parts always stay."""
    keep = list(parts)
    while True:
        line = Text(sep).join(t for _, t in keep)
        droppable = [i for i, (rank, _) in enumerate(keep) if rank > 0]
        if line.cell_len <= width or not droppable:
            line.no_wrap, line.overflow = True, "ellipsis"
            return line
        worst = max(droppable, key=lambda i: (keep[i][0], i))
        del keep[worst]


class MonitorScreen(CifarScreen):
    DEFAULT_CSS = """
    MonitorScreen #info { height: auto; max-height: 7; padding: 0 1; }
    MonitorScreen #plots { grid-size: 2 2; grid-gutter: 0 1; height: 1fr; }
    MonitorScreen #status { border: round $panel-lighten-2; padding: 0 1; height: 1fr; }
    MonitorScreen #status.-failed { border: round $error; }
    """
    BINDINGS = [
        Binding("s", "stop_after_epoch", "stop after epoch"),
        Binding("c", "checkpoint_now", "checkpoint"),
        Binding("t", "terminate", "stop now", show=False),
        Binding("r", "results", "results"),
        Binding("q", "leave", "leave"),
    ]

    def __init__(self, *, run_dir: Path | None = None, launch: LaunchSpec | None = None) -> None:
        super().__init__()
        if (run_dir is None) == (launch is None):
            raise ValueError("give run_dir (attach) or launch (start a run), not both")
        self.launch_spec = launch
        self.run_dir: Path | None = run_dir
        self.state: RunState | None = RunState(run_dir) if run_dir else None
        self.engine_exit: int | None = None
        self.engine_gone = False
        self.launch_error: str | None = None
        self.stop_after: int | None = None  # the epoch a pending "stop after epoch" ends at
        # the end is rung (tui.notify) only for a run seen alive: not on attaching to an old one
        self.followed_live = launch is not None
        self._drawn = (-1, -1)
        self._plotted_version, self._plotted_at = -2, 0.0

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield TitleBar("Monitor", id="title")
        yield Static("starting the engine ...", id="info")
        with Grid(id="plots"):
            yield MetricPlot("loss", id="loss")
            yield MetricPlot("top-1 %", percent=True, id="top1")
            yield MetricPlot("learning rate", id="lr")
            yield Static("", id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.supervise_run()
        self.set_interval(REDRAW_S, self.redraw)

    def on_resize(self) -> None:
        self._drawn = (-1, -1)  # the info lines are fitted to the width: refit on the next tick

    # ------------------------------------------------------------------ the worker

    @work(
        thread=True, exclusive=True, exit_on_error=False, group="engine", name="the run supervisor"
    )
    def supervise_run(self) -> None:
        worker = get_current_worker()
        process = None
        if self.launch_spec is not None:
            from tui.orchestration.launcher import launch

            spec = self.launch_spec
            try:
                launched = launch(
                    spec.preset,
                    spec.config,
                    spec.checkpoints,
                    log_file=ENGINE_LOG,
                    edited=spec.edited,
                )
            except Exception as exc:  # noqa: BLE001 - shown in the UI, the app keeps running
                self.post_message(LaunchFailed(f"{type(exc).__name__}: {exc}"))
                return
            process = launched.process
            self.post_message(RunLaunched(launched.run_id, launched.run_dir))
            run_dir = launched.run_dir
        else:
            assert self.run_dir is not None
            run_dir = self.run_dir
            self.followed_live = is_running(run_dir)

        def forward(batch: list[Event]) -> None:
            self.post_message(EngineEvents(run_dir, batch))

        code, final = supervise(
            run_dir,
            forward,
            process=process,
            cancelled=lambda: worker.is_cancelled,
            warn=lambda text: self.app.call_from_thread(self.notify, text, severity="warning"),
        )
        self.post_message(EngineGone(run_dir, code, final))

    @on(RunLaunched)
    def _launched(self, message: RunLaunched) -> None:
        self.run_dir = message.run_dir
        self.state = RunState(message.run_dir)
        self.stop_after = None
        self.app.post_message(message)  # so the runs list and palette learn about it

    @on(EngineEvents)
    def _events(self, message: EngineEvents) -> None:
        if self.state is not None and message.run_dir == self.state.run_dir:
            self.state.apply(message.events)
            final = self.state.final
            if isinstance(final, Finished) and any(isinstance(e, Finished) for e in message.events):
                self.notify(
                    f"run {final.status}: press r for results", title=self.state.run_id, timeout=8
                )
                self._ring(final.status)
                first_run.on_finished(self, final)  # a first run: Results, and what next
            if isinstance(final, Failed) and any(isinstance(e, Failed) for e in message.events):
                text = setup_advice(final.message)
                self.notify(text, title="engine failed", severity="error", timeout=10)
                self._ring(final.status, text)
            if any(isinstance(e, EpochEnd | Finished | Failed | Phase) for e in message.events):
                self.redraw(force=True)  # a new epoch point or the end: show it at once

    @on(EngineGone)
    def _gone(self, message: EngineGone) -> None:
        self.engine_gone = True
        self.engine_exit = message.returncode
        if self.state is not None:
            self.state.engine_alive = False  # no final event now: crashed, as Runs says
            if self.state.final is None and self.state.version:
                self._ring("crashed", "the engine died")
        if not message.final and message.returncode not in (None, 0):
            self.notify(
                f"the engine exited with code {message.returncode} without a final event",
                severity="error",
            )
        self.redraw(force=True)

    def _ring(self, status: str, detail: str = "") -> None:
        if self.followed_live and self.state is not None:
            notify_run_end(self.app, self.state.run_id, status, detail)

    @on(Worker.StateChanged)
    def _worker_changed(self, event: Worker.StateChanged) -> None:
        """The supervisor raised: the status panel says so (the app notifies every failure)."""
        if event.state is WorkerState.ERROR and event.worker.group == "engine":
            error = event.worker.error
            self.launch_error = f"the supervisor failed: {type(error).__name__}: {error}"
            self.redraw(force=True)

    @on(LaunchFailed)
    def _launch_failed(self, message: LaunchFailed) -> None:
        self.launch_error = message.message
        self.redraw(force=True)

    # ------------------------------------------------------------------ drawing

    def redraw(self, force: bool = False) -> None:
        state = self.state
        now = time.time()
        version = state.version if state else -1
        key = (version, int(now))
        if key != self._drawn or force:
            self._drawn = key
            self._draw_text()
        stale = version != self._plotted_version
        if force or (stale and now - self._plotted_at >= PLOT_REDRAW_S):
            self._plotted_version, self._plotted_at = version, now
            self.draw_plots()

    def draw_plots(self) -> None:
        s = self.state
        if s is None:
            return
        self.query_one("#loss", MetricPlot).show(
            [
                Line.of("train (running)", s.step_loss),
                Line.of("train", s.train_loss),
                Line.of("val", s.val_loss),
            ]
        )
        self.query_one("#top1", MetricPlot).show(
            [
                Line.of("train (running)", s.step_top1),
                Line.of("train", s.train_top1),
                Line.of("val", s.val_top1),
            ]
        )
        self.query_one("#lr", MetricPlot).show([Line.of("lr", s.lr)])

    def _draw_text(self) -> None:
        title = self.query_one("#title", TitleBar)
        info = self.query_one("#info", Static)
        status = self.query_one("#status", Static)
        s = self.state
        if self.launch_error is not None:
            title.set("launch failed")
            info.update("")
            status.add_class("-failed")
            status.update(Text(f"could not start the engine:\n{self.launch_error}", style="red"))
            return
        if s is None:
            return
        status_ = s.status
        starting = status_ is RunStatus.NOT_STARTED and not self.engine_gone
        shown = Text("STARTING" if starting else status_.value.upper(), style="bold")
        if status_.failed or status_ is RunStatus.CRASHED:
            shown.stylize("red")
        phase = s.phase_name()
        parts = [shown, Text(phase, style="bold cyan")] if phase else [shown]
        title.set(s.run_id, synthetic_tag(s.synthetic), *parts)
        info.update(self._info(s))
        died = self.engine_gone and s.final is None and self.engine_exit not in (None, 0)
        failed = isinstance(s.final, Failed) or died or self._nothing_to_follow()
        failed = failed or status_ is RunStatus.CRASHED
        status.set_class(failed, "-failed")
        status.update(self._status(s))

    def _info(self, s: RunState) -> Group:
        st = s.started
        if st is None and isinstance(s.final, Failed):  # refused at start: say why, in red
            return Group(Text(setup_advice(s.final.message), style="bold red"))
        if st is None and self.engine_gone:
            if self.launch_spec is not None:
                code = "" if self.engine_exit is None else f" (exit code {self.engine_exit})"
                return Group(Text(f"the engine exited before starting{code}", style="bold red"))
            return Group(Text(f"no run to follow in {s.run_dir}"))
        if st is None:
            return Group(Text(f"waiting for the engine to start ... ({s.run_dir})"))
        done, epochs, step, spe = s.progress()
        width = self.query_one("#info", Static).content_size.width or 10_000
        line1 = fit_line(
            [
                (0, Text.assemble((st.model, "bold"), f" {st.num_params / 1e6:.2f}M")),
                (1, Text(st.device)),
                (2, Text(f"mem {memory_text(s.memory_mb)}")),
                (1, synthetic_tag(st.synthetic) if st.synthetic else Text(st.dataset)),
                (4, Text(f"{st.train_size} train / {st.val_size} val")),
                (3, Text(f"batch {st.batch_size}")),
                *((0, Text(x, style="yellow")) for x in self._warnings(s)),
            ],
            width,
        )
        bars = Table.grid(padding=(0, 1))
        bars.add_column(no_wrap=True)
        bars.add_column(ratio=1)
        bars.add_column(no_wrap=True)
        bars.add_column(ratio=1)
        second = (f"step {step}/{spe}", ProgressBar(total=max(spe, 1), completed=step))
        share = s.phase_share() if s.status is RunStatus.RUNNING else None
        if share is not None and s.phase is not None:  # an evaluation pass: its estimated share
            second = (f"{s.phase_name()} ~{share:.0%}", ProgressBar(total=1.0, completed=share))
        bars.add_row(
            f"epoch {done}/{epochs}", ProgressBar(total=max(epochs, 1), completed=done), *second
        )
        running = s.status is RunStatus.RUNNING
        ips = s.img_per_s() if running else None
        if isinstance(s.final, Finished):  # the run's mean, not the last step's
            ips = RunSummary.from_dict(s.final.summary).img_per_s
        ips_text = "-" if ips is None else f"{ips:,.0f}"
        best, best_epoch = s.best()
        phase = s.phase_name() if running else None
        now = time.time()
        in_phase = s.phase_elapsed_s(now)
        phase_part = []  # the phase and how long it has run
        if phase:
            took = "" if in_phase is None else f" {duration(in_phase)}"
            phase_part.append((0, Text(phase + took, "bold cyan")))
        ended = Text(s.status.value if s.status.final else "crashed: the engine is gone")
        if s.status.failed or s.status is RunStatus.CRASHED:
            ended.stylize("bold red")
        line3 = fit_line(
            [
                *phase_part,
                (0, Text(f"{'train ' if s.phase else ''}{ips_text} img/s")),
                (1, Text(f"input wait {wait_text(s.data_wait if running else None)}")),
                (4, Text(f"elapsed {duration(s.elapsed(now))}")),
                (2, Text(f"left ~{duration(s.eta_s(now))}") if running else ended),
                (3, Text(f"best val {pct(best)}" + (f" (e{best_epoch})" if best_epoch else ""))),
            ],
            width,
        )
        return Group(*first_run.header_lines(st), line1, bars, line3)

    @staticmethod
    def _warnings(s: RunState) -> list[str]:
        out = []
        if s.bad_steps:
            out.append(f"{s.bad_steps} skipped non-finite steps")
        if s.resumed_from:
            out.append(f"resumed from {s.resumed_from}")
        return out

    def _nothing_to_follow(self) -> bool:
        """Attached to a run whose log held no event, and no engine came to write one."""
        s = self.state
        return self.launch_spec is None and self.engine_gone and s is not None and s.version == 0

    def _status(self, s: RunState) -> Text:
        out = Text()
        if self._nothing_to_follow():
            out.append(no_events_text(s.run_dir) + "\n", style="bold red")
            return out
        if isinstance(s.final, Failed):
            out.append(f"FAILED ({s.final.status})\n", style="bold red")
            out.append(setup_advice(s.final.message) + "\n", style="red")
            if s.final.traceback_path:
                out.append(f"traceback: {s.final.traceback_path}\n", style="bold")
            out.append(f"engine log: {s.run_dir / ENGINE_LOG}\n", style="dim")
            return out
        if self.engine_gone and s.final is None:
            out.append("the engine stopped without a final event\n", style="bold red")
            out.append(f"status: {s.status}: resumable (cifar-tui --resume {s.run_id})\n", "red")
            if self.engine_exit is not None:
                out.append(f"exit code {self.engine_exit}\n")
            log = s.run_dir / ENGINE_LOG
            if log.is_file():
                out.append(f"engine log: {log}\n", style="bold")
                out.append(tail_text(log, 6), style="dim")
            return out
        out.append(f"status: {s.status}\n", style="bold")
        if self.stop_after is not None and s.final is None:
            out.append(f"stop requested: the run ends after epoch {self.stop_after}\n", "yellow")
        live = live_text(s)
        if live is not None:
            out.append_text(live)
        e = s.last_epoch
        if e is not None:
            out.append(
                f"epoch {e.epoch}: train {e.train_loss:.3f} / {pct(e.train_top1)}\n"
                f"  val {'-' if e.val_loss is None else f'{e.val_loss:.3f}'} / {pct(e.val_top1)}"
                f" (top-5 {pct(e.val_top5)})\n"
            )
        if s.last_checkpoint:
            out.append(f"checkpoint: {s.last_checkpoint}\n")
        system = system_text(s.system)
        if system:
            out.append(f"system: {system}\n")
        for name, ev in sorted(s.tests.items()):
            out.append(f"test ({name}, e{ev.epoch}): {pct(ev.top1)} top-1, {pct(ev.top5)} top-5\n")
        if isinstance(s.final, Finished):
            out.append(RESULTS_KEY[(s.run_dir / "eval.npz").is_file()], style="bold")
        else:
            out.append("s: stop after epoch · c: checkpoint · t: stop now\n", style="dim")
        out.append(str(s.run_dir), style="dim")
        return out

    # ------------------------------------------------------------------ actions

    def _live(self) -> bool:
        s = self.state
        if s is None or s.final is not None or self.engine_gone:
            self.notify("this run is not running", severity="warning")
            return False
        return True

    def action_stop_after_epoch(self) -> None:
        if self._live():
            assert self.state is not None
            control.request(self.state.run_dir, "stop_after_epoch")
            done, epochs, _, _ = self.state.progress()
            self.stop_after = min(done + 1, epochs)
            self.notify(f"stop requested: the run ends after epoch {self.stop_after}")
            self.redraw(force=True)

    def action_checkpoint_now(self) -> None:
        if self._live():
            assert self.state is not None
            control.request(self.state.run_dir, "checkpoint_now")
            self.notify("checkpoint requested")

    def action_terminate(self) -> None:
        """`t`: SIGTERM to the engine once the user confirms (it stops inside the epoch)."""
        if not self._live():
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._terminate()

        self.app.push_screen(
            ConfirmScreen(
                "Stop now? The engine checkpoints and stops (s: after the epoch).",
                yes="Stop now",
            ),
            answered,
        )

    def _terminate(self) -> None:
        if not self._live():
            return
        assert self.state is not None
        pid = holder_pid(self.state.run_dir)  # the engine holding the run's lock
        if pid is None:
            self.notify("no engine process to signal", severity="warning")
            return
        import os
        import signal

        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        self.notify("SIGTERM sent: the engine finishes its step, checkpoints and stops")

    def action_results(self) -> None:
        s = self.state
        if s is None or not ((s.run_dir / "eval.npz").is_file() or s.final or self.engine_gone):
            self.notify("no results yet: they come when the run finishes", severity="warning")
            return
        self.cifar.call_later(self.cifar.show_results, s.run_dir)

    async def action_leave(self) -> None:
        await self.app.action_quit()  # prints `cifar-tui attach RUN_ID` while the run goes on
