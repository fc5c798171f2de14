"""`cifar-tui runs --export csv|json` and `--tensorboard DIR`: the runs registry, for other tools.

Rows come from runs.sqlite (one per run, the fields `cifar-tui runs` shows and more) plus the
sweep recipe and seed that run.json holds for a sweep's run. TensorBoard gets one folder per run
with its per-epoch curves and final test numbers, written by tui.orchestration.exports.tb_events
(no TensorBoard or torch needed to write them).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
from pathlib import Path
from typing import Any

from engine import strict_json
from engine.runs import RunRegistry, RunRow, read_run_meta
from tui.orchestration.exports.tb_events import EventFileWriter

EXPORT_FORMATS = ("csv", "json")
_TB_SUFFIX = ".cifar-tui"
# registry epoch column -> TensorBoard tag
EPOCH_TAGS = {
    "train_loss": "train/loss",
    "train_top1": "train/top1",
    "val_loss": "val/loss",
    "val_top1": "val/top1",
    "val_top5": "val/top5",
    "lr": "train/lr",
    "epoch_s": "time/epoch_s",
}
FINAL_TAGS = {
    "test_top1": "test/top1",
    "test_top5": "test/top5",
    "test_top1_last": "test/top1_last",
}


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
    """One event file per run under `logdir/<run id>/` (replacing ours from an earlier export)."""
    registry = RunRegistry(root)
    written = []
    for row in registry.runs():
        folder = logdir / row.run_id
        if folder.is_dir():
            for old in folder.glob(f"events.out.tfevents.*{_TB_SUFFIX}"):
                old.unlink()
        wall = row.started
        last_epoch = 0
        with EventFileWriter(folder, suffix=_TB_SUFFIX) as writer:
            for epoch in registry.epochs(row.run_id):
                wall += epoch.get("epoch_s") or 0.0
                last_epoch = epoch["epoch"]
                scalars = {tag: epoch.get(col) for col, tag in EPOCH_TAGS.items()}
                writer.add_scalars(epoch["epoch"], scalars, wall)
            finals = {tag: getattr(row, field) for field, tag in FINAL_TAGS.items()}
            writer.add_scalars(last_epoch, finals, row.started + (row.wall_s or 0.0))
        written.append(writer.path)
    return written
