"""Reading the official CIFAR-100 python pickles safely (no arbitrary objects), without torch:
the engine's loader (`engine.cifar100`) and the dashboard's error images both use it."""

from __future__ import annotations

import codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import DataError

IMAGE_SHAPE = (3, 32, 32)


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


def load_pickle(path: Path) -> dict[bytes, Any]:
    """A CIFAR pickle's dict (bytes keys). Raises DataError naming the file."""
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


def entry(d: dict[bytes, Any], key: bytes, path: Path) -> Any:
    if key not in d:
        have = ", ".join(repr(k) for k in d)
        raise DataError(f"{path} has no {key!r} entry (it has {have}); is it a CIFAR-100 file?")
    return d[key]


def image_rows(d: dict[bytes, Any], path: Path) -> np.ndarray:
    """The split's `data`: uint8 [N, 3072], each row 1024 red, 1024 green, 1024 blue values."""
    data = entry(d, b"data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        kind = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: b'data' must be a uint8 array [N, 3072], got {kind}")
    if data.shape[1] != int(np.prod(IMAGE_SHAPE)):
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected [N, 3072]")
    return data


def read_images(path: Path) -> np.ndarray:
    """A split file's images, uint8 [N, 3, 32, 32] in file order. Raises DataError."""
    return image_rows(load_pickle(path), path).reshape(-1, *IMAGE_SHAPE)
