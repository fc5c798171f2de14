"""`cifar-tui eval RUN --top-losses K`: a finished run's most confidently wrong test images and its
calibration, read from its eval.npz (torch-free, no engine): a table of index, true class,
prediction, confidence and loss, then the reliability table with the ECE; `--json` for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Column, Table

from engine import strict_json
from engine.errors import BadInputError
from engine.runs import RUN_META_FILE, checkpoints_root, find_run
from tui.fmt import pct
from tui.orchestration.calibration_table import reliability_table, reliability_title
from tui.orchestration.error_analysis import DERIVED, NO_PREDICTIONS, top_losses
from tui.orchestration.evaldata import EVAL_FILE, EvalData, EvalDataError, load_eval


def resolve_run(target: str, checkpoints: Path | None = None) -> Path:
    """A run folder, or a run id / unique prefix / `last`; a checkpoint file is refused."""
    path = Path(target)
    if path.suffix == ".pt" or path.is_file():
        raise BadInputError(
            f"--top-losses reads a run's {EVAL_FILE}: give its run id or folder, not {path}"
        )
    if (path / RUN_META_FILE).is_file():
        return path
    return find_run(checkpoints_root(checkpoints), target)


def load_run_eval(run_dir: Path) -> EvalData:
    if not (run_dir / EVAL_FILE).is_file():
        raise BadInputError(f"run {run_dir.name} has no test results: {run_dir / EVAL_FILE}")
    try:
        data = load_eval(run_dir)
    except EvalDataError as exc:
        raise BadInputError(str(exc)) from None
    if data.predictions is None:
        raise BadInputError(f"run {run_dir.name}: {NO_PREDICTIONS} ({run_dir / EVAL_FILE})")
    return data


def top_loss_rows(data: EvalData, count: int) -> list[dict[str, Any]]:
    p = data.predictions
    assert p is not None
    names = data.class_names
    return [
        {
            "index": int(p.index[r]),
            "true": names[int(p.labels[r])],
            "predicted": names[int(p.pred[r])],
            "confidence": float(p.confidence[r]),
            "loss": float(p.losses[r]),
        }
        for r in top_losses(p, count).rows
    ]


def top_losses_title(data: EvalData, count: int) -> str:
    tag = "  [SYNTHETIC DATA]" if data.synthetic else ""
    return (
        f"{data.run_dir.name}: top {count} losses, misclassified test images by cross-entropy "
        f"(best checkpoint){tag}"
    )


def top_losses_table(data: EvalData, rows: list[dict[str, Any]]) -> Table:
    table = Table(
        Column("#", justify="right"),
        Column("test index", justify="right"),
        Column("true", no_wrap=True),
        Column("predicted", no_wrap=True),
        Column("confidence", justify="right"),
        Column("loss", justify="right"),
        box=box.SIMPLE_HEAD,
        caption=DERIVED if data.predictions and data.predictions.derived else None,
        caption_justify="left",
    )
    for rank, row in enumerate(rows, 1):
        table.add_row(
            str(rank),
            str(row["index"]),
            row["true"],
            row["predicted"],
            pct(row["confidence"], 1),
            f"{row['loss']:.3f}",
        )
    return table


def top_losses_command(
    target: str,
    count: int,
    *,
    json_out: bool = False,
    checkpoints: Path | None = None,
    console: Console | None = None,
) -> int:
    """Print the top `count` losses and the calibration of a run. Raises BadInputError."""
    if count < 1:
        raise BadInputError(f"--top-losses = {count} is out of range [1, inf]")
    data = load_run_eval(resolve_run(target, checkpoints))
    rows = top_loss_rows(data, count)
    rel = data.calibration()
    assert rel is not None
    if json_out:
        bins = [
            {
                "low": float(rel.edges[m]),
                "high": float(rel.edges[m + 1]),
                "count": int(rel.counts[m]),
                "accuracy": None if not rel.counts[m] else float(rel.accuracy[m]),
                "confidence": None if not rel.counts[m] else float(rel.confidence[m]),
            }
            for m in range(len(rel.counts))
        ]
        report = {"run_id": data.run_dir.name, "top_losses": rows, "ece": rel.ece}
        print(strict_json.dumps(report | {"reliability": bins}))
        return 0
    out = console or Console()
    out.print(top_losses_title(data, len(rows)), markup=False, highlight=False)
    out.print(top_losses_table(data, rows))
    out.print(reliability_title(rel), highlight=False)
    out.print(reliability_table(rel))
    return 0
