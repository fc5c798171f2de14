"""Datasets: the real CIFAR-100 (read from the official python pickles) and a synthetic stand-in.

Everything is held in memory as uint8 tensors ([N, 3, 32, 32] images, int64 labels); the training
loop normalises with `DataBundle.mean` / `DataBundle.std`, which are computed from the images it
actually trains on.

User-facing problems (missing files, corrupt archive, no network, bad sizes) raise `DataError`,
whose message says what is wrong and what to do about it.
"""

from __future__ import annotations

import codecs
import importlib
import os
import pickle
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from engine.catalog import DATASETS
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

NUM_CLASSES = 100
NUM_COARSE = 20
DOWNLOAD_TIMEOUT_S = 30.0
ENV_URL = "CIFAR_TUI_CIFAR100_URL"


# --------------------------------------------------------------------------- containers


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images (uint8 [N, 3, 32, 32]) with their fine labels (int64 [N])."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 [N, 3, H, W], got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be int64 [{self.images.shape[0]}], got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> ImageSet:
        """The images at `index` (a 1-D integer tensor), in that order."""
        index = torch.as_tensor(index, dtype=torch.int64)
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True, eq=False)
class DataBundle:
    """Everything training needs: the three splits, class names and normalisation statistics."""

    name: str
    train: ImageSet
    val: ImageSet
    test: ImageSet
    class_names: list[str]
    coarse_names: list[str]
    fine_to_coarse: list[int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def synthetic(self) -> bool:
        return self.name == "synthetic"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


Loaded = tuple[ImageSet, ImageSet, list[str], list[str], list[int]]


# --------------------------------------------------------------------------- finding the files


# --------------------------------------------------------------------------- reading the pickles


def _numpy_reconstruct() -> Any:
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):  # numpy 2, numpy 1
        try:
            return importlib.import_module(module)._reconstruct
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy's array unpickler (_reconstruct) was not found")


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR pickles contain: dicts, lists, bytes and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        if module == "numpy" and name == "ndarray":
            return np.ndarray
        if module == "numpy" and name == "dtype":
            return np.dtype
        if module == "_codecs" and name == "encode":
            return codecs.encode
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR pickle")


