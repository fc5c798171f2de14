"""`cifar-tui sweep FILE --plan-seeds --effect PP`: how many seeds each row needs to detect a
difference of PP percentage points in test top-1 against row 1, before anything runs
(torch-free; reads the registry, writes nothing).

The spread comes from earlier `done` runs of the same recipes in the registry: the same resolved
config, the seed and the keys that only say where a run executes aside (`recipe_key`).
- when the earlier runs of a row and of row 1 share two seeds or more: the standard deviation of
  their per-seed differences, for a paired t test;
- else the pooled within-row standard deviation of the two rows (those with two seeds or more),
  for an unpaired t test;
- else `DEFAULT_SD_PP`, unpaired, and the output says which rows used it.
Seeds needed: the fewest per row whose two-sided t test (alpha 0.05) has 80 % power
(`stats.seeds_needed`). Row 1 is compared with every other row, so it needs the most of them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from engine.config import WHERE_KEYS, config_to_dict, flatten_config
from tui.orchestration.stats import seeds_needed
from tui.orchestration.sweep.plan import Plan

POWER = 0.8
ALPHA = 0.05
DEFAULT_SD_PP = 0.3
DEFAULT_WHY = (
    f"{DEFAULT_SD_PP} pp, a typical seed-to-seed standard deviation of CIFAR-100 test top-1 for "
    "one full-length recipe (short runs and subsets vary more: run two or three seeds first and "
    "plan again)"
)


def recipe_key(config: dict[str, Any]) -> str:
    """What makes two runs the same recipe: the resolved config (`config_to_dict` form) as
    dotted keys, without the seed and the keys that only say where a run executes."""
    flat = flatten_config(json.loads(json.dumps(config)))
    kept = {k: v for k, v in flat.items() if k != "train.seed" and k not in WHERE_KEYS}
    return json.dumps(kept, sort_keys=True)


def earlier_results(
    tested: Iterable[tuple[str, dict[str, Any], float]],
) -> dict[str, dict[int, list[float]]]:
    """recipe key -> seed -> the test top-1 of each earlier run (registry `tested_runs`)."""
    out: dict[str, dict[int, list[float]]] = {}
    for _run_id, config, top1 in tested:
        seed = (
            config.get("train", {}).get("seed") if isinstance(config.get("train"), dict) else None
        )
        if not isinstance(seed, int) or not math.isfinite(top1):
            continue
        out.setdefault(recipe_key(config), {}).setdefault(seed, []).append(top1)
    return out


@dataclass(frozen=True)
class RowPlan:
    index: int  # 1-based row of the sweep
    recipe: str
    earlier: dict[int, float]  # seed -> mean test top-1 of its earlier runs (fractions)
    sd_pp: float | None  # the spread used (pp); None for row 1
    source: str  # "paired", "within rows", "default" or "ref"
    needed: int | None  # seeds per row; None: more than `most`


@dataclass(frozen=True)
class SeedPlan:
    effect_pp: float
    planned: int  # seeds the sweep file lists
    rows: list[RowPlan]
    most: int

    @property
    def default_rows(self) -> list[int]:
        return [r.index for r in self.rows if r.source == "default"]


def _pooled_sd(groups: Sequence[Sequence[float]]) -> float | None:
    """sqrt(sum (n_k - 1) s_k² / sum (n_k - 1)) over the groups of two values or more."""
    usable = [g for g in groups if len(g) >= 2]
    if not usable:
        return None
    dof = sum(len(g) - 1 for g in usable)
    return math.sqrt(math.fsum((len(g) - 1) * statistics.variance(g) for g in usable) / dof)


def row_spread(row: dict[int, float], ref: dict[int, float]) -> tuple[float | None, str]:
    """(sd in fractions, "paired" | "within rows") from two rows' earlier seed -> top-1, or
    (None, "default") when they say nothing about the spread."""
    shared = sorted(row.keys() & ref.keys())
    if len(shared) >= 2:
        return statistics.stdev([row[s] - ref[s] for s in shared]), "paired"
    pooled = _pooled_sd([list(row.values()), list(ref.values())])
    return (pooled, "within rows") if pooled is not None else (None, "default")


def plan_seeds(
    plan: Plan,
    tested: Iterable[tuple[str, dict[str, Any], float]],
    effect_pp: float,
    most: int = 200,
) -> SeedPlan:
    """Seeds per row to detect `effect_pp` against row 1 at `POWER` (two-sided, `ALPHA`)."""
    earlier = earlier_results(tested)
    keys: dict[str, str] = {}
    for run in plan.runs:  # one resolved config per recipe (its first seed's)
        keys.setdefault(run.recipe.label, recipe_key(config_to_dict(run.config)))
    seen = [
        {s: math.fsum(v) / len(v) for s, v in earlier.get(keys[r.label], {}).items()}
        for r in plan.spec.recipes
    ]
    rows: list[RowPlan] = []
    for i, recipe in enumerate(plan.spec.recipes[1:], 2):
        sd, source = row_spread(seen[i - 1], seen[0])
        sd_pp = DEFAULT_SD_PP if sd is None else 100.0 * sd
        paired = source == "paired"
        needed = seeds_needed(effect_pp, sd_pp, POWER, ALPHA, paired=paired, most=most)
        rows.append(RowPlan(i, recipe.label, seen[i - 1], sd_pp, source, needed))
    if rows:
        counts = [r.needed for r in rows]
        ref_needed = None if None in counts else max(c for c in counts if c is not None)
    else:
        ref_needed = None
    first = plan.spec.recipes[0].label
    rows.insert(0, RowPlan(1, first, seen[0], None, "ref", ref_needed))
    return SeedPlan(effect_pp, len(plan.spec.seeds), rows, most)


def _seeds_text(earlier: dict[int, float]) -> str:
    if not earlier:
        return "none"
    seeds = ", ".join(map(str, sorted(earlier)))
    return f"{len(earlier)} (seed{'s' if len(earlier) > 1 else ''} {seeds})"


def seed_plan_table(result: SeedPlan, title: str) -> Table:
    """The plan as a table: per row, earlier runs, the spread and where it came from, seeds."""
    table = Table(
        "#",
        "recipe",
        "earlier runs",
        "spread (pp)",
        "from",
        "test",
        "seeds needed",
        title=(
            f"{title}: seeds per row to detect {result.effect_pp:g} pp of test top-1 against row "
            f"1 ({100 * POWER:.0f} % power, two-sided t test, alpha {ALPHA}); the file plans "
            f"{result.planned}"
        ),
        title_justify="left",
        caption=_caption(result),
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    tests = {"paired": "paired t", "within rows": "unpaired t", "default": "unpaired t"}
    for row in result.rows:
        needed = f"> {result.most}" if row.needed is None else str(row.needed)
        if row.source == "ref":
            needed = f"{needed} (the most of any row)" if len(result.rows) > 1 else "-"
        table.add_row(
            str(row.index),
            row.recipe,
            _seeds_text(row.earlier),
            "-" if row.sd_pp is None else f"{row.sd_pp:.2f}",
            {"ref": "ref", "paired": "paired with row 1"}.get(row.source, row.source),
            tests.get(row.source, "-"),
            needed,
        )
    return table


def _caption(result: SeedPlan) -> str:
    lines = [
        "spread: from earlier `done` runs in the registry with the same config but the seed; "
        "paired: sd of the per-seed differences from row 1; within rows: pooled sd of the two "
        "rows' seeds"
    ]
    if len(result.rows) == 1:
        lines.append("one recipe: nothing to compare with row 1")
    if result.default_rows:
        rows = ", ".join(map(str, result.default_rows))
        plural = "s" if len(result.default_rows) > 1 else ""
        lines.append(
            f"row{plural} {rows}: too few earlier runs to measure a spread (two seeds of the row "
            f"or of row 1); the default is {DEFAULT_WHY}"
        )
    lines.append("nothing was run or written")
    return "\n".join(lines)
