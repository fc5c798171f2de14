"""A sweep's result table: runs grouped by recipe, mean ± spread over seeds (torch-free).

Statistics, in one place so every rendering says the same thing:
- the test numbers are those of the best-on-validation checkpoint (summary.json's `test_top1`,
  `test_top5`; never the last epoch's `test_top1_last`);
- `±` after a mean is the sample standard deviation over seeds (ddof = 1, as statistics.stdev);
  with one finished run there is no spread and none is shown;
- the change against the first row (`compare`, statistics from `tui.orchestration.stats`): when
  both rows finished the same seeds, the paired t test on the per-seed differences (runs of one
  seed share the data order and augmentation draws); otherwise Welch's unpaired t. Each shows the
  mean difference, `±` its standard error and a 95 % t interval, and the table says which test;
  the standard error needs two seeds (paired) or two runs in each row (Welch).
Only runs whose status is `done` and that have test numbers enter a row's statistics; the
`runs` column says how many did of how many planned, and why the others did not (`stopped`: its
remaining seeds were skipped by `--stop-losers`, see tui.orchestration.sweep.stop_losers).
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.table import Table

from engine.outcome import RunSummary
from tui.fmt import duration, pct
from tui.orchestration.stats import Difference, paired_difference, welch_difference

STATS_NOTE = (
    "test numbers: the best-on-validation checkpoint; mean ± sample std (ddof=1) over seeds; "
    "Δ top-1: row minus row 1 in pp, ± its standard error, and a 95 % t interval: paired t on "
    "the per-seed differences when both rows finished the same seeds (paired), else Welch t"
)
STOPPED_NOTE = (
    "stopped: the row's remaining seeds were skipped by --stop-losers (its interval against the "
    "best row lay below 0; Bonferroni over the planned looks and rows)"
)


@dataclass(frozen=True)
class RunResult:
    """One planned run of a sweep: where it stands and, once it ran, its summary."""

    recipe: str
    seed: int
    run_id: str | None
    status: str  # a RunStatus (engine.outcome), or pending before the run has a folder
    summary: RunSummary | None = None
    preset: str = ""


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation of n values (std None below two values)."""

    n: int
    mean: float | None
    std: float | None
    values: tuple[float, ...] = ()

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        n = len(values)
        if n == 0:
            return cls(0, None, None)
        mean = math.fsum(values) / n
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
        return cls(n, mean, std, tuple(values))


def compare(
    row: Mapping[int, float], ref: Mapping[int, float], confidence: float = 0.95
) -> Difference | None:
    """Row minus ref, each `seed -> test top-1`: the paired t test when both finished the same
    seeds, else Welch's; None when either has no result."""
    if not row or not ref:
        return None
    if row.keys() == ref.keys():
        seeds = sorted(row)
        return paired_difference([ref[s] for s in seeds], [row[s] for s in seeds], confidence)
    return welch_difference(list(ref.values()), list(row.values()), confidence)


@dataclass
class RecipeRow:
    index: int  # 1-based position in the sweep
    recipe: str
    preset: str
    planned: int
    statuses: Counter[str]
    top1: Stat
    top5: Stat
    best_epoch: Stat
    best_val_top1: Stat
    wall_s: Stat
    img_per_s: Stat
    tta_top1: Stat
    top1_by_seed: dict[int, float] = field(default_factory=dict)
    delta: Difference | None = None  # against row 1 (`compare`)
    stopped: str | None = None  # why --stop-losers skipped its remaining seeds
    run_ids: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)  # of the runs in the statistics

    @property
    def done(self) -> int:
        return self.top1.n

    def runs_text(self) -> str:
        others = {s: c for s, c in self.statuses.items() if s != "done"}
        extra = ", ".join(f"{c} {s}" for s, c in sorted(others.items()))
        return f"{self.done}/{self.planned}" + (f" ({extra})" if extra else "")


@dataclass
class SweepTable:
    title: str
    rows: list[RecipeRow]
    synthetic: bool  # any run on the synthetic set: numbers shown are marked SYNTHETIC

    @property
    def has_tta(self) -> bool:
        return any(r.tta_top1.n for r in self.rows)

    @property
    def note(self) -> str:
        """The legend under the table."""
        stopped = any(r.stopped for r in self.rows)
        return STATS_NOTE + (f"; {STOPPED_NOTE}" if stopped else "")


