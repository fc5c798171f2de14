"""What one training step asks of the device, engine vs a plain hand-written step (CPU, < 3 min).

    python -m bench.step_profile [--model resnet18] [--batches 128 512]

For the resnet18 preset's augmentation (crop 4, flip, rotation 15) and the write-up's full one
(+ AutoAugment, random erasing), at each batch size, side by side in this one process:

- `engine_ops_per_step`: aten ops the engine launches per training step (its device loader, the
  augmentation amortised over its chunk, normalisation, forward, loss, backward, fused SGD with
  the device-side skip, the step's sums), counted by `engine.dispatch_count` over whole chunks;
- `plain_ops_per_step`: a plain step written here, not through the Trainer: the same model
  (channels_last), cross-entropy, backward, fused SGD; `ops_ratio` = engine / plain;
- `transfers_per_step`: blocking host<->device copies and reads of device values per step
  (loader included); `async_uploads_per_step`: non-blocking copies of the augmentation draws
  (one per chunk) and the epoch order (one per epoch, left out of the per-step figure);
- `checkpoint_blocking_ms`: how long the training loop is blocked per checkpoint (the host copy
  handed to the background writer), against `checkpoint_sync_ms`, a synchronous write of the
  same state (serialise, hash, fsync, rename).

Counting runs on the `meta` device, which stands in for a GPU: ops touching it are the kernels a
GPU would launch, host draws on the CPU are not, and any read of device data fails outright.
bf16 autocast is left out of both counts (the `meta` device has no autocast; it would add the
same casts to both). The checkpoint timings use the real model on the CPU. The last line printed
is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import AUGMENTS, plain_step  # noqa: E402
from engine import checkpoint  # noqa: E402
from engine import device as device_module  # noqa: E402
from engine import trainer as trainer_module  # noqa: E402
from engine.config import config_to_dict, load_config, parse_config  # noqa: E402
from engine.dispatch_count import DispatchCounter, meta_fused_optimizers  # noqa: E402
from engine.events import EventWriter  # noqa: E402

TARGETS = {"transfers_per_step": 0, "ops_ratio": {"preset": 1.15, "full": 1.35}, "blocking": 0.10}


def _trainer(
    model: list[str], augment: list[dict[str, Any]], batch: int, chunk: int, run_dir: Path
) -> trainer_module.Trainer:
    """The engine's Trainer for the resnet18 recipe on synthetic images, set up on `meta`."""
    cfg = load_config(
        "resnet18",
        [
            *model,
            "data.dataset=synthetic",
            f"data.subset={max(2 * chunk, 2 * batch)}",
            "data.val_size=0",
            f"data.batch_size={batch}",
            f"data.augment_chunk={chunk}",
            "train.channels_last=true",
            "train.bf16=false",
        ],
    )
    raw = config_to_dict(cfg)
    raw["augment"] = augment
    cfg = parse_config(raw)
    trainer = trainer_module.Trainer(
        cfg, run_dir, "profile", "resnet18", EventWriter(run_dir / "events.jsonl"), progress=False
    )
    meta = torch.device("meta")
    original = device_module.resolve_device
    device_module.resolve_device = lambda name: meta  # type: ignore[assignment]
    try:
        trainer._setup()
    finally:
        device_module.resolve_device = original
    return trainer


def engine_counts(trainer: trainer_module.Trainer) -> dict[str, float]:
    """Ops, transfers and uploads per step over whole chunks (after one chunk of warm-up)."""
    dev = trainer.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    k = trainer.loader.chunk_steps  # type: ignore[attr-defined]
    trainer.model.train()

    def steps(epoch: int, count: int) -> None:
        trainer.loader.start(epoch)
        batches = iter(trainer.loader)
        for _ in range(count):
            images, labels = next(batches)
            trainer._step(images, labels, loss_sum, correct)

    steps(1, k)  # warm-up: device constants, momentum buffers
    trainer.loader.start(2)
    batches = iter(trainer.loader)
    first = next(batches)  # the epoch's order is uploaded here, once per epoch
    with DispatchCounter() as counter:
        trainer._step(*first, loss_sum, correct)
        for _ in range(2 * k - 1):  # two whole chunks
            images, labels = next(batches)
            trainer._step(images, labels, loss_sum, correct)
    n = 2 * k
    return {
        "ops": counter.ops / n,
        "transfers": counter.transfers / n,
        "async_uploads": counter.async_uploads / n,
        "where": dict(counter.where),
    }


