"""Where the CIFAR-100 files live, checked without torch (the launcher checks before a run)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import DataError

FOLDER_NAME = "cifar-100-python"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
REQUIRED_FILES = ("train", "test", "meta")
ENV_DATA_DIR = "CIFAR_TUI_DATA"
WHERE_HINT = "or pass --data-dir / set " + ENV_DATA_DIR  # the command line's way to move it


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data folder: the argument, else $CIFAR_TUI_DATA, else ./data."""
    if data_dir is None or str(data_dir) == "":
        data_dir = os.environ.get(ENV_DATA_DIR) or "data"
    return Path(data_dir).expanduser()


def has_files(folder: Path) -> bool:
    return all((folder / name).is_file() for name in REQUIRED_FILES)


def find_cifar100(data_dir: Path) -> Path | None:
    """The folder holding `train`, `test` and `meta`: `data_dir/cifar-100-python` or `data_dir`."""
    data_dir = Path(data_dir)
    for folder in (data_dir / FOLDER_NAME, data_dir):
        if has_files(folder):
            return folder
    return None


def put_files_hint(data_dir: Path, where: str = WHERE_HINT) -> str:
    """Where the files go; `where`: how to point at another folder (the dashboard names its
    data.data_dir field instead of the command line's flag)."""
    return f"put the dataset at {data_dir / FOLDER_NAME} (files train, test, meta) {where}"


def check_cifar100_files(data_dir: str | None, download: bool, where: str = WHERE_HINT) -> None:
    """Refuse, before a run starts, a dataset folder that is incomplete or absent (no download).

    A folder that is simply missing is fine when downloading is on: the engine fetches it.
    `where`: see `put_files_hint`.
    """
    root = resolve_data_dir(data_dir)
    if find_cifar100(root) is not None:
        return
    for folder in (root / FOLDER_NAME, root):
        present = [name for name in REQUIRED_FILES if (folder / name).exists()]
        if present:
            missing = [name for name in REQUIRED_FILES if name not in present]
            raise DataError(
                f"CIFAR-100 folder {folder} is incomplete: missing {', '.join(missing)}; "
                + put_files_hint(root, where)
            )
    if not download:
        raise DataError(
            f"CIFAR-100 not found in {root} and downloading is off: " + put_files_hint(root, where)
        )
