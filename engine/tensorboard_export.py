"""TensorBoard event files for every run of a registry, written with tensorboardX.

One folder per run under the log dir, holding:
- per-step scalars at the global step: `step/loss`, `step/top1` (running means within the
  epoch), `step/lr`, `step/img_per_s` (from the run's events.jsonl);
- per-epoch scalars at the epoch number: `epoch/train_loss`, `epoch/val_top1`, ...;
- the final test numbers: `test/top1`, `test/top5`, `test/top1_last`, `test/tta_top1`;
- the run's hyperparameters (its flattened config, the where-keys left out) and its metrics
  (`hparams/...`) for TensorBoard's HParams view, so a sweep's runs compare there.

tensorboardX imports torch when it can, so this runs in an engine process:
`python -m engine.tensorboard_export ROOT LOGDIR` (the UI's `cifar-tui runs --tensorboard`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

import yaml

from engine.config import WHERE_KEYS, flatten_config
from engine.events import EVENTS_FILE, EpochEnd, Step, read_events
from engine.outcome import read_outcome
from engine.runs import RunRegistry, RunRow

SUFFIX = ".cifar-tui"  # our files: a later export replaces them, and leaves others alone
STEP_TAGS = {
    "loss": "step/loss",
    "top1": "step/top1",
    "lr": "step/lr",
    "img_per_s": "step/img_per_s",
}
EPOCH_TAGS = {  # epoch_end field (and registry epoch column) -> tag
    "train_loss": "epoch/train_loss",
    "train_top1": "epoch/train_top1",
    "val_loss": "epoch/val_loss",
    "val_top1": "epoch/val_top1",
    "val_top5": "epoch/val_top5",
    "lr": "epoch/lr",
    "img_per_s": "epoch/img_per_s",
    "epoch_s": "epoch/seconds",
}
FINAL_TAGS = {
    "test_top1": "test/top1",
    "test_top5": "test/top5",
    "test_top1_last": "test/top1_last",
}
METRICS = {  # RunRow field -> HParams metric
    "test_top1": "hparams/test_top1",
    "best_val_top1": "hparams/best_val_top1",
    "img_per_s": "hparams/img_per_s",
    "wall_s": "hparams/wall_s",
}
HIDDEN_KEYS = {"description"}


def run_hparams(run_dir: Path, row: RunRow) -> dict[str, bool | str | float | int]:
    """The run's recipe as HParams: every flattened config key (config.yaml) but the where-keys,
    plus the registry's preset, status and sweep."""
    config: Any = {}
    with contextlib.suppress(OSError, yaml.YAMLError):
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    flat = flatten_config(config) if isinstance(config, dict) else {}
    out: dict[str, bool | str | float | int] = {
        k: v
        for k, v in sorted(flat.items())
        if k not in WHERE_KEYS and k not in HIDDEN_KEYS and isinstance(v, bool | str | float | int)
    }
    out.update(preset=row.preset, status=row.status, model=row.model, dataset=row.dataset)
    if row.sweep_id:
        out["sweep"] = row.sweep_id
    return out


Curve = dict[int, tuple[dict[str, float], float]]  # step or epoch -> ({tag: value}, wall time)


def _curves(root: Path, registry: RunRegistry, row: RunRow) -> tuple[Curve, Curve]:
    """Per-step and per-epoch scalars from the run's event log; the registry's epochs where the
    folder is gone. A step or epoch logged twice (a resume redid it) keeps its last values."""
    steps: Curve = {}
    epochs: Curve = {}
    log = root / row.run_id / EVENTS_FILE
    for event in read_events(log) if log.is_file() else []:
        if isinstance(event, Step):
            values = {tag: getattr(event, f) for f, tag in STEP_TAGS.items()}
            steps[event.step] = values, event.t
        elif isinstance(event, EpochEnd):
            values = {tag: getattr(event, f) for f, tag in EPOCH_TAGS.items()}
            epochs[event.epoch] = {t: v for t, v in values.items() if v is not None}, event.t
    if not epochs:
        wall = row.started
        for epoch in registry.epochs(row.run_id):
            wall += epoch.get("epoch_s") or 0.0
            values = {tag: epoch.get(f) for f, tag in EPOCH_TAGS.items()}
            epochs[epoch["epoch"]] = {t: v for t, v in values.items() if v is not None}, wall
    return steps, epochs


def _clear(folder: Path) -> None:
    if folder.is_dir():
        for old in folder.glob(f"events.out.tfevents.*{SUFFIX}"):
            old.unlink()


def export_run(root: Path, registry: RunRegistry, row: RunRow, folder: Path) -> Path:
    """Write one run's event file into `folder`; returns its path."""
    from tensorboardX import SummaryWriter
    from tensorboardX.summary import hparams

    run_dir = root / row.run_id
    _clear(folder)
    steps, epochs = _curves(root, registry, row)
    with SummaryWriter(logdir=str(folder), filename_suffix=SUFFIX) as writer:
        for step, (values, wall) in sorted(steps.items()):
            for tag, value in values.items():
                writer.add_scalar(tag, value, step, walltime=wall)
        for epoch, (values, wall) in sorted(epochs.items()):
            for tag, value in values.items():
                writer.add_scalar(tag, value, epoch, walltime=wall)
        last_epoch = max(epochs, default=0)
        end = row.started + (row.wall_s or 0.0)
        finals = {tag: getattr(row, field) for field, tag in FINAL_TAGS.items()}
        summary = read_outcome(run_dir).summary if run_dir.is_dir() else None
        tta = summary.tta if summary is not None else None
        if isinstance(tta, dict) and isinstance(tta.get("top1"), float | int):
            finals["test/tta_top1"] = tta["top1"]
        for tag, value in finals.items():
            if value is not None:
                writer.add_scalar(tag, value, last_epoch, walltime=end)
        metrics = {m: getattr(row, f) for f, m in METRICS.items() if getattr(row, f) is not None}
        experiment, start, stop = hparams(run_hparams(run_dir, row), metrics)
        for proto in (experiment, start, stop):
            writer.file_writer.add_summary(proto)
        for tag, value in metrics.items():
            writer.add_scalar(tag, value, last_epoch, walltime=end)
    (path,) = folder.glob(f"events.out.tfevents.*{SUFFIX}")
    return path


def export(root: Path, logdir: Path) -> list[Path]:
    """One event file per run of `root`'s registry under `logdir/<run id>/` (ours from an earlier
    export replaced)."""
    registry = RunRegistry(root)
    return [export_run(root, registry, row, logdir / row.run_id) for row in registry.runs()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.tensorboard_export")
    parser.add_argument("root", type=Path, help="the checkpoints folder (runs.sqlite)")
    parser.add_argument("logdir", type=Path)
    args = parser.parse_args(argv)
    for path in export(args.root, args.logdir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
