"""Fetching the CIFAR-100 archive and unpacking it safely (torch-free: the dashboard's first run
downloads with it; the engine passes `engine.cifar100.read_cifar100` as `verify`).

Every failure raises `DataError` saying what went wrong and where the files go instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from engine import download
from engine.datafiles import ARCHIVE_NAME, FOLDER_NAME, REQUIRED_FILES, put_files_hint
from engine.errors import DataError

CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
ENV_URL = "CIFAR_TUI_CIFAR100_URL"
ENV_MD5 = "CIFAR_TUI_CIFAR100_MD5"  # the MD5 of the archive behind a $CIFAR_TUI_CIFAR100_URL

Verify = Callable[[Path], object]  # reads an unpacked folder, raising DataError when damaged


def source() -> tuple[str, str | None]:
    """(URL, MD5): $CIFAR_TUI_CIFAR100_URL (and its $CIFAR_TUI_CIFAR100_MD5), else the official
    archive and its published MD5."""
    url = os.environ.get(ENV_URL)
    if url:
        return url, os.environ.get(ENV_MD5) or None
    return CIFAR100_URL, CIFAR100_MD5


def _fetch(url: str, dest: Path, md5: str | None, progress: download.ProgressFn | None) -> None:
    download.fetch(url, dest, md5=md5, progress=progress)


def network_error(url: str, reason: str, data_dir: Path, offline: bool = True) -> DataError:
    why = "you appear to be offline" if offline else "the download failed"
    return DataError(
        f"could not download CIFAR-100 from {url} ({reason}); {why}: {put_files_hint(data_dir)}"
    )


def fetch_cifar100(
    data_dir: Path,
    url: str | None = None,
    md5: str | None = None,
    progress: download.ProgressFn | None = None,
    verify: Verify | None = None,
) -> Path:
    """Download and unpack CIFAR-100 into `data_dir`; returns the `cifar-100-python` folder.

    `url` / `md5`: else `source()`. An archive already lying at `data_dir/cifar-100-python.tar.gz`
    is used without downloading (and kept). A partial download stays as `.part` and the next call
    continues it; a failure that leaves nothing removes the folders it made (a mistyped
    --data-dir leaves no tree).
    """
    data_dir = Path(data_dir)
    if url is None:
        url, md5 = source()
    made = [p for p in (data_dir, *data_dir.parents) if not p.exists()]
    try:
        return _download(data_dir, url, md5, progress, verify)
    except DataError:
        for folder in made:  # deepest first; only those still empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def _download(
    data_dir: Path,
    url: str,
    md5: str | None,
    progress: download.ProgressFn | None,
    verify: Verify | None,
) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the data folder {data_dir}: {e.strerror or e}") from e
    archive = data_dir / ARCHIVE_NAME
    if archive.is_file():  # placed there by hand (e.g. on an offline machine): use it, keep it
        try:
            return unpack(archive, data_dir, verify)
        except DataError as e:
            raise DataError(f"{e}; delete {archive} to download it again") from e
    part = download.part_path(archive)
    try:
        _fetch(url, archive, md5, progress)
    except download.HTTPStatusError as e:
        part.unlink(missing_ok=True)
        raise network_error(url, str(e), data_dir, offline=False) from None
    except download.ChecksumError as e:
        raise DataError(f"the archive downloaded from {url} to {archive}: {e}; try again") from None
    except download.DownloadError as e:
        if part.is_file() and part.stat().st_size == 0:
            part.unlink()
        raise network_error(url, str(e), data_dir, offline=e.offline) from None
    if not archive.is_file():
        raise network_error(url, "no file was written", data_dir, offline=False)
    try:
        folder = unpack(archive, data_dir, verify)
    except DataError as e:
        archive.unlink(missing_ok=True)
        raise DataError(f"{e}; the downloaded file was removed") from e
    archive.unlink(missing_ok=True)  # unpacked and verified: the 161 MB archive is not needed
    return folder


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


def unpack(archive: Path, data_dir: Path, verify: Verify | None = None) -> Path:
    """Check `archive`, unpack its cifar-100-python/ folder into `data_dir` (through a temporary
    folder, so a failure leaves nothing half-written), `verify` it, then move it into place."""
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
        if verify is not None:
            try:
                verify(unpacked)
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
