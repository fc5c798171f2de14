"""Augmentation preview for the dashboard: `python -m engine preview CONFIG_YAML OUT_NPZ`.

Loads the data named by the config's `data` section, takes `count` training images (a seeded,
spread-out pick) and applies the config's augmentation pipeline to each. The torch-free UI reads
the npz: `original` and `augmented` uint8 [N, 3, 32, 32], `labels` int64 [N], `class_names` [100].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.config import RunConfig


def make_preview(cfg: RunConfig, out: Path, *, count: int = 16, seed: int = 0) -> Path:
    """Write the preview npz for `cfg` to `out` (atomically) and return `out`."""

    from engine import build

    bundle = build.load_run_data(cfg, progress=False)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(bundle.train), generator=g)[:count]
    images = bundle.train.images[pick]
    torch.manual_seed(seed)
    transform = build.build_image_augment(cfg)
    augmented = torch.stack([transform(img) for img in images])
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        original=images.numpy().astype(np.uint8),
        augmented=augmented.numpy().astype(np.uint8),
        labels=bundle.train.labels[pick].numpy(),
        class_names=np.array(bundle.class_names),
        synthetic=np.array(bundle.synthetic),
    )
    tmp.replace(out)
    return out
