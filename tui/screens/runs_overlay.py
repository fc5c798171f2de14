"""The Runs screen's overlay: the chosen runs' per-epoch curves of one metric (from the
registry's epoch rows, which follow each `epoch_end` event), labelled for the legend. The
Compare screen draws the same metrics from the runs' event logs (`event_overlay`), whose points
also carry the optimizer step and the wall time, for the plots' other x axes."""

from __future__ import annotations

from pathlib import Path

from engine.events import EVENTS_FILE, read_events
from engine.runs import RunRegistry, RunRow, read_run_meta
from tui.orchestration.runs_view import METRICS
from tui.orchestration.runstate import RunState
from tui.widgets.plots import Line

__all__ = ["METRICS", "event_overlay", "overlay", "sweep_label"]


def sweep_label(root: Path, run_id: str, default: str) -> str:
    """A sweep's run by its recipe and seed (run.json), else `default`."""
    try:
        meta = read_run_meta(root / run_id)
    except (OSError, ValueError):
        return default
    return f"{meta.get('recipe', default)} s{meta.get('seed', '?')}"


def overlay(
    registry: RunRegistry, ids: list[str], rows: list[RunRow], metric: int
) -> tuple[list[Line], str, bool]:
    """(lines, title, percent) for runs `ids`. SYNTHETIC is said in the title when every line
    is synthetic, else on each synthetic line's label (a real CIFAR-100 run is among them).
    Raises the registry's BadInputError when it cannot be read."""
    column, title, percent = METRICS[metric]
    by_id = {r.run_id: r for r in rows}
    found = []
    for run_id in ids:
        epochs = registry.epochs(run_id)
        row = by_id.get(run_id)
        xs = [e["epoch"] for e in epochs if e.get(column) is not None]
        ys = [e[column] for e in epochs if e.get(column) is not None]
        label = run_id if row is None else f"{row.preset} {run_id[-4:]}"
        if row is not None and row.sweep_id:
            label = sweep_label(registry.path.parent, run_id, label)
        found.append((Line(label, xs, ys), bool(row and row.dataset == "synthetic")))
    return _tag_synthetic(found), title + " by epoch" + _synthetic_title(found), percent


def _synthetic_title(found: list[tuple[Line, bool]]) -> str:
    return " (SYNTHETIC data)" if found and all(s for _, s in found) else ""


def _tag_synthetic(found: list[tuple[Line, bool]]) -> list[Line]:
    """The lines, a synthetic one's label tagged when real runs are among them."""
    synthetic = [s for _, s in found]
    if any(synthetic) and not all(synthetic):
        for line, syn in found:
            if syn:
                line.label += " SYNTHETIC"
    return [line for line, _ in found]


def event_overlay(
    root: Path, labelled: list[tuple[str, str]], metric: int
) -> tuple[list[Line], str, bool]:
    """(lines, title, percent) for the runs (legend label, run id) from their event logs, each
    point with its epoch, optimizer step and wall time (the `x` key aligns the runs by any)."""
    column, title, percent = METRICS[metric]
    found = []
    for label, run_id in labelled:
        state = RunState(root / run_id)
        state.apply(read_events(root / run_id / EVENTS_FILE))
        found.append((Line.of(label, getattr(state, column)), state.synthetic))
    return _tag_synthetic(found), title + _synthetic_title(found), percent
