"""`cifar-tui eval CHECKPOINT|RUN [--tta] [--views VIEW ...] [--json]`: a checkpoint, test set.

Torch-free: it checks what it can here (the checkpoint exists, view names, the device), runs
`python -m engine eval` (engine/evaluate_checkpoint.py) in a child process, and prints the report:
a table of views, top-1, top-5 and cost (a plain evaluation: with its ECE) on stdout, or with
`--json` the report itself. `--top-losses K` reads a run's eval.npz instead (`tui.cli.top_losses`).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Column, Table

from engine import exit_codes, strict_json
from engine.checkpoint_files import CheckpointError, read_verified
from engine.config import check_device
from engine.errors import BadInputError
from engine.runs import RUN_META_FILE, checkpoints_root, find_run
from engine.tta_views import DEFAULT_VIEWS, unique_views
from tui.fmt import pct

BEST = "best.pt"


def resolve_checkpoint(target: str, checkpoints: Path | None = None) -> Path:
    """A .pt path, a run folder, or a run id / unique prefix / `last` (-> its best.pt)."""
    path = Path(target)
    if path.suffix == ".pt" or path.is_file():
        if not path.is_file():
            raise BadInputError(f"checkpoint {path} does not exist")
        return path
    if (path / RUN_META_FILE).is_file():
        run_dir = path
    else:
        run_dir = find_run(checkpoints_root(checkpoints), target)
    best = run_dir / BEST
    if not best.is_file():
        raise BadInputError(f"run {run_dir.name} has no best checkpoint: {best} does not exist")
    return best


def requested_views(tta: bool, views: list[str] | None) -> list[str] | None:
    """The views to evaluate (None: a plain evaluation). `--views` implies `--tta`.

    Each `--views` value may hold several names separated by spaces."""
    names = [name for value in views or [] for name in value.split()]
    if names:
        unique_views(names)
        return names
    return list(DEFAULT_VIEWS) if tta else None


def start_engine_eval(
    checkpoint: Path,
    views: list[str] | None,
    *,
    out: Path,
    eval_file: Path | None = None,
    output: Any = None,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `python -m engine eval` writing its report to `out` (and with `eval_file`, an
    eval.npz); its output goes to `output` (a file; default our stderr)."""
    cmd = [sys.executable, "-m", "engine", "eval", str(checkpoint), "--out", str(out)]
    cmd += ["--device", device]
    if views is not None:
        cmd += ["--tta", *views]
    if data_dir is not None:
        cmd += ["--data-dir", data_dir]
    if batch_size is not None:
        cmd += ["--batch-size", str(batch_size)]
    if eval_file is not None:
        cmd += ["--eval-file", str(eval_file), "--no-progress"]
    stdout = output if output is not None else sys.stderr
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=output)


def run_engine_eval(
    checkpoint: Path,
    views: list[str] | None,
    *,
    data_dir: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """`python -m engine eval` in a child process: (exit code, its report or None).

    The child's own output (download progress, its error line) goes to our stderr."""
    with tempfile.TemporaryDirectory(prefix="cifar-tui-eval-") as tmp:
        out = Path(tmp) / "eval.json"
        process = start_engine_eval(
            checkpoint, views, out=out, data_dir=data_dir, device=device, batch_size=batch_size
        )
        try:
            code = process.wait()
        except KeyboardInterrupt:  # Ctrl-C reached the engine too (same process group)
            process.wait()
            raise
        code = 128 - code if code < 0 else code
        report = strict_json.loads(out.read_text()) if code == 0 and out.is_file() else None
    return code, report


def report_table(r: dict[str, Any]) -> Table:
    """Views, top-1, top-5 and cost; with several views, the merged prediction last."""
    tag = "  [SYNTHETIC DATA]" if r.get("synthetic") else ""
    title = (
        f"{r.get('run_id') or r['checkpoint']}, epoch {r.get('epoch')}: {r.get('model')} "
        f"({r.get('weights')} weights) on the {r.get('dataset')} test set, "
        f"{r['count']:,} images, {r.get('device')}{tag}"
    )
    table = Table(
        Column("view", no_wrap=True),
        Column("top-1", justify="right", no_wrap=True),
        Column("top-5", justify="right", no_wrap=True),
        Column("cost", justify="right", no_wrap=True),
        box=box.SIMPLE_HEAD,
        title=title,
        title_justify="left",
    )
    views = r["views"]
    for v in views:
        table.add_row(v["view"], pct(v["top1"]), pct(v["top5"]), "1x")
    if len(views) > 1:
        table.add_row(
            f"merged (mean of {len(views)} views' probabilities)",
            pct(r["top1"]),
            pct(r["top5"]),
            f"{r['cost']}x",
            style="bold",
            end_section=True,
        )
    notes = []
    if r.get("requested", len(views)) > len(views):
        notes.append(
            f"{r['requested']} views asked for, {len(views)} distinct: duplicates evaluated once"
        )
    if isinstance(r.get("ece"), int | float):
        notes.append(f"expected calibration error (15 bins): {r['ece']:.4f}")
    if notes:
        table.caption = "; ".join(notes)
        table.caption_justify = "left"
    return table


def eval_command(
    target: str,
    *,
    tta: bool = False,
    views: list[str] | None = None,
    json_out: bool = False,
    data_dir: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    checkpoints: Path | None = None,
    console: Console | None = None,
) -> int:
    """Resolve, evaluate in an engine process, print. Raises BadInputError before anything runs."""
    checkpoint = resolve_checkpoint(target, checkpoints)
    names = requested_views(tta, views)
    check_device(device or "auto")
    try:
        read_verified(checkpoint)  # torch-free: a damaged file is refused before torch loads
    except CheckpointError as exc:
        raise BadInputError(str(exc)) from None
    try:
        code, report = run_engine_eval(
            checkpoint, names, data_dir=data_dir, device=device or "auto", batch_size=batch_size
        )
    except KeyboardInterrupt:
        return exit_codes.INTERRUPTED
    if report is None:
        return code or 1
    if json_out:
        print(strict_json.dumps(report))
    else:
        (console or Console()).print(report_table(report))
    return 0