def _numbers(results: list[RunResult], key: str) -> list[float]:
    """The finite numbers at `key` (dotted into the TTA record: `tta.top1`) of the summaries."""
    out = []
    for r in results:
        first, _, rest = key.partition(".")
        value: Any = getattr(r.summary, first, None)
        if rest:
            value = value.get(rest) if isinstance(value, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out.append(float(value))
    return out


def build_table(
    title: str, results: Sequence[RunResult], stopped: Mapping[str, str] | None = None
) -> SweepTable:
    """Group results by recipe (first appearance order) into rows with their statistics;
    `stopped`: recipe -> why --stop-losers skipped its remaining seeds."""
    by_recipe: dict[str, list[RunResult]] = {}
    for r in results:
        by_recipe.setdefault(r.recipe, []).append(r)
    rows = []
    for i, (recipe, runs) in enumerate(by_recipe.items(), 1):
        counted = [
            r for r in runs if r.status == "done" and r.summary and r.summary.test_top1 is not None
        ]
        statuses = Counter("done" if r in counted else _why_not(r) for r in runs)
        rows.append(
            RecipeRow(
                index=i,
                recipe=recipe,
                preset=runs[0].preset,
                planned=len(runs),
                statuses=statuses,
                top1=Stat.of(_numbers(counted, "test_top1")),
                top5=Stat.of(_numbers(counted, "test_top5")),
                best_epoch=Stat.of(_numbers(counted, "best_epoch")),
                best_val_top1=Stat.of(_numbers(counted, "best_val_top1")),
                wall_s=Stat.of(_numbers(counted, "wall_s")),
                img_per_s=Stat.of(_numbers(counted, "img_per_s")),
                tta_top1=Stat.of(_numbers(counted, "tta.top1")),
                top1_by_seed=top1_by_seed(counted),
                stopped=(stopped or {}).get(recipe),
                run_ids=[r.run_id for r in counted if r.run_id],
                seeds=[r.seed for r in counted],
            )
        )
    if rows:
        for row in rows[1:]:
            row.delta = compare(row.top1_by_seed, rows[0].top1_by_seed)
    synthetic = any(r.summary is not None and r.summary.synthetic for r in results)
    return SweepTable(title, rows, synthetic)


def top1_by_seed(results: Sequence[RunResult]) -> dict[int, float]:
    """seed -> test top-1 of the runs that have a finite one."""
    out = {}
    for r in results:
        value = r.summary.test_top1 if r.summary else None
        if isinstance(value, int | float) and math.isfinite(value):
            out[r.seed] = float(value)
    return out


def _why_not(r: RunResult) -> str:
    if r.status == "done":  # finished, but without test numbers (eval.test: false)
        return "no test"
    return r.status


# --------------------------------------------------------------------------- formatting


def mean_std_text(stat: Stat) -> str:
    """`75.12 ± 0.34` (percent), `75.12` for one run, `-` for none."""
    if stat.mean is None:
        return "-"
    text = pct(stat.mean, unit="")
    return text if stat.std is None else f"{text} ± {pct(stat.std, unit='')}"


def delta_text(row: RecipeRow) -> str:
    """`+1.23 ± 0.45` (pp): the mean difference against row 1 and its standard error."""
    if row.index == 1:
        return "ref"
    d = row.delta
    if d is None:
        return "-"
    text = pct(d.mean, sign=True, unit="")
    return text if d.se is None else f"{text} ± {pct(d.se, unit='')}"


def interval_text(row: RecipeRow) -> str:
    """`-0.10 to +2.36` (pp): the 95 % t interval of the difference."""
    d = row.delta
    if d is None or d.low is None or d.high is None:
        return "-"
    return f"{pct(d.low, sign=True, unit='')} to {pct(d.high, sign=True, unit='')}"


def method_text(row: RecipeRow) -> str:
    """Which test made the difference's interval: `paired t, n seeds` or `Welch t`."""
    d = row.delta
    if d is None:
        return "-"
    if d.paired:
        return f"paired t, {d.n_a} seed{'s' if d.n_a != 1 else ''}"
    return "Welch t"


def epoch_text(stat: Stat) -> str:
    if stat.mean is None:
        return "-"
    lo, hi = int(min(stat.values)), int(max(stat.values))
    return str(lo) if lo == hi else f"{stat.mean:.1f} ({lo}-{hi})"


def rate_text(stat: Stat) -> str:
    return "-" if stat.mean is None else f"{stat.mean:,.0f}"


def delta_cell(row: RecipeRow) -> str:
    """The terminal's one cell for the difference: `+1.23 ± 0.45 paired` over its interval."""
    text = delta_text(row)
    d = row.delta
    if d is None or row.index == 1:
        return text
    method = "paired" if d.paired else "Welch"
    interval = interval_text(row)
    return f"{text} {method}" + ("" if interval == "-" else f"\n{interval}")


def columns(table: SweepTable, compact: bool = False) -> list[tuple[str, Any]]:
    """(header, row -> text) for every displayed column, in order. `compact` (the terminal):
    the difference, its test and its interval in one two-line cell."""
    delta: list[tuple[str, Any]] = [
        ("Δ top-1 (pp)", delta_text),
        ("95 % CI (pp)", interval_text),
        ("Δ test", method_text),
    ]
    if compact:
        delta = [("Δ top-1 (pp) ± se\n95 % CI", delta_cell)]
    cols: list[tuple[str, Any]] = [
        ("#", lambda r: str(r.index)),
        ("recipe", lambda r: r.recipe),
        ("runs", RecipeRow.runs_text),
        ("test top-1 %", lambda r: mean_std_text(r.top1)),
        *delta,
        ("test top-5 %", lambda r: mean_std_text(r.top5)),
    ]
    if table.has_tta:
        cols.append(("TTA top-1 %", lambda r: mean_std_text(r.tta_top1)))
    cols += [
        ("best val epoch", lambda r: epoch_text(r.best_epoch)),
        ("wall time", lambda r: duration(r.wall_s.mean)),
        ("img/s", lambda r: rate_text(r.img_per_s)),
    ]
    return cols


def heading(table: SweepTable) -> str:
    return table.title + ("  [SYNTHETIC data]" if table.synthetic else "")


_UNBROKEN = {"runs", "test top-1 %", "Δ top-1 (pp) ± se\n95 % CI", "test top-5 %", "TTA top-1 %"}


def to_rich(table: SweepTable) -> Table:
    cols = columns(table, compact=True)
    out = Table(
        title=heading(table),
        title_justify="left",
        caption=table.note,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name, _ in cols:  # a mean ± spread is never cut in two; a label or header may be
        out.add_column(name, no_wrap=name in _UNBROKEN, overflow="fold")
    for row in table.rows:
        out.add_row(*(fmt(row) for _, fmt in cols))
    return out


def to_markdown(table: SweepTable) -> str:
    cols = columns(table)

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [
        f"# {heading(table)}",
        "",
        line([name for name, _ in cols]),
        line(["---"] * len(cols)),
        *(line([fmt(row) for _, fmt in cols]) for row in table.rows),
        "",
        table.note + ".",
        *(f"- {row.recipe}: {row.stopped}" for row in table.rows if row.stopped),
        "",
    ]
    return "\n".join(lines)


CSV_FIELDS = [
    "index",
    "recipe",
    "preset",
    "runs_done",
    "runs_planned",
    "statuses",
    "test_top1_mean",
    "test_top1_std",
    "delta_top1",
    "delta_top1_se",
    "delta_top1_low",
    "delta_top1_high",
    "delta_top1_df",
    "delta_top1_p",
    "delta_test",
    "test_top5_mean",
    "test_top5_std",
    "tta_top1_mean",
    "tta_top1_std",
    "best_val_top1_mean",
    "best_epoch_mean",
    "wall_s_mean",
    "img_per_s_mean",
    "synthetic",
    "seeds",
    "test_top1_values",
    "run_ids",
    "stopped",
]


def to_csv(table: SweepTable) -> str:
    """One line per recipe; accuracies as fractions (as in summary.json), empty when undefined."""

    def num(x: float | None) -> str:
        return "" if x is None else repr(x)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in table.rows:
        d = r.delta
        writer.writerow(
            {
                "index": r.index,
                "recipe": r.recipe,
                "preset": r.preset,
                "runs_done": r.done,
                "runs_planned": r.planned,
                "statuses": ";".join(f"{s}={c}" for s, c in sorted(r.statuses.items())),
                "test_top1_mean": num(r.top1.mean),
                "test_top1_std": num(r.top1.std),
                "delta_top1": num(d.mean if d else None),
                "delta_top1_se": num(d.se if d else None),
                "delta_top1_low": num(d.low if d else None),
                "delta_top1_high": num(d.high if d else None),
                "delta_top1_df": num(d.df if d else None),
                "delta_top1_p": num(d.p if d else None),
                "delta_test": d.method if d else "",
                "test_top5_mean": num(r.top5.mean),
                "test_top5_std": num(r.top5.std),
                "tta_top1_mean": num(r.tta_top1.mean),
                "tta_top1_std": num(r.tta_top1.std),
                "best_val_top1_mean": num(r.best_val_top1.mean),
                "best_epoch_mean": num(r.best_epoch.mean),
                "wall_s_mean": num(r.wall_s.mean),
                "img_per_s_mean": num(r.img_per_s.mean),
                "synthetic": str(table.synthetic).lower(),
                "seeds": ";".join(str(s) for s in r.seeds),
                "test_top1_values": ";".join(repr(v) for v in r.top1.values),
                "run_ids": ";".join(r.run_ids),
                "stopped": r.stopped or "",
            }
        )
    return buf.getvalue()
