"""The comparison as rich tables: the runs, the config keys that differ, the recall changes per
class and superclass, the confusions that grew and shrank, a metric by epoch. `cifar-tui runs
compare` prints them; the Compare screen shows the same renderables."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from engine.runs import RunRegistry
from tui.fmt import pct
from tui.orchestration.compare import (
    NO_TEST,
    Arm,
    Change,
    Confusion,
    ConfusionDiff,
    LevelDiff,
    config_diff,
    confusion_diff,
)
from tui.orchestration.runs_view import METRICS

MARK = "*"


def _table(title: str, caption: str | None = None) -> Table:
    return Table(
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        pad_edge=False,
    )


def top1(confusion: Confusion | None) -> float | None:
    """Test top-1 from a confusion matrix (its trace over its sum)."""
    if confusion is None or not confusion.matrix.sum():
        return None
    return float(confusion.matrix.trace() / confusion.matrix.sum())


def short_id(run_id: str) -> str:
    """`20260101-120000-quickstart-a1b2` -> `quickstart-a1b2` (the date is in the runs table)."""
    head, _, rest = run_id.partition("-")
    if len(head) == 8 and head.isdigit() and rest[:6].isdigit() and rest[6:7] == "-":
        return rest[7:] or run_id
    return run_id


def runs_table(arms: Sequence[Arm], confusions: dict[str, Confusion]) -> Table:
    """Each run's short name (A1, B1 ...), id, preset, seed and test top-1 (from eval.npz)."""
    table = _table("runs")
    for column in ("run", "id", "preset", "seed"):
        table.add_column(column, no_wrap=True)
    table.add_column("test top-1", justify="right", no_wrap=True)
    for arm in arms:
        for run in arm.runs:
            seed = "-" if run.seed is None else str(run.seed)
            c = confusions.get(run.run_id)
            table.add_row(arm.run_name(run), run.run_id, run.origin, seed, pct(top1(c)))
    return table


def config_table(arms: Sequence[Arm], confusions: dict[str, Confusion] | None = None) -> Table:
    """The config keys whose values differ, one column per run, under its preset. With
    `confusions` (where no runs table says them): each run's id without its date, and test
    top-1."""
    runs = [r for arm in arms for r in arm.runs]
    diff = config_diff(runs)
    caption = None if diff else "no config key differs between these runs"
    table = _table("config: the keys that differ", caption)
    longest = max((len(k) for k, _ in diff), default=0)
    table.add_column("key", no_wrap=True, min_width=min(max(longest, len("test top-1")), 32))
    for arm in arms:
        for run in arm.runs:
            table.add_column(arm.run_name(run), no_wrap=True, overflow="ellipsis", max_width=28)
    if confusions is not None:
        table.add_row("run", *(short_id(r.run_id) for r in runs), style="dim")
        table.add_row("test top-1", *(pct(top1(confusions.get(r.run_id))) for r in runs))
    table.add_row("preset", *(r.origin for r in runs), style="bold")
    for key, texts in diff:
        table.add_row(key, *texts)
    return table


def _pp(x: float) -> str:
    return "-" if not math.isfinite(x) else f"{100 * x:+.1f}"


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3f}" if x >= 0.001 else "<0.001"


def changes_table(diff: ConfusionDiff, level: LevelDiff, top: int | None) -> Table:
    """Recall of arm a and b and its change (percentage points), largest gain first; `top`: the
    `top` largest gains and losses only (None: every class). With a test: its p, the BH q and
    the mark."""
    tested = diff.method != NO_TEST
    shown: list[Change | None] = list(level.changes)
    if top is not None and len(level.changes) > 2 * top:
        shown = [*level.changes[:top], None, *level.changes[-top:]]
    a, b = diff.a.name, diff.b.name
    noun = "classes" if level.level == "class" else "superclasses"
    caption = None
    if top is not None and len(level.changes) > 2 * top:
        caption = f"the {top} largest gains and losses of {len(level.changes)} {noun} (--top)"
    table = _table(f"recall per {level.level}, {b} − {a}", caption)
    table.add_column(level.level, no_wrap=True)
    table.add_column(f"{a} %", justify="right")
    table.add_column(f"{b} %", justify="right")
    table.add_column("Δ pp", justify="right")
    if tested:
        table.add_column("p", justify="right")
        table.add_column("q (BH)", justify="right")
        table.add_column("", no_wrap=True)
    for c in shown:
        if c is None:
            table.add_row("…", *([""] * (len(table.columns) - 1)))
            continue
        cells = [c.name, pct(c.a, 1, unit=""), pct(c.b, 1, unit=""), _pp(c.delta)]
        if tested:
            cells += [_p(c.p), _p(c.q), MARK if c.marked else ""]
        table.add_row(*cells, style="bold" if c.marked else None)
    return table


