"""The model of a run built from its events: what the Monitor screen and the headless printer
both show (no Textual, easy to test).

`RunState.apply(events)` turns the event stream into histories and progress; `downsample` keeps
a plotted history short however long the run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.events import (
    EpochEnd,
    Evaluated,
    Event,
    Failed,
    Finished,
    Phase,
    RunStarted,
    Step,
    SystemSample,
)
from engine.outcome import RunStatus, RunSummary, outcome_of

# An evaluation pass reads images ~3x as fast as training does (a forward pass, no backward):
# the estimate of a test pass before a validation pass has been timed.
EVAL_SPEEDUP = 3.0


@dataclass
class Series:
    """A growing (x, y) history, x in epochs; per point also the optimizer step and the event's
    wall time (s since the Unix epoch), for plots against step or time."""

    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)

    def add(self, x: float, y: float | None, step: float, t: float) -> None:
        if y is None:
            return
        self.xs.append(float(x))
        self.ys.append(float(y))
        self.steps.append(float(step))
        self.ts.append(float(t))

    def keep_first(self, n: int) -> None:
        for values in (self.xs, self.ys, self.steps, self.ts):
            del values[n:]

    def __len__(self) -> int:
        return len(self.xs)


def downsample(xs: list[float], ys: list[float], n: int) -> tuple[list[float], list[float]]:
    """At most `n` points of a series: bucket means, first and last points kept exactly.

    Plots redraw cheaply however long the run: a 200-epoch, 2 Hz step history is ~10^5 points,
    a plot is ~100 columns wide.
    """
    if len(xs) <= n or n < 3:
        return list(xs), list(ys)
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    inner_x, inner_y = x[1:-1], y[1:-1]
    bounds = np.linspace(0, len(inner_x), n - 1).astype(np.int64)
    starts, ends = bounds[:-1], bounds[1:]
    ok = ends > starts
    width = ends[ok] - starts[ok]
    cx = np.add.reduceat(inner_x, starts[ok]) / width
    cy = np.add.reduceat(inner_y, starts[ok]) / width
    return [float(x[0]), *cx.tolist(), float(x[-1])], [float(y[0]), *cy.tolist(), float(y[-1])]


@dataclass
class RunState:
    """Everything the Monitor shows, derived from events only (so `attach` sees the same)."""

    run_dir: Path
    started: RunStarted | None = None
    last_step: Step | None = None
    last_epoch: EpochEnd | None = None
    final: Finished | Failed | None = None
    tests: dict[str, Evaluated] = field(default_factory=dict)
    checkpoints: int = 0
    last_checkpoint: str | None = None
    step_loss: Series = field(default_factory=Series)  # running mean within each epoch
    step_top1: Series = field(default_factory=Series)
    lr: Series = field(default_factory=Series)
    train_loss: Series = field(default_factory=Series)  # per epoch, x = epoch
    val_loss: Series = field(default_factory=Series)
    train_top1: Series = field(default_factory=Series)
    val_top1: Series = field(default_factory=Series)
    last_t: float = 0.0
    bad_steps: int = 0  # non-finite losses whose update the engine skipped
    data_wait: float | None = None  # latest step's input-wait fraction (None: not reported)
    memory_mb: float | None = None  # latest peak device memory, MiB (None: CPU or old log)
    resumed_from: str | None = None
    resume_warning: str | None = None
    version: int = 0  # bumped per applied batch: plots redraw only when it moved
    last_event: Event | None = None
    engine_alive: bool = True  # False once the engine is gone (its process exited, lock free)
    phase: Phase | None = None  # the pass under way other than training (None: training)
    eval_s_per_img: float | None = None  # timed on the last validation pass
    system: SystemSample | None = None  # the latest `system` event

    @property
    def run_id(self) -> str:
        return self.started.run_id if self.started else self.run_dir.name

    @property
    def synthetic(self) -> bool:
        return bool(self.started and self.started.synthetic)

    @property
    def status(self) -> RunStatus:
        """`engine.outcome.outcome_of`, the Runs screen's answer: the final event's status, else
        running while the engine is alive, crashed once it is gone without a final word."""
        if self.final is None and self.started is None and self.engine_alive:
            return RunStatus.NOT_STARTED
        return outcome_of(self.last_event, self.engine_alive and self.final is None).status

    def phase_name(self) -> str | None:
        """'training', 'validating', 'testing best', 'TTA 4 views'; None when not running."""
        if self.status is not RunStatus.RUNNING or self.started is None:
            return None
        p = self.phase
        if p is None:
            return "training" if self.last_step is not None else "starting"
        if p.phase == "testing":
            return f"testing {p.detail}".strip()
        if p.phase == "tta":
            return f"TTA {p.passes} view{'s' if p.passes != 1 else ''}"
        return "writing results" if p.phase == "results" else p.phase

    def apply(self, events: list[Event]) -> None:
        for event in events:
            handler = getattr(self, f"_on_{event.type}", None)
            if handler is not None:
                handler(event)
            self.last_t = max(self.last_t, event.t)
            if not isinstance(event, SystemSample):
                self.last_event = event
        if events:
            self.version += 1

    def _on_run_started(self, e: RunStarted) -> None:
        self.started = e

    def _on_resumed(self, e: Any) -> None:
        """Training continues from a checkpoint: history after it is void, the run is live."""
        self.started = e
        self.final = None
        self.resumed_from = f"epoch {e.epoch}, step {e.step}"
        self.resume_warning = getattr(e, "warning", None)
        cut = e.epoch + e.epoch_step / max(e.steps_per_epoch, 1)
        for series, limit in (
            (self.step_loss, cut),
            (self.step_top1, cut),
            (self.lr, cut),
            (self.train_loss, e.epoch),
            (self.val_loss, e.epoch),
            (self.train_top1, e.epoch),
            (self.val_top1, e.epoch),
        ):
            series.keep_first(sum(1 for x in series.xs if x <= limit + 1e-9))
        if self.last_epoch is not None and self.last_epoch.epoch > e.epoch:
            self.last_epoch = None
        self.tests.clear()

    def _on_bad_step(self, e: Any) -> None:
        self.bad_steps += 1

    def _on_phase(self, e: Phase) -> None:
        self.phase = e

    def _on_system(self, e: SystemSample) -> None:
        self.system = e

    def _on_step(self, e: Step) -> None:
        self.last_step = e
        self.phase = None  # training again
        # None (older logs: the fields' defaults; CPU: no memory) keeps the last reported value
        wait, memory = getattr(e, "data_wait", None), getattr(e, "memory_mb", None)
        if wait is not None:
            self.data_wait = wait
        if memory is not None:
            self.memory_mb = memory
        x = e.epoch - 1 + e.epoch_step / max(e.steps_per_epoch, 1)
        self.step_loss.add(x, e.loss, e.step, e.t)
        self.step_top1.add(x, e.top1, e.step, e.t)
        self.lr.add(x, e.lr, e.step, e.t)

    def _on_epoch_end(self, e: EpochEnd) -> None:
        p = self.phase
        if p is not None and p.phase == "validating" and p.images and e.t > p.t:
            self.eval_s_per_img = (e.t - p.t) / p.images
        self.phase = None
        self.last_epoch = e
        step = self._steps_at_end_of(e.epoch)
        self.train_loss.add(e.epoch, e.train_loss, step, e.t)
        self.val_loss.add(e.epoch, e.val_loss, step, e.t)
        self.train_top1.add(e.epoch, e.train_top1, step, e.t)
        self.val_top1.add(e.epoch, e.val_top1, step, e.t)

    def _steps_at_end_of(self, epoch: int) -> int:
        """Optimizer steps done when `epoch` ended: from its last step event when there was one
        (exact after a resume with another batch size), else epochs x steps per epoch."""
        s = self.last_step
        if s is not None and s.epoch == epoch:
            return s.step + s.steps_per_epoch - s.epoch_step
        spe = (
            s.steps_per_epoch
            if s is not None
            else self.started.steps_per_epoch
            if self.started
            else 0
        )
        return epoch * spe

    def _on_checkpoint(self, e: Any) -> None:
        self.checkpoints += 1
        self.last_checkpoint = f"{e.kind} (epoch {e.epoch})"

    def _on_evaluated(self, e: Evaluated) -> None:
        self.tests[e.checkpoint] = e

    def _on_finished(self, e: Finished) -> None:
        self.final, self.phase = e, None

    def _on_failed(self, e: Failed) -> None:
        self.final, self.phase = e, None

    # ------------------------------------------------------------- derived numbers

    def progress(self) -> tuple[int, int, int, int]:
        """(epochs done, epochs, steps done in this epoch, steps per epoch)."""
        epochs = self.started.epochs if self.started else 0
        done = self.last_epoch.epoch if self.last_epoch else 0
        spe = self.started.steps_per_epoch if self.started else 0
        step = 0
        if self.last_step is not None and self.last_step.epoch > done:
            step = self.last_step.epoch_step
            spe = self.last_step.steps_per_epoch
        elif isinstance(self.final, Finished) or done:
            step = spe if done == epochs or self.final else 0
        return done, epochs, step, spe

    def img_per_s(self) -> float | None:
        if self.last_step is not None and (
            self.last_epoch is None or self.last_step.t >= self.last_epoch.t
        ):
            return self.last_step.img_per_s
        return self.last_epoch.img_per_s if self.last_epoch else None

    def elapsed(self, now: float | None = None) -> float | None:
        if self.started is None:
            return None
        end = self.final.t if self.final is not None else (now or time.time())
        return max(0.0, end - self.started.t)

    def eta_s(self, now: float | None = None) -> float | None:
        """Time left (s): training, from the step rate so far, plus the evaluation still to come
        (`eval_left_s`); None before the first step, or once the run is not running."""
        if self.status is not RunStatus.RUNNING:
            return None
        s = self.last_step
        if s is None or self.started is None or s.step == 0:
            train = self.last_epoch.eta_s if self.last_epoch else None
        else:
            per_step = (s.t - self.started.t) / s.step
            train = per_step * max(s.total_steps - s.step, 0)
        if train is None:
            return None
        return train + (self.eval_left_s(now) or 0.0)

    def _eval_rate(self) -> float | None:
        """Seconds per image of an evaluation pass: timed on validation, else guessed from the
        training throughput."""
        if self.eval_s_per_img is not None:
            return self.eval_s_per_img
        ips = self.img_per_s()
        return 1.0 / (EVAL_SPEEDUP * ips) if ips else None

    def _eval_plan(self) -> tuple[bool, int]:
        """(the run has a test pass, TTA's distinct views) from the run's config."""
        cfg = self.started.config if self.started else {}
        ev = cfg.get("eval") if isinstance(cfg.get("eval"), dict) else {}
        assert isinstance(ev, dict)
        tta = ev.get("tta") or []
        return bool(ev.get("test", True)), len(set(map(str, tta))) if isinstance(tta, list) else 0

    def eval_left_s(self, now: float | None = None) -> float | None:
        """Evaluation time still to come (s): the pass under way, then the test passes (last
        and best checkpoints) and TTA (its views), each costed at the validation pass rate."""
        rate, st = self._eval_rate(), self.started
        if rate is None or st is None:
            return None
        test, views = self._eval_plan()
        now = now or time.time()
        p = self.phase
        # forward passes over the test set still to start: last, best (unless the best epoch
        # is the last one: one pass serves both), TTA's views
        e = self.last_epoch
        best = 0.0 if e is not None and e.best_epoch in (None, e.epoch) else 1.0
        plan = [1.0, best, float(views)] if test else []
        if p is not None and p.phase == "testing":
            plan = [best, float(views)] if p.detail == "last" else [float(views)]
        elif p is not None and p.phase == "results":
            plan = [float(views)]
        elif p is not None and p.phase == "tta":
            plan = []
        left = sum(plan) * st.test_size * rate
        if p is not None:  # the pass under way: its estimate less the time it has run
            left += max(p.images * p.passes * rate - max(now - p.t, 0.0), 0.0)
        if p is None and self.last_step is not None:
            epochs_left = max(st.epochs - (self.last_epoch.epoch if self.last_epoch else 0), 0)
            left += epochs_left * st.val_size * rate * (0.0 if self.eval_s_per_img else 1.0)
        return left

    def phase_share(self, now: float | None = None) -> float | None:
        """How far the evaluation pass under way is (0..0.99), from its time so far and its
        estimate; None while training, or for a pass without images (writing results)."""
        p, rate = self.phase, self._eval_rate()
        if p is None or rate is None or not p.images:
            return None
        elapsed = self.phase_elapsed_s(now) or 0.0
        return min(elapsed / (p.images * p.passes * rate), 0.99)

    def phase_elapsed_s(self, now: float | None = None) -> float | None:
        if self.phase is None:
            return None
        return max((now or time.time()) - self.phase.t, 0.0)

    def best(self) -> tuple[float | None, int | None]:
        if isinstance(self.final, Finished):
            summary = RunSummary.from_dict(self.final.summary)
            return summary.best_val_top1, summary.best_epoch
        if self.last_epoch is None:
            return None, None
        return self.last_epoch.best_val_top1, self.last_epoch.best_epoch

    def traceback_path(self) -> str | None:
        return self.final.traceback_path if isinstance(self.final, Failed) else None
