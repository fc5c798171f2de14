"""`cifar-tui runs compare A B [C ...]`: the comparison's tables on stdout (tui.orchestration
.compare_report), plain text without a terminal or under NO_COLOR."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from engine.errors import BadInputError
from engine.runs import RunRegistry
from tui.orchestration.compare import form_arms, read_confusions
from tui.orchestration.compare_report import curve_table, metric_names, report


def check_metric(metric: str | None) -> None:
    """BadInputError naming the nearest metric for an unknown one."""
    names = metric_names()
    if metric is None or metric in names:
        return
    near = difflib.get_close_matches(metric, names, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]}?" if near else ""
    raise BadInputError(f"--metric {metric!r}: choose one of {', '.join(names)}{hint}")


def compare_command(
    root: Path, refs: Sequence[str], top: int | None, metric: str | None, console: Console
) -> None:
    """Print the comparison; BadInputError (nothing printed) for bad input."""
    check_metric(metric)
    arms = form_arms(root, refs)
    confusions = read_confusions(arms)
    shown = report(arms, confusions, top)  # every table built before the first is printed
    if metric is not None:
        shown.append(curve_table(RunRegistry(root), arms, metric))
    for renderable in shown:
        console.print(renderable)
        console.print()
