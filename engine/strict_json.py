"""Strict JSON (RFC 8259) for every file the project writes.

Python writes NaN and infinities as bare `NaN` / `Infinity`, which strict readers (jq, browsers,
most languages) refuse. Here they are written as `null`, and the object that holds them names
each one in a `nonfinite` object of JSON Pointers (RFC 6901) to what it was:

    {"type": "bad_step", "loss": null, "nonfinite": {"/loss": "nan"}}

`loads` puts the values back, so Python readers see the same floats as before; a strict reader
sees null and the flag. Old files with bare NaN still read (Python's parser takes them).
"""

from __future__ import annotations

import json
import math
from typing import Any

NONFINITE = "nonfinite"
_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _name(x: float) -> str:
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def _pointer_part(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _clean(value: Any, path: str, found: dict[str, str]) -> Any:
    """`value` with every non-finite float replaced by None, recorded in `found` by pointer."""
    if isinstance(value, float) and not math.isfinite(value):
        found[path] = _name(value)
        return None
    if isinstance(value, dict):
        return {k: _clean(v, f"{path}/{_pointer_part(k)}", found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, f"{path}/{i}", found) for i, v in enumerate(value)]
    return value


def strict(value: Any) -> Any:
    """`value` made strict: in each object (a dict at the top, or each dict of a top-level list)
    non-finite numbers become null, flagged under `nonfinite`. Elsewhere they become null."""
    if isinstance(value, list | tuple):
        return [strict(v) if isinstance(v, dict) else _clean(v, "", {}) for v in value]
    found: dict[str, str] = {}
    out = _clean(value, "", found)
    if found and isinstance(out, dict):
        out[NONFINITE] = found
    return out


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that never writes NaN or Infinity (see the module's docstring)."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def _restore(obj: dict[str, Any]) -> dict[str, Any]:
    flags = obj.pop(NONFINITE, None)
    if not isinstance(flags, dict):
        return obj
    for pointer, name in flags.items():
        if not isinstance(pointer, str) or name not in _NAMES or not pointer.startswith("/"):
            continue
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
        target: Any = obj
        for part in parents:
            target = _child(target, part)
        if _child(target, last) is not None:
            continue  # not there, or not null: the flag is wrong, the value stays
        if isinstance(target, dict):
            target[last] = _NAMES[name]
        else:
            target[int(last)] = _NAMES[name]
    return obj


def _child(container: Any, key: Any) -> Any:
    """container[key] for a dict or list, else a sentinel that is not None."""
    if isinstance(container, dict):
        return container.get(key, ...)
    if isinstance(container, list):
        index = int(key) if str(key).isdigit() else -1
        return container[index] if 0 <= index < len(container) else ...
    return ...


def restore(value: Any) -> Any:
    """The inverse of `strict`: flagged nulls back to NaN / ±inf (a bad flag is ignored)."""
    if isinstance(value, list):
        return [restore(v) if isinstance(v, dict) else v for v in value]
    return _restore(value) if isinstance(value, dict) else value


def loads(text: str | bytes) -> Any:
    """json.loads, then `restore`."""
    return restore(json.loads(text))
