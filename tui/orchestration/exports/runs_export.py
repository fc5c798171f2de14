"""`cifar-tui runs --export csv|json` and `--tensorboard DIR`: the runs registry, for other tools.

Rows come from runs.sqlite (one per run, the fields `cifar-tui runs` shows and more) plus the
sweep recipe and seed that run.json holds for a sweep's run. TensorBoard gets one folder per run
(engine.tensorboard_export: step and epoch curves, test numbers, HParams).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

from engine import strict_json
from engine.runs import RunRegistry, RunRow, read_run_meta

EXPORT_FORMATS = ("csv", "json")


def run_records(root: Path) -> list[dict[str, Any]]:
    """Every run in the registry (newest first) as a flat dict."""
    out = []
    for row in RunRegistry(root).runs():
        record = dataclasses.asdict(row)
        meta: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            meta = read_run_meta(root / row.run_id)
        record["recipe"] = meta.get("recipe")
        record["seed"] = meta.get("seed")
        out.append(record)
    return out


def export_text(root: Path, fmt: str) -> str:
    records = run_records(root)
    if fmt == "json":
        return strict_json.dumps(records, indent=2) + "\n"
    buf = io.StringIO()
    names = list(records[0]) if records else [f.name for f in dataclasses.fields(RunRow)]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: "" if v is None else v for k, v in r.items()})
    return buf.getvalue()


def write_tensorboard(root: Path, logdir: Path) -> list[Path]:
    """One event file per run under `logdir/<run id>/` (replacing ours from an earlier export),
    written by an engine process: tensorboardX imports torch, which the UI never does."""
    RunRegistry(root).runs()  # a damaged registry: its one line (RegistryError), nothing made
    logdir.mkdir(parents=True, exist_ok=True)  # an OSError here: the caller's one line
    proc = subprocess.run(
        [sys.executable, "-m", "engine.tensorboard_export", str(root), str(logdir)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise OSError(f"the TensorBoard export failed: {last}")
    return [Path(line) for line in proc.stdout.splitlines() if line]
