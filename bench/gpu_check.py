"""For a lent GPU machine: model-only vs end-to-end throughput, then a real training run.

    CIFAR_TUI_DATA=shared_data python -m bench.gpu_check --out $OUT/gpu_check.json [--budget-s 470]

For resnet18, resnet50, wrn28_10 and wrn40_10 (bf16 autocast, channels_last, batch 512, SGD as
the recipe sets it, fused), side by side in this one process:
  - model only: the training step on a batch already on the device (the ceiling);
  - fast path: the engine's own step fed by the device loader (`data.loader: device`) with the
    write-up's full augmentation (crop 4, flip, rotation 15, AutoAugment, random erasing);
  - per-image path: the same step fed by the torchvision reference (`data.loader: torchvision`,
    DataLoader workers = CPU count);
  - compiled: the fast path with `train.compile: true` (compile time reported separately);
and the ratios fast/model-only and fast/per-image. Then it trains the `resnet18` preset on the real
data for as many epochs as fit in the time left (the schedule compressed to that many epochs) and
reports test top-1 against wall time. Everything is written to one JSON file as it goes (a run cut
short keeps what it measured); a short table is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.config import apply_override, config_to_dict, load_config, parse_config  # noqa: E402
from engine.events import EventWriter  # noqa: E402
from engine.trainer import Trainer  # noqa: E402

MODELS = ["resnet18", "resnet50", "wrn28_10", "wrn40_10"]
FULL_AUGMENT = [
    "augment.0.name=random_crop",
    "augment.0.padding=4",
    "augment.1.name=hflip",
    "augment.2.name=rotation",
    "augment.2.degrees=15",
]
EXTRA_AUGMENT = [{"name": "autoaugment"}, {"name": "random_erasing"}]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def trainer_for(
    model: str,
    loader: str,
    compile_: bool,
    batch: int,
    workdir: Path,
    device: str = "cuda",
    extra: list[str] = (),  # type: ignore[assignment]
) -> Trainer:
    """The engine's trainer, set up on the real training set with the write-up's augmentation."""
    cfg = load_config("resnet18", FULL_AUGMENT)
    raw = config_to_dict(cfg)
    raw["augment"] = raw["augment"] + EXTRA_AUGMENT
    for key in [
        f"model.name={model}",
        f"data.batch_size={batch}",
        f"data.loader={loader}",
        f"data.num_workers={min(os.cpu_count() or 4, 16)}",
        "data.val_size=0",
        f"train.compile={str(compile_).lower()}",
        f"train.device={device}",
        *extra,
    ]:
        apply_override(raw, key)
    cfg = parse_config(raw)
    run_dir = workdir / f"{model}-{loader}-{int(compile_)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, run_dir, run_dir.name, "gpu_check", EventWriter(run_dir / "ev.jsonl"))
    trainer._setup()
    return trainer


def timed_steps(trainer: Trainer, seconds: float, warmup: int = 5) -> dict[str, float]:
    """img/s of the engine's step fed by its loader; the first `warmup` steps (compilation,
    cuDNN autotuning, worker start-up) are timed separately as `warmup_s`."""
    dev = trainer.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    steps = images = 0
    epoch = 1
    t0 = time.perf_counter()
    start = 0.0
    while True:
        trainer.loader.start(epoch)
        for x, y in trainer.loader:
            trainer._step(x, y, loss_sum, correct)
            steps += 1
            if steps == warmup:
                sync(dev)
                start = time.perf_counter()
            elif steps > warmup:
                images += y.shape[0]
                if time.perf_counter() - start > seconds:
                    sync(dev)
                    elapsed = time.perf_counter() - start
                    return {"img_per_s": images / elapsed, "warmup_s": start - t0, "steps": steps}
        epoch += 1


def model_only(trainer: Trainer, seconds: float) -> dict[str, float]:
    """The same step on one batch already on the device, again and again (no input pipeline)."""
    x, y = next(iter(trainer.loader))
    dev = trainer.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    for _ in range(5):
        trainer._step(x, y, loss_sum, correct)
    sync(dev)
    start, images = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(10):
            trainer._step(x, y, loss_sum, correct)
            images += y.shape[0]
        sync(dev)
    return {"img_per_s": images / (time.perf_counter() - start)}


def train_resnet18(budget_s: float, workdir: Path, epoch_s: float) -> dict[str, Any]:
    """The resnet18 preset for as many epochs as fit in `budget_s` (measured epoch time)."""
    epochs = max(1, min(200, int(budget_s / max(epoch_s, 1e-3))))
    cfg = load_config("resnet18", [f"train.epochs={epochs}", "train.device=cuda"])
    run_dir = workdir / "resnet18-train"
    run_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = Trainer(cfg, run_dir, "train", "resnet18", EventWriter(run_dir / "ev.jsonl")).run()
    return {
        "epochs": epochs,
        "wall_s": time.perf_counter() - start,
        "test_top1": summary.get("test_top1"),
        "test_top1_last": summary.get("test_top1_last"),
        "img_per_s": summary.get("img_per_s"),
        "best_epoch": summary.get("best_epoch"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=470.0, help="stop everything by then")
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--compile-models", nargs="*", default=["resnet18", "wrn28_10"])
    ap.add_argument("--train-share", type=float, default=0.45, help="budget share of the run")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device")
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s
    workdir = args.out.parent / "gpu_check_runs"
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "batch": args.batch,
        "models": {},
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    train_reserve = args.budget_s * args.train_share
    for name in args.models:
        row: dict[str, Any] = result["models"].setdefault(name, {})
        for loader in ("device", "torchvision"):
            if time.perf_counter() + train_reserve > deadline:
                row["skipped"] = "time budget"
                break
            trainer = trainer_for(name, loader, False, args.batch, workdir)
            if loader == "device":
                row["model_only"] = model_only(trainer, args.seconds)["img_per_s"]
                row["fast"] = timed_steps(trainer, args.seconds)["img_per_s"]
            else:
                row["per_image"] = timed_steps(trainer, args.seconds)["img_per_s"]
            del trainer
            torch.cuda.empty_cache()
            save()
        if name in args.compile_models and time.perf_counter() + train_reserve + 90 < deadline:
            trainer = trainer_for(name, "device", True, args.batch, workdir)
            measured = timed_steps(trainer, args.seconds, warmup=3)
            row["compiled"] = measured["img_per_s"]
            row["compile_warmup_s"] = measured["warmup_s"]
            del trainer
            torch.cuda.empty_cache()
        if "model_only" in row and "fast" in row:
            row["fast_over_model_only"] = row["fast"] / row["model_only"]
        if "per_image" in row and "fast" in row:
            row["fast_over_per_image"] = row["fast"] / row["per_image"]
        save()

    # the real run: measure one epoch's time at the preset's own batch, then fit the budget
    left = deadline - time.perf_counter() - 30  # evaluation and set-up
    probe = trainer_for("resnet18", "device", False, 128, workdir)
    per_s = timed_steps(probe, 3.0)["img_per_s"]
    del probe
    epoch_s = 45_000 / per_s + 0.3  # + validation
    result["resnet18_run"] = {"probe_img_per_s": per_s}
    save()
    result["resnet18_run"].update(train_resnet18(left, workdir, epoch_s))
    result["total_s"] = time.perf_counter() - t_start
    save()

    print(
        f"\n{result['device']}, torch {result['torch']}, batch {args.batch}, bf16 + channels_last"
    )
    print(
        f"{'model':<10} {'model-only':>11} {'fast':>9} {'per-image':>10} {'compiled':>9} "
        f"{'fast/model':>11} {'fast/per-img':>13}"
    )
    for name, row in result["models"].items():

        def cell(key: str, fmt: str = "{:>9.0f}", row: dict[str, Any] = row) -> str:
            return fmt.format(row[key]) if key in row else f"{'-':>9}"

        print(
            f"{name:<10} {cell('model_only', '{:>11.0f}')} {cell('fast')} "
            f"{cell('per_image', '{:>10.0f}')} {cell('compiled')} "
            f"{cell('fast_over_model_only', '{:>11.2f}')} "
            f"{cell('fast_over_per_image', '{:>13.2f}')}"
        )
    run = result["resnet18_run"]
    print(
        f"resnet18 preset: {run['epochs']} epochs in {run['wall_s']:.0f} s, "
        f"test top-1 {run['test_top1']}"
    )


if __name__ == "__main__":
    main()
