"""Checking one config value: its type (`coerce`), range and choices, and the nearest valid key.

Shared by the run config, the component catalogs' parameters and the sweep files; torch-free.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from typing import Any

import yaml

from engine import strict_yaml
from engine.errors import ConfigError


def nearest(word: str, options: list[str]) -> str | None:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return close[0] if close else None


def unknown_key(path: str, key: str, valid: list[str]) -> ConfigError:
    near = nearest(key, valid)
    prefix = f"{path}." if path else ""
    hint = f"; did you mean {prefix}{near}?" if near else ""
    return ConfigError(
        f"unknown key {prefix}{key}{hint} (valid keys: {', '.join(prefix + v for v in valid)})"
    )


def coerce(value: Any, annotation: str, key: str) -> Any:
    """Convert a YAML / --set value to the annotated type (`int`, `float | None`, ...)."""
    ann = annotation.replace(" ", "")
    if ann.endswith("|None") or ann.startswith("None|"):
        if value is None or value == "null" or value == "none":
            return None
        if ann in ("bool|None", "None|bool"):
            if value == "auto":
                return None
            if not isinstance(value, bool) and str(value).lower() not in (
                "true",
                "false",
                "yes",
                "no",
            ):
                raise ConfigError(
                    f"{key} must be true, false or auto (null), got {strict_yaml.short(value)}"
                )
        ann = ann.replace("|None", "").replace("None|", "")
    if ann.startswith(("tuple[", "list[")):
        inner = ann[ann.index("[") + 1 : -1].split(",")
        if isinstance(value, str):
            try:
                value = strict_yaml.load(value)
            except yaml.YAMLError as exc:
                raise ConfigError(
                    f"{key}: not a valid YAML list: {strict_yaml.one_line(exc)}"
                ) from None
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list, got {strict_yaml.short(value)}")
        if ann.startswith("tuple[") and len(value) != len(inner):
            raise ConfigError(f"{key} must have {len(inner)} values, got {len(value)}")
        item_ann = inner[0]
        out = [coerce(v, item_ann, f"{key}[{i}]") for i, v in enumerate(value)]
        return out
    if ann == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
            return value.lower() in ("true", "yes")
        raise ConfigError(f"{key} must be true or false, got {strict_yaml.short(value)}")
    if ann == "int":
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be an integer, got {strict_yaml.short(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
        raise ConfigError(f"{key} must be an integer, got {strict_yaml.short(value)}")
    if ann == "float":
        real: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            real = float(value)
        elif isinstance(value, str):
            with contextlib.suppress(ValueError):
                real = float(value)
        if real is None:
            raise ConfigError(f"{key} must be a number, got {strict_yaml.short(value)}")
        if not math.isfinite(real):  # NaN passes every range check
            raise ConfigError(f"{key} must be a finite number, got {strict_yaml.short(value)}")
        return real
    if ann == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {strict_yaml.short(value)}")
    raise ConfigError(f"{key}: unsupported type {annotation}")


def check_range(
    value: Any, key: str, lo: float | None, hi: float | None, *, open_lo: bool = False
) -> None:
    if value is None or isinstance(value, bool | str):
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        too_low = lo is not None and (v <= lo if open_lo else v < lo)
        if too_low or (hi is not None and v > hi):
            lo_txt = "-inf" if lo is None else _bound(lo)
            hi_txt = "inf" if hi is None else _bound(hi)
            bracket = "(" if open_lo or lo is None else "["
            raise ConfigError(
                f"{key} = {strict_yaml.short(v)} is out of range {bracket}{lo_txt}, {hi_txt}]"
            )


def _bound(limit: float) -> str:
    """A range's end as written: an integer in full (4294967295, not 4.29497e+09)."""
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def check_choice(value: Any, key: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        near = nearest(str(value), list(allowed))
        hint = f"; did you mean {near!r}?" if near else ""
        raise ConfigError(
            f"{key} = {strict_yaml.short(value)} is not one of {', '.join(allowed)}{hint}"
        )
