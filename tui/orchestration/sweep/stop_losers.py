"""`cifar-tui sweep FILE --stop-losers`: skip a recipe's remaining seeds once it is clearly worse
than the best row (torch-free).

The rule, a Bonferroni bound over every test the sweep can make:
- a *look* happens when a round of seeds closes (every planned run of some seed has ended or
  been skipped; runs go seed-major, so a round is one run of each recipe). A sweep of K seeds
  has at most K looks: each needs a round not examined before;
- at a look, the best row is the one with the highest mean test top-1. Every other row that is
  still running gets the difference against it (`results_table.compare`: paired t when the two
  rows finished the same seeds, else Welch t) with a two-sided interval at confidence
  1 - alpha / (K (R - 1)), alpha = 0.05, R = recipes;
- a row whose whole interval lies below 0 is stopped: its runs not started yet are skipped.
  One seed (or a zero spread) gives no interval, so the first look of a sweep never stops a row.

At most K looks, each comparing a row with one of R - 1 others: by the union bound, a recipe
that is in truth at least as good as every other is stopped with probability at most alpha / 2
however the best row is picked at each look. Decisions are recorded in the sweep state
(`state.SweepState.record_look`), so a later run of the sweep keeps them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tui.fmt import pct
from tui.orchestration.exports.results_table import RunResult, build_table, compare
from tui.orchestration.stats import Difference

ALPHA = 0.05
NO_SPREAD = 1e-9  # a standard error below this (top-1 as a fraction) is rounding, not a spread


def look_confidence(seeds_planned: int, recipes: int) -> float:
    """The interval's confidence at each look: 1 - alpha / (looks x rows compared)."""
    return 1.0 - ALPHA / (max(1, seeds_planned) * max(1, recipes - 1))


@dataclass(frozen=True)
class Stop:
    """A row found below the best one at a look."""

    recipe: str
    best: str
    difference: Difference  # recipe minus best, fractions of top-1
    look: int  # 1-based
    looks: int  # the most a sweep can have: its seeds

    def reason(self) -> str:
        d = self.difference
        assert d.low is not None and d.high is not None  # a stop always has an interval
        pairs = f"{d.n_a} seeds" if d.paired else f"{d.n_b} and {d.n_a} runs"
        return (
            f"look {self.look} of {self.looks}: Δ top-1 {pct(d.mean, sign=True, unit='')} pp "
            f"against {self.best}, {100 * d.confidence:.2f} % interval "
            f"{pct(d.low, sign=True, unit='')} to {pct(d.high, sign=True, unit='')} pp "
            f"({d.method}, {pairs}) lies below 0"
        )


def find_losers(
    results: Sequence[RunResult],
    confidence: float,
    stopped: set[str],
    look: int,
    looks: int,
) -> list[Stop]:
    """The rows (not in `stopped`) whose interval against the best row lies below 0."""
    rows = [r for r in build_table("", results).rows if r.top1.mean is not None]
    if len(rows) < 2:
        return []
    best = max(rows, key=lambda r: r.top1.mean or 0.0)  # the first of equal means
    out = []
    for row in rows:
        if row is best or row.recipe in stopped:
            continue
        d = compare(row.top1_by_seed, best.top1_by_seed, confidence)
        if d is None or d.high is None or d.se is None or d.se < NO_SPREAD:
            continue  # no interval: one seed, or no spread to measure one
        if d.high < 0.0:
            out.append(Stop(row.recipe, best.recipe, d, look, looks))
    return out
