"""Where the CIFAR-100 files live, checked without torch (the launcher checks before a run).

The one search order: the folder given (`--data-dir`, `data.data_dir`), then $CIFAR_TUI_DATA,
then `./data`, then the user's cache folder (`$XDG_CACHE_HOME/cifar-tui`, by default
`~/.cache/cifar-tui`). Where none holds the files, a download goes to the folder given (flag,
then variable), else to the cache folder: one copy for every checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import DataError

FOLDER_NAME = "cifar-100-python"
ARCHIVE_NAME = "cifar-100-python.tar.gz"
REQUIRED_FILES = ("train", "test", "meta")
ENV_DATA_DIR = "CIFAR_TUI_DATA"
WHERE_HINT = "or pass --data-dir / set " + ENV_DATA_DIR  # the command line's way to move it


def cache_folder() -> Path:
    """The user's cache folder for the dataset: `$XDG_CACHE_HOME/cifar-tui`, else
    `~/.cache/cifar-tui`."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "cifar-tui"


def _given(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """The folders named by the user: the argument, then $CIFAR_TUI_DATA."""
    named = [data_dir, os.environ.get(ENV_DATA_DIR)]
    return [Path(d).expanduser() for d in named if d is not None and str(d) != ""]


def search_folders(data_dir: str | os.PathLike[str] | None) -> list[Path]:
    """Where CIFAR-100 is looked for, in order (see the module docstring); no repeats."""
    out: list[Path] = []
    for folder in [*_given(data_dir), Path("data"), cache_folder()]:
        if folder not in out:
            out.append(folder)
    return out


def download_folder(data_dir: str | os.PathLike[str] | None) -> Path:
    """Where a missing dataset is downloaded: the folder given, else the cache folder."""
    given = _given(data_dir)
    return given[0] if given else cache_folder()


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The data folder: the first of `search_folders` that holds CIFAR-100, else where it
    would be downloaded (`download_folder`)."""
    for folder in search_folders(data_dir):
        if find_cifar100(folder) is not None:
            return folder
    return download_folder(data_dir)


def searched_text(data_dir: str | os.PathLike[str] | None) -> str:
    """'./data or /home/me/.cache/cifar-tui': the folders looked in, for messages."""
    home = str(Path.home())

    def show(folder: Path) -> str:
        if not folder.is_absolute():
            return f"./{folder}"
        text = str(folder)
        return "~" + text[len(home) :] if text.startswith(home + os.sep) else text

    shown = [show(f) for f in search_folders(data_dir)]
    return ", ".join(shown[:-1]) + " or " + shown[-1] if len(shown) > 1 else shown[0]


def synthetic_banner(data_dir: str | os.PathLike[str] | None = None) -> str:
    """The first run's line when it trains on the synthetic set for want of the real one."""
    return f"SYNTHETIC: put cifar-100-python in {searched_text(data_dir)} for the real thing"


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
            f"CIFAR-100 not found in {searched_text(data_dir)} and downloading is off: "
            + put_files_hint(root, where)
        )
