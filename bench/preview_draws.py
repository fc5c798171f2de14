"""Seconds per augmentation-preview draw: one engine process per draw (before: `python -m engine
preview`, what the dialog ran for every `r`) against the dialog's warm engine (after:
tui.orchestration.preview_engine, torch imported and the data decoded once).

    python -m bench.preview_draws [--data-dir ../shared/data] [--draws 4]

The quickstart preset's augmentations (the write-up's full recipe when `--full`) on real
CIFAR-100 when `--data-dir` holds it, else the synthetic set. Prints one row per draw, side by
side, with the ratio, then one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import FULL_AUGMENT
from engine.config import dump_config, load_config
from engine.datafiles import find_cifar100
from tui.orchestration.preview_engine import PreviewEngine, engine_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--full", action="store_true", help="the write-up's full augmentation")
    args = parser.parse_args()

    real = find_cifar100(Path(args.data_dir)) is not None
    overrides = [f"data.data_dir={args.data_dir}", "data.download=false"] if real else []
    overrides += [] if real else ["data.dataset=synthetic"]
    cfg = load_config("quickstart", overrides)
    if args.full:
        cfg = load_config("quickstart", [*overrides, f"augment={json.dumps(FULL_AUGMENT)}"])
    config_yaml = dump_config(cfg)

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.yaml"
        cfg_path.write_text(config_yaml)
        before = []
        for seed in range(args.draws):
            out = Path(tmp) / f"before-{seed}.npz"
            start = time.perf_counter()
            cmd = [sys.executable, "-m", "engine", "preview", str(cfg_path), str(out)]
            cmd += ["--count", str(args.count), "--seed", str(seed)]
            subprocess.run(cmd, check=True, env=engine_env(), stdin=subprocess.DEVNULL)
            before.append(time.perf_counter() - start)
        engine = PreviewEngine()
        after = []
        try:
            for seed in range(args.draws):
                out = Path(tmp) / f"after-{seed}.npz"
                start = time.perf_counter()
                error = engine.draw(config_yaml, out, count=args.count, seed=seed, timeout=300)
                assert error is None, error
                after.append(time.perf_counter() - start)
        finally:
            engine.close()

    data = "CIFAR-100" if real else "synthetic"
    print(f"preview draws of {args.count} images, {data}, augment: {[a.name for a in cfg.augment]}")
    print(f"{'draw':>4}  {'one process each (s)':>20}  {'warm engine (s)':>15}  {'ratio':>6}")
    for i, (b, a) in enumerate(zip(before, after, strict=True), 1):
        print(f"{i:>4}  {b:>20.2f}  {a:>15.2f}  {b / a:>6.1f}x")
    print(json.dumps({"data": data, "count": args.count, "before_s": before, "after_s": after}))


if __name__ == "__main__":
    main()
