"""For a lent GPU machine, one call: what the engine's step costs against a plain step, then the
resnet18 preset on the real data and a live resume on CUDA.

    CIFAR_TUI_DATA=/tmp/data python -m bench.gpu_check --out $OUT/gpu_check.json [--budget-s 500]
    python -m bench.gpu_check --out /tmp/x.json --cpu-smoke   # the same code, tiny, on the CPU

Side by side in this one process, for resnet18 (bf16 autocast, channels_last, fused SGD):
  - `plain`: a hand-written step (forward, cross-entropy, backward, fused SGD) on one batch
    already on the device, the ceiling, at batch 128 and 512;
  - `engine`: the Trainer's own step fed by its device loader, with the preset's augmentation
    (crop, flip, rotation) and the write-up's full one (+ AutoAugment, random erasing), at both
    batches, eager; at batch 512 also `train.compile` and `compile_mode: reduce-overhead`
    (CUDA graphs of forward and backward); `engine / plain` is the share of the ceiling kept;
  - host synchronisations per engine step, counted by `torch.cuda.set_sync_debug_mode`;
  - the resnet18 preset (its own config) for one probe epoch, then trained for as many epochs as
    the time left allows (the schedule compressed to them), with the projected wall time of its
    200 epochs from the measured steady epoch time;
  - a live resume: `python -m engine run` interrupted by SIGINT after its first checkpoint, then
    `--resume` to the end, on CUDA.

The training set is `CIFAR_TUI_DATA`'s CIFAR-100 when present, else the synthetic set (marked).
Run folders go to a temporary folder outside `--out`'s; the JSON is rewritten after every
measurement, and each measurement is guarded: one that fails records its error and the rest go
on. A table is printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.common import AUGMENTS, plain_step  # noqa: E402
from engine.config import config_to_dict, dump_config, load_config, parse_config  # noqa: E402
from engine.events import EventWriter, read_events  # noqa: E402
from engine.runs import create_run_dir  # noqa: E402
from engine.trainer import Trainer  # noqa: E402

MODES = {"eager": [], "compiled": ["train.compile=true"]}
MODES["cuda_graphs"] = ["train.compile=true", "train.compile_mode=reduce-overhead"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def data_overrides(data_dir: Path | None, subset: int | None) -> list[str]:
    """The real CIFAR-100 where it is, else the synthetic set."""
    real = data_dir is not None and (data_dir / "cifar-100-python" / "train").is_file()
    keys = [f"data.data_dir={data_dir}", "data.download=false"] if real else []
    keys += [] if real else ["data.dataset=synthetic"]
    return keys + ([f"data.subset={subset}"] if subset else [])


def engine_trainer(
    augment: list[dict[str, Any]], batch: int, mode: list[str], workdir: Path, base: list[str]
) -> Trainer:
    cfg = load_config("resnet18", [f"data.batch_size={batch}", "data.val_size=0", *base, *mode])
    raw = config_to_dict(cfg)
    raw["augment"] = augment
    cfg = parse_config(raw)
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    trainer = Trainer(cfg, run_dir, run_dir.name, "gpu_check", EventWriter(run_dir / "ev.jsonl"))
    trainer._setup()
    return trainer


def timed_steps(trainer: Trainer, seconds: float, warmup: int = 5) -> dict[str, float]:
    """img/s of the engine's step fed by its loader; the first `warmup` steps (compilation,
    cuDNN autotuning, CUDA graph capture) are timed apart as `warmup_s`."""
    dev = trainer.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    steps = images = 0
    t0 = time.perf_counter()
    start = t0
    epoch = 1
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


def syncs_per_step(trainer: Trainer, steps: int = 20) -> float | None:
    """Host synchronisations per engine step (CUDA's sync debug mode warns on each)."""
    if trainer.device.type != "cuda":
        return None
    dev = trainer.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    trainer.loader.start(1)
    batches = iter(trainer.loader)
    trainer._step(*next(batches), loss_sum, correct)  # warm-up
    sync(dev)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                trainer._step(*next(batches), loss_sum, correct)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught) / steps


def plain_img_per_s(
    batch: int, device: torch.device, seconds: float, model: str
) -> dict[str, float]:
    """The ceiling: a hand-written step on one batch already on the device (bf16 autocast and
    channels_last on CUDA, as the engine's defaults)."""
    from engine.catalog import MODELS

    cuda = device.type == "cuda"
    fmt = torch.channels_last if cuda else torch.contiguous_format
    net = MODELS.build(model, 100).to(device, memory_format=fmt)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=fmt)
    step = plain_step(net, x, torch.randint(0, 100, (batch,), device=device), amp=cuda)

    for _ in range(5 if cuda else 1):
        step()
    sync(device)
    start, images = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        for _ in range(10 if cuda else 1):
            step()
            images += batch
        sync(device)
    return {"img_per_s": images / (time.perf_counter() - start)}


