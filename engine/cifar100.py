"""The official CIFAR-100 files: reading and verifying the python pickles; downloading them
(`engine.cifar_download`, torch-free, like `engine.datafiles`, which finds them).

Every problem with a file (missing, unreadable, damaged, foreign, a bad archive, no network)
raises `DataError` with a message that says what is wrong and what to do about it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine import cifar_download
from engine.cifar_download import CIFAR100_MD5, CIFAR100_URL, ENV_URL
from engine.cifar_pickle import entry as _get
from engine.cifar_pickle import image_rows
from engine.cifar_pickle import load_pickle as _load_pickle
from engine.data import NUM_CLASSES, NUM_COARSE, ImageSet, Loaded
from engine.datafiles import find_cifar100, put_files_hint, resolve_data_dir
from engine.download import text_progress
from engine.errors import DataError

__all__ = ["CIFAR100_MD5", "CIFAR100_URL", "ENV_URL", "download_cifar100", "read_cifar100"]


# --------------------------------------------------------------------------- reading the pickles


def _labels(d: dict[bytes, Any], key: bytes, n: int, high: int, path: Path) -> torch.Tensor:
    try:
        arr = np.asarray(_get(d, key, path), dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"{path}: {key!r} is not a list of integers ({e})") from e
    if arr.shape != (n,):
        raise DataError(f"{path}: {key!r} has shape {arr.shape}, expected ({n},)")
    if n and (arr.min() < 0 or arr.max() >= high):
        raise DataError(f"{path}: {key!r} has values outside 0..{high - 1}")
    return torch.from_numpy(arr)


def _read_split(path: Path) -> tuple[ImageSet, torch.Tensor]:
    d = _load_pickle(path)
    data = image_rows(d, path)
    n = data.shape[0]
    fine = _labels(d, b"fine_labels", n, NUM_CLASSES, path)
    coarse = _labels(d, b"coarse_labels", n, NUM_COARSE, path)
    if not data.flags.writeable or not data.flags.c_contiguous:
        data = np.array(data, copy=True, order="C")
    # each row: 1024 red, 1024 green, 1024 blue values, each plane row-major
    images = torch.from_numpy(data).reshape(n, 3, 32, 32)
    return ImageSet(images, fine), coarse


def _names(d: dict[bytes, Any], key: bytes, count: int, path: Path) -> list[str]:
    raw = _get(d, key, path)
    if not isinstance(raw, list | tuple) or len(raw) != count:
        got = len(raw) if isinstance(raw, list | tuple) else type(raw).__name__
        raise DataError(f"{path}: {key!r} should list {count} names, got {got}")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in raw]


def _fine_to_coarse(fine: torch.Tensor, coarse: torch.Tensor, path: Path) -> list[int]:
    mapping = torch.full((NUM_CLASSES,), -1, dtype=torch.int64)
    mapping[fine] = coarse  # any one of the pairs; checked below
    if (mapping[fine] != coarse).any():
        raise DataError(f"{path}: a fine label appears under two different coarse labels")
    missing = (mapping < 0).nonzero().flatten().tolist()
    if missing:
        raise DataError(f"{path}: fine classes {missing[:10]} have no images")
    return [int(c) for c in mapping.tolist()]


def read_cifar100(folder: Path) -> Loaded:
    """Read the official python-format files in `folder`.

    Returns (train, test, fine names, coarse names, fine_to_coarse), in the canonical order.
    """
    folder = Path(folder)
    meta = _load_pickle(folder / "meta")
    fine_names = _names(meta, b"fine_label_names", NUM_CLASSES, folder / "meta")
    coarse_names = _names(meta, b"coarse_label_names", NUM_COARSE, folder / "meta")
    train, train_coarse = _read_split(folder / "train")
    test, test_coarse = _read_split(folder / "test")
    mapping = _fine_to_coarse(train.labels, train_coarse, folder / "train")
    if (torch.tensor(mapping)[test.labels] != test_coarse).any():
        raise DataError(f"{folder / 'test'}: coarse labels disagree with the training file")
    return train, test, fine_names, coarse_names, mapping


# --------------------------------------------------------------------------- downloading


def download_cifar100(data_dir: Path, url: str | None = None, progress: bool = True) -> Path:
    """Download and unpack CIFAR-100 into `data_dir` (`engine.cifar_download`), each pickle
    verified before it is moved into place; returns the `cifar-100-python` folder.

    The URL is `url`, else $CIFAR_TUI_CIFAR100_URL, else the official one (whose MD5 is checked).
    `progress`: a progress line on stderr.
    """
    bar = text_progress("downloading CIFAR-100") if progress else None
    md5 = CIFAR100_MD5 if url == CIFAR100_URL else None
    return cifar_download.fetch_cifar100(data_dir, url, md5, progress=bar, verify=read_cifar100)


def read_cifar100_source(
    data_dir: str | os.PathLike[str] | None, *, download: bool, progress: bool
) -> Loaded:
    """CIFAR-100 from `data_dir` (else $CIFAR_TUI_DATA, ./data), downloaded when missing and
    allowed."""
    root = resolve_data_dir(data_dir)
    folder = find_cifar100(root)
    if folder is None:
        if not download:
            raise DataError(
                f"CIFAR-100 not found in {root} and downloading is off: {put_files_hint(root)}"
            )
        folder = download_cifar100(root, progress=progress)
    return read_cifar100(folder)