def plain_ops(model: torch.nn.Module, batch: int) -> float:
    """A plain step: channels_last input, forward, cross-entropy, backward, fused SGD."""
    dev = next(model.parameters()).device
    x = torch.zeros(batch, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    step = plain_step(model, x, torch.zeros(batch, dtype=torch.long, device=dev), amp=False)
    step()
    with DispatchCounter() as counter:
        step()
    return counter.ops


def checkpoint_timings(trainer: trainer_module.Trainer, run_dir: Path, repeats: int = 3) -> dict:
    """ms the loop is blocked per checkpoint (background writer) vs a synchronous write."""
    sync, blocked = [], []
    for _ in range(repeats):
        state = trainer._checkpoint_state()
        t0 = time.perf_counter()
        checkpoint.save_atomic(state, run_dir / "sync.pt")
        sync.append(time.perf_counter() - t0)
    writer = checkpoint.BackgroundWriter()
    for _ in range(repeats):
        state = trainer._checkpoint_state()
        t0 = time.perf_counter()
        writer.submit(state, [(run_dir / "last.pt", True)], tag=None)
        blocked.append(time.perf_counter() - t0)
        writer.wait()  # checkpoints are minutes apart in training: none is in flight
    size = (run_dir / "last.pt").stat().st_size
    return {
        "checkpoint_mib": size / 2**20,
        "checkpoint_sync_ms": 1000 * min(sync),
        "checkpoint_blocking_ms": 1000 * min(blocked),
    }


def cpu_trainer(model: list[str], run_dir: Path) -> trainer_module.Trainer:
    """The same model and optimizer on the CPU, after one step (momentum buffers filled)."""
    cfg = load_config(
        "resnet18",
        [
            *model,
            "data.dataset=synthetic",
            "data.subset=256",
            "data.val_size=0",
            "data.batch_size=32",
            "train.device=cpu",
        ],
    )
    trainer = trainer_module.Trainer(
        cfg, run_dir, "profile", "resnet18", EventWriter(run_dir / "events.jsonl"), progress=False
    )
    trainer._setup()
    trainer._session_start, trainer._wall_before = time.time(), 0.0
    loss_sum = torch.zeros((), dtype=torch.float64)
    correct = torch.zeros((), dtype=torch.long)
    trainer.loader.start(1)
    images, labels = next(iter(trainer.loader))
    trainer._step(images, labels, loss_sum, correct)
    return trainer


def measure(model: list[str], batches: list[int], chunk: int, workdir: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with meta_fused_optimizers():
        for aug_name, augment in AUGMENTS.items():
            for batch in batches:
                run_dir = workdir / f"{aug_name}-{batch}"
                run_dir.mkdir(parents=True, exist_ok=True)
                trainer = _trainer(model, augment, batch, chunk, run_dir)
                counts = engine_counts(trainer)
                plain = plain_ops(trainer.model, batch)
                rows.append(
                    {
                        "augment": aug_name,
                        "batch": batch,
                        "chunk_steps": trainer.loader.chunk_steps,  # type: ignore[attr-defined]
                        "engine_ops_per_step": round(counts["ops"], 1),
                        "plain_ops_per_step": plain,
                        "ops_ratio": round(counts["ops"] / plain, 3),
                        "transfers_per_step": counts["transfers"],
                        "async_uploads_per_step": round(counts["async_uploads"], 3),
                        "transfers_at": counts["where"],
                    }
                )
    ck_dir = workdir / "checkpoint"
    ck_dir.mkdir(exist_ok=True)
    timings = checkpoint_timings(cpu_trainer(model, ck_dir), ck_dir)
    timings["blocking_ratio"] = timings["checkpoint_blocking_ms"] / timings["checkpoint_sync_ms"]
    return {"rows": rows, **timings}


def meets_targets(result: dict[str, Any], batch: int = 512) -> dict[str, bool]:
    checks = {}
    for row in result["rows"]:
        checks[f"transfers {row['augment']} b{row['batch']}"] = row["transfers_per_step"] == 0
        if row["batch"] == batch:
            limit = TARGETS["ops_ratio"][row["augment"]]  # type: ignore[index]
            checks[f"ops_ratio {row['augment']} b{batch} <= {limit}"] = row["ops_ratio"] <= limit
    checks["checkpoint blocking <= 10% of a synchronous write"] = (
        result["blocking_ratio"] <= TARGETS["blocking"]  # type: ignore[operator]
    )
    return checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resnet18", help="a model registry name")
    ap.add_argument("--batches", type=int, nargs="+", default=[128, 512])
    ap.add_argument("--chunk", type=int, default=4096, help="data.augment_chunk")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tempfile.TemporaryDirectory() as tmp:
        result = measure([f"model.name={args.model}"], args.batches, args.chunk, Path(tmp))
    checks = meets_targets(result, max(args.batches))
    header = f"{'augment':<8} {'batch':>5} {'engine ops':>10} {'plain ops':>9} {'ratio':>6} "
    print(header + f"{'transfers':>9} {'uploads':>7}")
    for row in result["rows"]:
        print(
            f"{row['augment']:<8} {row['batch']:>5} {row['engine_ops_per_step']:>10} "
            f"{row['plain_ops_per_step']:>9} {row['ops_ratio']:>6} "
            f"{row['transfers_per_step']:>9} {row['async_uploads_per_step']:>7}"
        )
    print(
        f"checkpoint ({result['checkpoint_mib']:.0f} MiB): loop blocked "
        f"{result['checkpoint_blocking_ms']:.1f} ms vs {result['checkpoint_sync_ms']:.0f} ms "
        f"synchronous ({100 * result['blocking_ratio']:.1f} %)"
    )
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'MISS'} {name}")
    print(json.dumps({**result, "targets_met": checks}))


if __name__ == "__main__":
    main()