def preset_run(
    workdir: Path, budget_s: float, base: list[str], max_epochs: int = 200
) -> dict[str, Any]:
    """The resnet18 preset, its own config: one probe epoch, then as many as fit (compressed)."""
    probe_cfg = load_config("resnet18", [*base, "train.epochs=1", "eval.test=false"])
    probe_dir = Path(tempfile.mkdtemp(dir=workdir))
    t0 = time.perf_counter()
    probe = Trainer(probe_cfg, probe_dir, "probe", "resnet18", EventWriter(probe_dir / "ev.jsonl"))
    probe.run()
    probe_s = time.perf_counter() - t0
    epoch_s = probe.history[-1]["epoch_s"]
    left = budget_s - probe_s
    epochs = max(1, min(max_epochs, int((left - 20) / max(epoch_s * 1.15, 1e-3))))
    cfg = load_config("resnet18", [*base, f"train.epochs={epochs}"])
    run_dir = Path(tempfile.mkdtemp(dir=workdir))
    start = time.perf_counter()
    trainer = Trainer(cfg, run_dir, "train", "resnet18", EventWriter(run_dir / "ev.jsonl"))
    summary = trainer.run()
    wall = time.perf_counter() - start
    steady = [h["epoch_s"] for h in trainer.history[1:]] or [epoch_s]
    trained = sum(h["epoch_s"] for h in trainer.history) or 1e-9
    overhead = wall / trained  # validation, checkpoints and the test pass, spread over epochs
    return {
        "dataset": summary.get("dataset"),
        "probe_epoch_s": epoch_s,
        "epochs": epochs,
        "wall_s": wall,
        "steady_epoch_s": sum(steady) / len(steady),
        "overhead": overhead,
        "projected_200_epochs_s": 200 * sum(steady) / len(steady) * overhead,
        "img_per_s": summary.get("img_per_s"),
        "test_top1": summary.get("test_top1"),
        "best_val_top1": summary.get("best_val_top1"),
    }


