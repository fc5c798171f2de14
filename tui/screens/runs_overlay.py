"""The Runs screen's overlay: the chosen runs' per-epoch curves of one metric (from the
registry's epoch rows, which follow each `epoch_end` event), labelled for the legend."""

from __future__ import annotations

from pathlib import Path

from engine.runs import RunRegistry, RunRow, read_run_meta
from tui.widgets.plots import Line

# registry epoch column, title, whether values are fractions shown as %
METRICS = (
    ("val_top1", "val top-1 %", True),
    ("val_loss", "val loss", False),
    ("train_loss", "train loss", False),
    ("train_top1", "train top-1 %", True),
    ("lr", "learning rate", False),
)


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
    synthetic = [s for _, s in found]
    if any(synthetic) and not all(synthetic):
        for line, syn in found:
            if syn:
                line.label += " SYNTHETIC"
    title += " by epoch" + (" (SYNTHETIC data)" if synthetic and all(synthetic) else "")
    return [line for line, _ in found], title, percent
