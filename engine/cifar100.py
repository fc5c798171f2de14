"""The official CIFAR-100 files: reading and verifying the python pickles, and downloading and
unpacking the archive (`engine.datafiles` finds them, torch-free).

Every problem with a file (missing, unreadable, damaged, foreign, a bad archive, no network)
raises `DataError` with a message that says what is wrong and what to do about it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from engine.cifar_pickle import entry as _get
from engine.cifar_pickle import image_rows
from engine.cifar_pickle import load_pickle as _load_pickle
from engine.data import NUM_CLASSES, NUM_COARSE, ImageSet, Loaded
from engine.datafiles import (
    ARCHIVE_NAME,
    FOLDER_NAME,
    REQUIRED_FILES,
    find_cifar100,
    put_files_hint,
    resolve_data_dir,
)
from engine.errors import DataError

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
DOWNLOAD_TIMEOUT_S = 30.0
ENV_URL = "CIFAR_TUI_CIFAR100_URL"


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


def _network_error(url: str, reason: str, data_dir: Path, offline: bool = True) -> DataError:
    why = "you appear to be offline" if offline else "the download failed"
    return DataError(
        f"could not download CIFAR-100 from {url} ({reason}); {why}: {put_files_hint(data_dir)}"
    )


def _fetch(url: str, dest: Path, md5: str | None, progress: bool) -> None:
    """Download `url` to `dest` (raises urllib/OS errors; RuntimeError on an MD5 mismatch)."""
    if progress:
        from torchvision.datasets.utils import download_url

        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        try:
            download_url(url, str(dest.parent), dest.name, md5=md5)
        finally:
            socket.setdefaulttimeout(old)
        return
    request = urllib.request.Request(url, headers={"User-Agent": "cifar-tui"})
    with (
        urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response,
        open(dest, "wb") as f,
    ):
        shutil.copyfileobj(response, f, 1 << 20)
    if md5 is not None:
        from torchvision.datasets.utils import check_md5

        if not check_md5(str(dest), md5):
            raise RuntimeError("File not found or corrupted.")


def _member_name(member: tarfile.TarInfo, archive: Path) -> str:
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise DataError(
            f"refusing to extract {archive}: member {name!r} has an absolute path or '..'"
        )
    if not (member.isfile() or member.isdir()):
        raise DataError(f"refusing to extract {archive}: member {name!r} is not a plain file")
    return "/".join(p for p in parts if p != ".")


def _extract_archive(archive: Path, data_dir: Path) -> Path:
    """Check `archive`, unpack its cifar-100-python/ folder into `data_dir`, verify the pickles."""
    try:
        work = Path(tempfile.mkdtemp(prefix=".cifar-100-unpack-", dir=data_dir))
    except OSError as e:
        raise DataError(f"cannot unpack {archive} into {data_dir}: {e.strerror or e}") from e
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()  # reads the whole stream: finds truncation
                wanted = []
                names = set()
                for m in members:
                    name = _member_name(m, archive)
                    if name == FOLDER_NAME or name.startswith(FOLDER_NAME + "/"):
                        wanted.append(m)
                        if m.isfile():
                            names.add(name)
                missing = [f for f in REQUIRED_FILES if f"{FOLDER_NAME}/{f}" not in names]
                if missing:
                    raise DataError(
                        f"the archive {archive} does not contain "
                        + ", ".join(f"{FOLDER_NAME}/{f}" for f in missing)
                        + "; it is not the CIFAR-100 python archive"
                    )
                tar.extractall(work, members=wanted, filter="data")
        except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
            raise DataError(
                f"the archive {archive} is corrupt or truncated ({type(e).__name__}: {e})"
            ) from e
        unpacked = work / FOLDER_NAME
        try:
            read_cifar100(unpacked)
        except DataError as e:  # name the member inside the archive, not the temporary folder
            raise DataError(str(e).replace(str(unpacked), f"{archive}:{FOLDER_NAME}")) from e
        target = data_dir / FOLDER_NAME
        try:
            target.mkdir(exist_ok=True)
            for item in unpacked.iterdir():
                if item.is_file():
                    os.replace(item, target / item.name)
        except OSError as e:
            raise DataError(f"cannot move the unpacked files into {target}: {e}") from e
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def download_cifar100(data_dir: Path, url: str | None = None, progress: bool = True) -> Path:
    """Download and unpack CIFAR-100 into `data_dir`; returns the `cifar-100-python` folder.

    The URL is `url`, else $CIFAR_TUI_CIFAR100_URL, else the official one (whose MD5 is checked).
    An archive already lying at `data_dir/cifar-100-python.tar.gz` is used without downloading.
    A download that fails removes the folders it made (a mistyped --data-dir leaves no tree).
    """
    data_dir = Path(data_dir)
    made = [p for p in (data_dir, *data_dir.parents) if not p.exists()]
    try:
        return _download(data_dir, url or os.environ.get(ENV_URL) or CIFAR100_URL, progress)
    except DataError:
        for folder in made:  # deepest first; only those still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _download(data_dir: Path, url: str, progress: bool) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {data_dir}: {e.strerror or e}") from e
    archive = data_dir / ARCHIVE_NAME

    if archive.is_file():  # placed there by hand (e.g. on an offline machine): use it, keep it
        try:
            return _extract_archive(archive, data_dir)
        except DataError as e:
            raise DataError(f"{e}; delete {archive} to download it again") from e

    part = data_dir / (ARCHIVE_NAME + ".part")
    part.unlink(missing_ok=True)
    md5 = CIFAR100_MD5 if url == CIFAR100_URL else None
    try:
        _fetch(url, part, md5, progress)
    except urllib.error.HTTPError as e:
        e.close()  # it holds the open response
        part.unlink(missing_ok=True)
        raise _network_error(url, f"HTTP {e.code} {e.reason}", data_dir, offline=False) from e
    except urllib.error.URLError as e:
        part.unlink(missing_ok=True)
        raise _network_error(url, str(e.reason), data_dir) from e
    except (OSError, HTTPException) as e:
        part.unlink(missing_ok=True)
        raise _network_error(url, str(e) or type(e).__name__, data_dir) from e
    except ValueError as e:  # e.g. "unknown url type"
        part.unlink(missing_ok=True)
        raise _network_error(url, str(e), data_dir, offline=False) from e
    except RuntimeError as e:  # torchvision: MD5 mismatch or nothing written; too many redirects
        mismatch = md5 is not None and part.is_file()
        part.unlink(missing_ok=True)
        if mismatch:
            raise DataError(
                f"the archive downloaded from {url} to {archive} failed its MD5 check "
                f"(expected {md5}); it was removed, try again"
            ) from e
        raise _network_error(url, str(e), data_dir, offline=False) from e
    if not part.is_file():
        raise _network_error(url, "no file was written", data_dir, offline=False)
    os.replace(part, archive)
    try:
        folder = _extract_archive(archive, data_dir)
    except DataError as e:
        archive.unlink(missing_ok=True)
        raise DataError(f"{e}; the downloaded file was removed") from e
    archive.unlink(missing_ok=True)  # unpacked and verified: the 161 MB archive is not needed
    return folder


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