def live_resume(workdir: Path, base: list[str], device: str) -> dict[str, Any]:
    """`python -m engine run` stopped by SIGINT early in its second epoch (after the first
    epoch's checkpoint), then `--resume` to the end. The engine pauses itself at that step (a
    test hook), so the SIGINT lands there however fast the device is."""
    from engine.test_hooks import PAUSE_ENV, is_paused

    cfg = load_config(
        "resnet18",
        [
            *base,
            "train.epochs=2",
            "eval.test=false",
            "train.max_steps_per_epoch=20",
            f"train.device={device}",
        ],
    )
    run_id, run_dir = create_run_dir(workdir / "runs", "resnet18", dump_config(cfg))
    train_size = (cfg.data.subset or 50_000) - cfg.data.val_size
    spe = min(20, train_size // cfg.data.batch_size)
    command = [sys.executable, "-m", "engine", "run", str(run_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    pause_env = {**env, PAUSE_ENV: str(spe + 2)}
    proc = subprocess.Popen(command, cwd=ROOT, env=pause_env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and not is_paused(proc.pid):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGCONT)
    first_rc = proc.wait(timeout=120)
    second = subprocess.run(
        [*command, "--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    events = read_events(run_dir / "events.jsonl")
    resumed = [e for e in events if e.type == "resumed"]
    return {
        "interrupted_rc": first_rc,
        "resume_rc": second.returncode,
        "resumed_at_step": resumed[0].step if resumed else None,
        "expected_step": spe + 2,
        "final": events[-1].type if events else None,
        "status": getattr(events[-1], "status", None) if events else None,
        "ok": second.returncode == 0 and bool(resumed) and events[-1].type == "finished",
        "stderr": second.stderr.strip().splitlines()[-3:],
    }


def guarded(
    result: dict[str, Any], key: str, save: Callable[[], None], fn: Callable[[], Any]
) -> Any:
    """Run one measurement; a failure records its error (the rest go on)."""
    start = time.perf_counter()
    try:
        value = fn()
    except Exception as exc:  # noqa: BLE001 - every measurement is independent
        value = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
        traceback.print_exc()
    if isinstance(value, dict):
        value["measured_in_s"] = round(time.perf_counter() - start, 1)
    result[key] = value
    save()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--budget-s", type=float, default=500.0, help="stop everything by then")
    ap.add_argument("--seconds", type=float, default=4.0, help="timed seconds per measurement")
    ap.add_argument("--cpu-smoke", action="store_true", help="tiny model and sizes on the CPU")
    args = ap.parse_args(argv)
    smoke = args.cpu_smoke
    if not smoke and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device (use --cpu-smoke to check the code on the CPU)")
    device = torch.device("cpu" if smoke else "cuda")
    t_start = time.perf_counter()
    deadline = t_start + args.budget_s
    data_env = os.environ.get("CIFAR_TUI_DATA")
    data_dir = Path(data_env) if data_env else None
    model = "wrn10_2" if smoke else "resnet18"
    base = [f"model.name={model}", f"train.device={device.type}", "data.num_workers=0"]
    base += data_overrides(data_dir, 256 if smoke else None)
    base += ["data.val_size=64", "data.batch_size=32"] if smoke else []
    batches = [32] if smoke else [128, 512]
    seconds = 0.2 if smoke else args.seconds
    workdir = Path(tempfile.mkdtemp(prefix="gpu_check_"))  # never inside --out's folder
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "data": "real" if "data.dataset=synthetic" not in base else "synthetic",
        "plain": {},
        "engine": {},
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")

    reserve = 0.1 if smoke else 0.4 * args.budget_s  # for the preset run and the resume
    try:
        for batch in batches:
            guarded(
                result["plain"],
                str(batch),
                save,
                lambda b=batch: plain_img_per_s(b, device, seconds, model),
            )
        for aug_name, augment in AUGMENTS.items():
            for batch in batches:
                for mode, keys in MODES.items():
                    if mode != "eager" and (batch != batches[-1] or smoke):
                        continue  # compiled modes at the large batch, and not in the smoke run
                    if time.perf_counter() + reserve > deadline:
                        result["engine"][f"{aug_name} b{batch} {mode}"] = {"skipped": "time"}
                        continue

                    def measure(a=augment, b=batch, k=keys, m=mode) -> dict[str, Any]:
                        trainer = engine_trainer(a, b, k, workdir, base)
                        out = timed_steps(trainer, seconds, warmup=1 if smoke else 5)
                        if m == "eager":
                            out["syncs_per_step"] = syncs_per_step(trainer)
                        plain = result["plain"].get(str(b), {}).get("img_per_s")
                        if plain:
                            out["engine_over_plain"] = out["img_per_s"] / plain
                        return out

                    guarded(result["engine"], f"{aug_name} b{batch} {mode}", save, measure)
        left = deadline - time.perf_counter() - (30 if smoke else 150)
        last = 1 if smoke else 200
        guarded(
            result, "resnet18_preset", save, lambda: preset_run(workdir, max(left, 1), base, last)
        )
        guarded(result, "live_resume", save, lambda: live_resume(workdir, base, device.type))
    finally:
        result["total_s"] = time.perf_counter() - t_start
        save()
        shutil.rmtree(workdir, ignore_errors=True)
    print_table(result)
    return result


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['device']}, torch {result['torch']}, {result['data']} data")
    for batch, row in result["plain"].items():
        print(f"plain b{batch:<5} {row.get('img_per_s', 0):>10.0f} img/s {row.get('error', '')}")
    print(f"{'engine':<28} {'img/s':>9} {'of plain':>9} {'syncs':>6} {'warm-up s':>10}")
    for name, row in result["engine"].items():
        if "img_per_s" not in row:
            print(f"{name:<28} {row}")
            continue
        ratio = row.get("engine_over_plain")
        syncs = row.get("syncs_per_step")
        print(
            f"{name:<28} {row['img_per_s']:>9.0f} {ratio if ratio is None else f'{ratio:.2f}':>9} "
            f"{'-' if syncs is None else f'{syncs:.1f}':>6} {row.get('warmup_s', 0):>10.1f}"
        )
    run = result.get("resnet18_preset", {})
    if "epochs" in run:
        print(
            f"resnet18 preset ({run['dataset']}): {run['epochs']} epochs in {run['wall_s']:.0f} s, "
            f"test top-1 {run['test_top1']}, "
            f"200 epochs projected {run['projected_200_epochs_s']:.0f} s"
        )
    else:
        print(f"resnet18 preset: {run}")
    print(f"live resume: {result.get('live_resume')}")


if __name__ == "__main__":
    main()
