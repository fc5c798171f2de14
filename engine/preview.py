"""Augmentation preview for the dashboard.

One draw: `python -m engine preview CONFIG_YAML OUT_NPZ`. Many draws from one warm process:
`python -m engine.preview --serve`, which reads one JSON request per line on stdin
(`{"config": YAML text, "out": path, "count": n, "seed": s}`) and answers on stdout with
`{"progress": text}` lines, then `{"done": path}` or `{"error": one line}`; torch is imported and
the decoded training set kept between draws, so a new draw costs only the augmentation.

A draw loads the data named by the config's `data` section, takes `count` training images (a
seeded, spread-out pick) and applies the config's augmentation pipeline to each. The torch-free
UI reads the npz: `original` and `augmented` uint8 [N, 3, 32, 32], `labels` int64 [N],
`class_names` [100]. A draw that fails leaves no folder it created behind (an empty `./data`
after a failed download).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from engine.config import RunConfig, parse_config
from engine.datafiles import resolve_data_dir
from engine.errors import BadInputError
from engine.strict_yaml import load as load_yaml

Progress = Callable[[str], None]
_CACHE: dict[tuple[Any, ...], Any] = {}  # data key -> DataBundle, kept by a serving process


def _data_key(cfg: RunConfig) -> tuple[Any, ...]:
    d = cfg.data
    return (d.dataset, str(resolve_data_dir(d.data_dir)), d.val_size, d.subset, cfg.train.seed)


def _missing_parents(folder: Path) -> list[Path]:
    """`folder` and its parents that do not exist yet, innermost first."""
    out = []
    for p in (folder, *folder.parents):
        if p.exists():
            break
        out.append(p)
    return out


def _remove_if_empty(created: list[Path]) -> None:
    for p in created:  # innermost first
        try:
            p.rmdir()  # only an empty folder goes
        except OSError:
            return


def load_preview_data(cfg: RunConfig, *, cache: bool = False) -> Any:
    """The DataBundle `cfg.data` names; with `cache`, kept for the next draw of the same data.
    Folders this call created are removed again when it fails and they are empty."""
    from engine import build

    key = _data_key(cfg)
    if cache and key in _CACHE:
        return _CACHE[key]
    created = _missing_parents(resolve_data_dir(cfg.data.data_dir))
    try:
        bundle = build.load_run_data(cfg, progress=False)
    except BaseException:
        _remove_if_empty(created)
        raise
    if cache:
        _CACHE.clear()  # one data set at a time: CIFAR-100 decoded is ~180 MB
        _CACHE[key] = bundle
    return bundle


def make_preview(
    cfg: RunConfig,
    out: Path,
    *,
    count: int = 16,
    seed: int = 0,
    cache: bool = False,
    progress: Progress | None = None,
) -> Path:
    """Write the preview npz for `cfg` to `out` (atomically) and return `out`."""
    from engine import build

    say = progress or (lambda text: None)
    say(f"loading {cfg.data.dataset} ...")
    bundle = load_preview_data(cfg, cache=cache)
    say(f"augmenting {count} images ...")
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


def _reply(stream: IO[str], **fields: Any) -> None:
    stream.write(json.dumps(fields) + "\n")
    stream.flush()


def serve(requests: IO[str], replies: IO[str]) -> int:
    """Answer preview requests until stdin closes (see the module's docstring)."""
    for line in requests:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            cfg = parse_config(load_yaml(request["config"]))
            out = make_preview(
                cfg,
                Path(request["out"]),
                count=int(request.get("count", 16)),
                seed=int(request.get("seed", 0)),
                cache=True,
                progress=lambda text: _reply(replies, progress=text),
            )
        except BadInputError as exc:
            _reply(replies, error=str(exc))
        except Exception as exc:  # noqa: BLE001 - one request failed; the next may not
            _reply(replies, error=f"{type(exc).__name__}: {exc}")
        else:
            _reply(replies, done=str(out))
    return 0


if __name__ == "__main__":
    if sys.argv[1:] != ["--serve"]:
        sys.exit("usage: python -m engine.preview --serve (one JSON request per line on stdin)")
    sys.exit(serve(sys.stdin, sys.stdout))
