"""The test images behind a run's predictions, torch-free: a synthetic run keeps them in its
eval.npz (`test_images`); for CIFAR-100 they are read from the `test` file of the folder its
config.yaml names (`data.data_dir`, resolved as the engine does)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

from engine import strict_yaml
from engine.cifar_pickle import read_images
from engine.datafiles import FOLDER_NAME, find_cifar100, resolve_data_dir
from engine.errors import DataError

CONFIG_FILE = "config.yaml"


class ImagesUnavailable(Exception):
    """The images cannot be shown: one line saying why (and where they were looked for)."""


def _data_config(run_dir: Path) -> tuple[str | None, str | None]:
    """(data.dataset, data.data_dir) of the run's config.yaml; (None, None) when unreadable."""
    try:
        config = strict_yaml.load((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None, None
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        return None, None
    dataset, data_dir = data.get("dataset"), data.get("data_dir")
    return (
        dataset if isinstance(dataset, str) else None,
        data_dir if isinstance(data_dir, str) else None,
    )


@functools.lru_cache(maxsize=2)
def _test_file(path: Path, mtime_ns: int) -> np.ndarray:
    """A CIFAR test file's images (cached while the file is unchanged)."""
    return read_images(path)


def cifar_test_images(data_dir: str | None) -> np.ndarray:
    """All CIFAR-100 test images, uint8 [10000, 3, 32, 32], in file order. Raises
    ImagesUnavailable naming the folders looked in, or the damaged file."""
    root = resolve_data_dir(data_dir)
    folder = find_cifar100(root)
    if folder is None:
        how = (
            f"data.data_dir {data_dir}"
            if data_dir
            else "no data.data_dir: $CIFAR_TUI_DATA or ./data"
        )
        raise ImagesUnavailable(
            f"CIFAR-100 test file not found: looked in {root / FOLDER_NAME} and {root} ({how})"
        )
    path = folder / "test"
    try:
        return _test_file(path.resolve(), path.stat().st_mtime_ns)
    except (OSError, DataError) as exc:
        raise ImagesUnavailable(str(exc)) from None


def run_test_images(
    run_dir: Path, stored: np.ndarray | None, synthetic: bool, needed: int
) -> np.ndarray:
    """The run's test images: `stored` (eval.npz's), else the CIFAR-100 test file. `needed`: the
    number of test images the predictions cover. Raises ImagesUnavailable."""
    if stored is not None:
        return stored
    dataset, data_dir = _data_config(Path(run_dir))
    if synthetic or dataset == "synthetic":
        raise ImagesUnavailable(
            "this synthetic run's eval.npz predates saved test images: evaluate it again (e)"
        )
    images = cifar_test_images(data_dir)
    if len(images) < needed:
        raise ImagesUnavailable(
            f"the CIFAR-100 test file holds {len(images)} images, the predictions {needed}"
        )
    return images
