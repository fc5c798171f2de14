"""Augmentation throughput: the batched path vs the per-image torchvision path, side by side.

    .venv/bin/python -m bench.augment_throughput [--images 2048] [--batch 128] [--repeats 3]
        [--threads N] [--pipeline NAME ...]

Both paths run the same pipeline (default: the write-up's crop 4 + flip + rotation 15 +
AutoAugment CIFAR-10 + random erasing) on the same uint8 images (real CIFAR-100 test images when
the shared copy is beside the checkout, else seeded noise), on the CPU, in this one process: the
per-image path calls `engine.augment.build_pipeline(...)` image by image (no DataLoader), the
batched path calls `engine.augment_batch.build_batch_pipeline(...)` on batches. Best of `repeats`
for each; prints images/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from engine.augment import build_pipeline  # noqa: E402
from engine.augment_batch import build_batch_pipeline  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "cifar-100-python" / "test"
DEFAULT = [
    ("random_crop", {"padding": 4}),
    ("hflip", {}),
    ("rotation", {"degrees": 15}),
    ("autoaugment", {}),
    ("random_erasing", {}),
]


def load_images(n: int) -> tuple[torch.Tensor, str]:
    if REAL.is_file():
        with REAL.open("rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"][:n])
        return torch.from_numpy(data).view(-1, 3, 32, 32).clone(), "real CIFAR-100 test images"
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8), "synthetic"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--pipeline", nargs="*", help="augmentation names (default options)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    comps = [(n, {}) for n in args.pipeline] if args.pipeline else DEFAULT
    images, source = load_images(args.images)
    n = len(images)

    per_image = build_pipeline(comps)
    batched = build_batch_pipeline(comps)
    g = torch.Generator().manual_seed(0)
    batched(images[: args.batch], g)  # warm-up
    for i in range(min(64, n)):
        per_image(images[i])

    def time_per_image() -> float:
        start = time.perf_counter()
        for i in range(n):
            per_image(images[i])
        return time.perf_counter() - start

    def time_batched() -> float:
        start = time.perf_counter()
        for s in range(0, n, args.batch):
            batched(images[s : s + args.batch], g)
        return time.perf_counter() - start

    t_single = min(time_per_image() for _ in range(args.repeats))
    t_batch = min(time_batched() for _ in range(args.repeats))
    names = " + ".join(name for name, _ in comps)
    print(f"pipeline: {names}")
    print(f"{n} {source}, CPU, {torch.get_num_threads()} torch threads, batch {args.batch}")
    print(f"{'per-image torchvision':>24s} {n / t_single:10.0f} images/s")
    print(f"{'batched':>24s} {n / t_batch:10.0f} images/s")
    print(f"{'ratio':>24s} {t_single / t_batch:10.1f} x")


if __name__ == "__main__":
    main()