def pairs_table(diff: ConfusionDiff, level: LevelDiff) -> Table:
    """The (true, predicted) confusions that grew and shrank most: the share of the true class's
    test images predicted as the other, in a and b."""
    a, b = diff.a.name, diff.b.name
    table = _table(f"confusions (true → predicted), {b} − {a}")
    table.add_column("", no_wrap=True)
    table.add_column(f"true {level.level}", no_wrap=True)
    table.add_column("predicted as", no_wrap=True)
    table.add_column(f"{a} %", justify="right")
    table.add_column(f"{b} %", justify="right")
    table.add_column("Δ pp", justify="right")
    for word, pairs in (("grew", level.grown), ("shrank", level.shrunk)):
        for i, p in enumerate(pairs):
            table.add_row(word if i == 0 else "", p.true, p.pred, pct(p.a, 1, unit=""),
                          pct(p.b, 1, unit=""), _pp(p.delta))  # fmt: skip
    if not level.grown and not level.shrunk:
        table.caption = "no confusion changed"
    return table


def legend(diff: ConfusionDiff) -> Text:
    marked = len(diff.fine.marked), len(diff.coarse.marked)
    text = Text(f"{diff.a.label} vs {diff.b.label}\n", "bold")
    text.append(f"test: {diff.legend}")
    if diff.method != NO_TEST:
        text.append(f"\nmarked: {marked[0]} classes, {marked[1]} superclasses")
    return text


def diff_renderables(diff: ConfusionDiff, top: int | None) -> list[RenderableType]:
    return [
        legend(diff),
        changes_table(diff, diff.fine, top),
        pairs_table(diff, diff.fine),
        changes_table(diff, diff.coarse, None),
        pairs_table(diff, diff.coarse),
    ]


def report(
    arms: Sequence[Arm], confusions: dict[str, Confusion], top: int | None = 10
) -> list[RenderableType]:
    """Everything, each arm after the first compared with the first."""
    out: list[RenderableType] = [runs_table(arms, confusions), config_table(arms)]
    for other in arms[1:]:
        out += diff_renderables(confusion_diff(arms[0], other, confusions, top or 10), top)
    return out


def metric_names() -> list[str]:
    return [m[0] for m in METRICS]


def curve_table(registry: RunRegistry, arms: Sequence[Arm], metric: str) -> Table:
    """`metric` (a registry epoch column, METRICS) by epoch, one column per run."""
    column, title, percent = next(m for m in METRICS if m[0] == metric)
    runs = [(arm.run_name(r), r.run_id) for arm in arms for r in arm.runs]
    values: dict[int, dict[str, float]] = {}
    for name, run_id in runs:
        for e in registry.epochs(run_id):
            if e.get(column) is not None:
                values.setdefault(int(e["epoch"]), {})[name] = float(e[column])
    table = _table(f"{title} by epoch", None if values else "no epochs recorded")
    table.add_column("epoch", justify="right")
    for name, _ in runs:
        table.add_column(name, justify="right")
    for epoch in sorted(values):
        row = values[epoch]
        cells = [
            "-" if n not in row else pct(row[n], 2, unit="") if percent else f"{row[n]:.4g}"
            for n, _ in runs
        ]
        table.add_row(str(epoch), *cells)
    return table
