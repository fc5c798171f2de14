"""Why a run has no test results, read from its folder (torch-free, Textual-free), and the
dashboard's own evaluation of its best checkpoint (`cifar-tui eval` machinery: an engine process
that writes `eval.npz` and a report beside it).

A run is tested at its end, or when it is stopped after an epoch. A run stopped now (SIGTERM,
`t`), killed, or diverged has none: the Results screen says which, and offers to evaluate its
best checkpoint (and to resume it when it can go on).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoint_files import CheckpointError, read_verified
from engine.events import EVENTS_FILE, BadStep, Evaluated, read_events
from engine.outcome import RunStatus, read_outcome

BEST = "best.pt"
REPORT_FILE = "eval_report.json"  # the dashboard's evaluation of best.pt (cifar-tui eval's report)
EVAL_LOG = "eval.log"  # its engine process's output


@dataclass(frozen=True)
class NoResults:
    """What the Results screen says about a run without eval.npz."""

    status: RunStatus
    reason: str  # one or two lines: why there are no test results
    failure: bool  # said in red (diverged, failed, crashed)
    can_evaluate: bool  # best.pt is there and intact
    can_resume: bool


def diverged_reason(events: list[Any]) -> str | None:
    """The `bad_step` that ended a diverged run, in words (None: the log has none)."""
    bad = [e for e in events if isinstance(e, BadStep)]
    if not bad:
        return None
    last = bad[-1]
    return (
        f"diverged: {last.consecutive} non-finite losses in a row, the last {last.loss} at "
        f"step {last.step} (epoch {last.epoch}); {len(bad)} skipped steps in all"
    )


def no_results(run_dir: Path) -> NoResults:
    """Why `run_dir` has no eval.npz, and what can be done about it."""
    outcome = read_outcome(run_dir)
    status = outcome.status
    try:
        events = read_events(Path(run_dir) / EVENTS_FILE)
    except (OSError, ValueError):
        events = []
    tested = any(isinstance(e, Evaluated) and e.split == "test" for e in events)
    failure = status in (RunStatus.DIVERGED, RunStatus.CRASHED) or status.failed
    if status is RunStatus.DIVERGED:
        reason = diverged_reason(events) or "diverged: too many non-finite losses in a row"
        reason += "\nits last good checkpoints are kept; the test pass did not run"
    elif status is RunStatus.RUNNING:
        reason = "still running: its test set is evaluated when it ends or stops after an epoch"
    elif status is RunStatus.CRASHED:
        reason = "the engine died without a final event (killed?): no test pass ran"
    elif status is RunStatus.INTERRUPTED and outcome.summary and outcome.summary.test_top1:
        reason = "stopped after an epoch and tested, but its eval.npz is missing (deleted?)"
    elif status is RunStatus.INTERRUPTED:
        what = "in the test pass" if tested else "before its test pass"
        reason = f"stopped by a signal {what} (stop now / Ctrl-C): no test results were written"
    elif status.failed:
        message = getattr(outcome.final, "message", "")
        reason = f"failed ({status}): {message}" if message else f"failed ({status})"
    elif status is RunStatus.NOT_STARTED:
        reason = "not started: its log holds no event"
    else:
        reason = f"{status}, but its eval.npz is missing (deleted?)"
    return NoResults(
        status,
        reason,
        failure,
        can_evaluate=status is not RunStatus.RUNNING and best_is_intact(run_dir),
        can_resume=status.resumable,
    )


def best_is_intact(run_dir: Path) -> bool:
    try:
        read_verified(Path(run_dir) / BEST)
    except (CheckpointError, OSError):
        return False
    return True


def evaluate_best(
    run_dir: Path,
    views: list[str] | None,
    progress: Callable[[str], None],
    cancelled: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """Evaluate `run_dir`'s best.pt on the test set in an engine process (`views`: TTA views, None
    for a plain evaluation); it writes `eval.npz` (the identity view) and `eval_report.json`.
    `progress` gets a line every half second. Returns the report; raises RuntimeError with the
    engine's last line when it fails."""
    from tui.cli.eval_cmd import start_engine_eval

    run_dir = Path(run_dir)
    out = run_dir / f".{REPORT_FILE}.tmp-{os.getpid()}"
    log = run_dir / EVAL_LOG
    what = f"with TTA ({len(views)} views)" if views else "plain"
    t0 = time.monotonic()
    with log.open("wb") as sink:
        process = start_engine_eval(
            run_dir / BEST, views, out=out, eval_file=run_dir / "eval.npz", output=sink
        )
        while True:
            try:
                code = process.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if cancelled():
                process.terminate()
                process.wait()
                raise RuntimeError("evaluation cancelled")
            progress(f"evaluating best.pt {what} on the test set ... {time.monotonic() - t0:.0f} s")
    if code != 0 or not out.is_file():
        lines = log.read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit code {code}"
        raise RuntimeError(f"the evaluation failed: {last} (log: {log})")
    report: dict[str, Any] = json.loads(out.read_text())
    out.replace(run_dir / REPORT_FILE)  # after eval.npz: a newer report goes with it
    return report


def dashboard_report(run_dir: Path) -> dict[str, Any] | None:
    """The dashboard's evaluation report, when it goes with the run's eval.npz (written after it;
    an engine test pass since then rewrote eval.npz and wins)."""
    report, npz = Path(run_dir) / REPORT_FILE, Path(run_dir) / "eval.npz"
    try:
        if report.stat().st_mtime_ns < npz.stat().st_mtime_ns:
            return None
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