def _load_pickle(path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    except Exception as e:  # any unpickling failure means a damaged or foreign file
        raise DataError(
            f"{path} is not a readable CIFAR-100 pickle ({type(e).__name__}: {e}); "
            "delete it and download the dataset again"
        ) from e
    if not isinstance(obj, dict):
        raise DataError(f"{path} is not a CIFAR-100 pickle (expected a dict, got {type(obj)})")
    # accept str keys too (a file re-pickled from Python 3)
    return {k.encode() if isinstance(k, str) else k: v for k, v in obj.items()}


def _get(d: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in d:
        have = ", ".join(repr(k) for k in d)
        raise DataError(f"{path} has no {key!r} entry (it has {have}); is it a CIFAR-100 file?")
    return d[key]


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
    data = _get(d, b"data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        kind = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' must be a uint8 array [N, 3072], got {kind}")
    if data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected [N, 3072]")
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
    """
    data_dir = Path(data_dir)
    url = url or os.environ.get(ENV_URL) or CIFAR100_URL
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


# --------------------------------------------------------------------------- synthetic data

_SYN_SHIFT = 4  # samples are shifted by up to this many pixels in x and y
_SYN_VARIANTS = 16  # jittered renderings of each class's prototype
_SYN_BANK = 1024  # clutter + noise images shared by all samples
_SYN_CANVAS = 32 + 2 * _SYN_SHIFT


def _uniform(g: torch.Generator, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(*shape, generator=g)


def _blobs(
    cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor, col: torch.Tensor, size: int
) -> torch.Tensor:
    """Sum of Gaussian colour blobs: cx, cy, r [B, K]; col [B, K, 3] -> [B, 3, size, size]."""
    coords = torch.arange(size, dtype=torch.float32)
    inv = (-0.5 / r.square())[..., None]
    gx = torch.exp((coords - cx[..., None]).square() * inv)  # [B, K, W]
    gy = torch.exp((coords - cy[..., None]).square() * inv)  # [B, K, H]
    maps = gy[..., :, None] * gx[..., None, :]  # [B, K, H, W]
    return torch.einsum("bkc,bkhw->bchw", col, maps)


def _synthetic_canvases(g: torch.Generator) -> torch.Tensor:
    """[classes * variants * 2 (flip), 3, canvas, canvas] float images, centred on 0.

    Classes come in 20 groups of 5: a group shares two blobs and the grating's orientation, so
    telling the 5 fine classes of a group apart takes their own two blobs and grating frequency,
    phase and colour (like CIFAR-100's superclasses, coarse is easier than fine).
    """
    c, v, s, m = NUM_CLASSES, _SYN_VARIANTS, _SYN_SHIFT, NUM_CLASSES // NUM_COARSE
    group = torch.arange(c) // m
    u = _uniform
    gcx, gcy, gr = u(g, 5, 26, NUM_COARSE, 2), u(g, 5, 26, NUM_COARSE, 2), u(g, 3, 6, NUM_COARSE, 2)
    gcol = u(g, -0.5, 0.5, NUM_COARSE, 2, 3)
    angle = u(g, 0, torch.pi, NUM_COARSE)[group]
    cx = torch.cat([gcx[group], u(g, 5, 26, c, 2)], 1)  # [C, 4]
    cy = torch.cat([gcy[group], u(g, 5, 26, c, 2)], 1)
    r = torch.cat([gr[group], u(g, 2.5, 5, c, 2)], 1)
    col = torch.cat([gcol[group], u(g, -0.4, 0.4, c, 2, 3)], 1)
    freq = u(g, 1.5, 4.5, c) * (2 * torch.pi / 32)
    phase = u(g, 0, 2 * torch.pi, c)
    wcol = u(g, -0.2, 0.2, c, 3)
    base = u(g, -0.06, 0.06, c, 3)

    def per_variant(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(v, 0)

    k = cx.shape[1]
    img = _blobs(
        per_variant(cx) + s + 1.0 * torch.randn(c * v, k, generator=g),
        per_variant(cy) + s + 1.0 * torch.randn(c * v, k, generator=g),
        per_variant(r) * u(g, 0.7, 1.3, c * v, k),
        per_variant(col) * u(g, 0.6, 1.4, c * v, k, 3),
        _SYN_CANVAS,
    )
    coords = torch.arange(_SYN_CANVAS, dtype=torch.float32) - s
    fx = per_variant(freq * torch.cos(angle))[:, None, None]
    fy = per_variant(freq * torch.sin(angle))[:, None, None]
    ph = per_variant(phase)[:, None, None] + 0.4 * torch.randn(c * v, 1, 1, generator=g)
    wave = torch.cos(fx * coords[None, None, :] + fy * coords[None, :, None] + ph)
    img += wave[:, None] * per_variant(wcol)[:, :, None, None]
    img += per_variant(base)[:, :, None, None]
    return torch.stack([img, img.flip(-1)], 1).flatten(0, 1)


def _synthetic_bank(g: torch.Generator) -> torch.Tensor:
    """[bank, 3, 32, 32]: three random clutter blobs plus Gaussian pixel noise, centred on 0."""
    b, k = _SYN_BANK, 3
    clutter = _blobs(
        _uniform(g, 0, 32, b, k),
        _uniform(g, 0, 32, b, k),
        _uniform(g, 1.5, 4, b, k),
        _uniform(g, -0.25, 0.25, b, k, 3),
        32,
    )
    return clutter + 0.1 * torch.randn(b, 3, 32, 32, generator=g)


def _synthetic_samples(
    canvases: torch.Tensor, bank: torch.Tensor, n: int, g: torch.Generator
) -> ImageSet:
    labels = (torch.arange(n) % NUM_CLASSES)[torch.randperm(n, generator=g)]
    which = (labels * _SYN_VARIANTS + torch.randint(_SYN_VARIANTS, (n,), generator=g)) * 2
    which += torch.randint(2, (n,), generator=g)  # horizontal flip
    side = 2 * _SYN_SHIFT + 1
    shift = torch.randint(side * side, (n,), generator=g)
    noise = torch.randint(bank.shape[0], (n,), generator=g)
    # colour: contrast times a random mix of the prototype's channels (colour is only a weak cue)
    mix = _uniform(g, 0.0, 0.1, n, 1, 1)
    colour = (1 - mix) * torch.eye(3) + mix * 0.7 * torch.randn(n, 3, 3, generator=g)
    colour *= _uniform(g, 0.6, 1.4, n, 1, 1) * 255
    # 255 * (0.5 + brightness + background tint) + 0.5 so that truncation rounds
    offset = (0.5 + _uniform(g, -0.08, 0.08, n, 1) + _uniform(g, -0.12, 0.12, n, 3)) * 255 + 0.5
    bank = bank * 255
    images = torch.empty(n, 3, 32, 32, dtype=torch.uint8)
    # one vectorised pass per shift (81 of them), never one per image
    for k in range(side * side):
        idx = (shift == k).nonzero().flatten()
        if idx.numel() == 0:
            continue
        dy, dx = divmod(k, side)
        crop = canvases[:, :, dy : dy + 32, dx : dx + 32][which[idx]].view(-1, 3, 32 * 32)
        out = bank[noise[idx]].view(-1, 3, 32 * 32)
        out += offset[idx][:, :, None]
        out.baddbmm_(colour[idx], crop)
        images[idx] = out.clamp_(0, 255).view(-1, 3, 32, 32).to(torch.uint8)
    return ImageSet(images, labels)


def make_synthetic(seed: int = 0, n_train: int = 10_000, n_test: int = 2_000) -> Loaded:
    """A procedurally generated, learnable 100-class stand-in for CIFAR-100 (no files needed).

    Each class is a prototype of four colour blobs and an oriented colour grating on a tinted
    background; the 5 classes of a group (20 groups) share two blobs and the grating's
    orientation. A sample is one of 16 jittered renderings of its class's prototype (blob places,
    sizes, colours and grating phase vary), flipped horizontally at random, shifted by up to 4 px,
    with a random partial mix of its colour channels, random contrast, brightness and tint, three
    random clutter blobs and Gaussian noise. Class identity survives horizontal flips and small
    shifts (the usual CIFAR augmentations). Deterministic in `seed` (any number of threads);
    classes are balanced (n // 100 or one more each); fine class c belongs to group c // 5.
    About 0.3-0.5 s for the default sizes on 2 CPU cores.
    """
    g = torch.Generator().manual_seed(seed)
    # One thread: the pieces are small, so threads only add synchronisation (many times slower
    # when the cores are busy) and could change float rounding, hence the pixels.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        canvases = _synthetic_canvases(g)
        bank = _synthetic_bank(g)
        train = _synthetic_samples(canvases, bank, n_train, g)
        test = _synthetic_samples(canvases, bank, n_test, g)
    finally:
        torch.set_num_threads(threads)
    fine_names = [f"synthetic-{i:03d}" for i in range(NUM_CLASSES)]
    coarse_names = [f"synthetic-group-{i:02d}" for i in range(NUM_COARSE)]
    mapping = [i // (NUM_CLASSES // NUM_COARSE) for i in range(NUM_CLASSES)]
    return train, test, fine_names, coarse_names, mapping


# --------------------------------------------------------------------------- splitting


def stratified_indices(labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """`n` indices into `labels`, as class-balanced as possible, chosen at random (seeded).

    Every class gets floor(n / classes) or one more, except classes with too few examples, which
    give all they have (the rest is spread over the others). Which classes get the extra one and
    which examples are picked depend on `seed`. Returned sorted ascending.
    """
    labels = torch.as_tensor(labels).flatten()
    total = labels.shape[0]
    if not 0 <= n <= total:
        raise ValueError(f"cannot pick {n} of {total} examples")
    if n == 0:
        return torch.empty(0, dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    k = classes.shape[0]
    alloc = torch.zeros(k, dtype=torch.int64)
    remaining = n
    while remaining > 0:  # water-filling: at most `k` rounds
        open_ = (alloc < counts).nonzero().flatten()
        q = remaining // open_.shape[0]
        if q == 0:  # fewer left than open classes: one more each for a random few
            pick = open_[torch.randperm(open_.shape[0], generator=g)[:remaining]]
            alloc[pick] += 1
            break
        add = torch.minimum(counts[open_] - alloc[open_], torch.tensor(q))
        alloc[open_] += add
        remaining -= int(add.sum())
    # a random rank within each class: shuffle, then stable-sort by class
    perm = torch.randperm(total, generator=g)
    order = perm[torch.sort(inverse[perm], stable=True).indices]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(total, dtype=torch.int64)
    rank[order] = torch.arange(total) - starts[inverse[order]]
    return (rank < alloc[inverse]).nonzero().flatten()


def split_train_val(
    labels: torch.Tensor, val_size: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint (train, val) index tensors covering all of `labels`; val is stratified. Sorted."""
    labels = torch.as_tensor(labels).flatten()
    val = stratified_indices(labels, val_size, seed)
    keep = torch.ones(labels.shape[0], dtype=torch.bool)
    keep[val] = False
    return keep.nonzero().flatten(), val


def channel_stats(
    images: torch.Tensor, chunk: int = 4096
) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Per-channel mean and (population) std of uint8 images [N, 3, H, W], in [0, 1].

    Exact: computed from per-channel histograms of the 256 pixel values (fast, little memory).
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"need uint8 images [N>0, C, H, W], got {images.dtype} {images.shape}")
    hist = torch.zeros(images.shape[1], 256, dtype=torch.float64)
    for c in range(images.shape[1]):
        for i in range(0, images.shape[0], chunk):
            hist[c] += torch.bincount(images[i : i + chunk, c].reshape(-1), minlength=256)
    values = torch.arange(256, dtype=torch.float64) / 255
    count = hist.sum(1)
    mean = (hist * values).sum(1) / count
    var = (hist * (values - mean[:, None]).square()).sum(1) / count
    m, sd = mean.tolist(), var.sqrt().tolist()
    return (m[0], m[1], m[2]), (sd[0], sd[1], sd[2])


# --------------------------------------------------------------------------- entry point


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{name} must be an integer, got {value!r}")
    return value


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


def read_synthetic_source(
    data_dir: str | os.PathLike[str] | None, *, download: bool, progress: bool
) -> Loaded:
    """The synthetic dataset (always generated with seed 0; the arguments are not used)."""
    return make_synthetic(0)


def load_data(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    val_size: int = 5000,
    subset: int | None = None,
    seed: int = 0,
    download: bool = True,
    progress: bool = True,
) -> DataBundle:
    """Load a dataset and split it.

    `val_size` training images (stratified, chosen by `seed`) are held out as the validation set;
    `subset`, if given, keeps only that many of the remaining training images (stratified). The
    test set is always complete. The synthetic dataset is the same for every `seed` (it is
    generated with seed 0); `seed` only chooses the split.
    """
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r} (valid: {', '.join(DATASETS.names())})")
    source = DATASETS.get(dataset).load()
    train_all, test, names, coarse, mapping = source(data_dir, download=download, progress=progress)

    n = len(train_all)
    val_size = _check_int("val_size", val_size)
    if not 0 <= val_size < n:
        raise DataError(
            f"val_size={val_size} is out of range: use 0..{n - 1} "
            f"({dataset} has {n} training images)"
        )
    train_idx, val_idx = split_train_val(train_all.labels, val_size, seed)
    train, val = train_all.subset(train_idx), train_all.subset(val_idx)
    if subset is not None:
        subset = _check_int("subset", subset)
        if not 1 <= subset <= len(train):
            raise DataError(
                f"subset={subset} is out of range: use 1..{len(train)} "
                f"(the training images left after holding out val_size={val_size})"
            )
        pick = stratified_indices(train.labels, subset, seed + 1_000_003)
        train = train.subset(pick)
    mean, std = channel_stats(train.images)
    return DataBundle(dataset, train, val, test, names, coarse, mapping, mean, std)
