"""The sweep file: its schema, and the checks that turn it into a `SweepSpec` (torch-free).

A sweep file is YAML in one of two forms (`name`, `description` and `set` are optional in both):

    name: tiny                     # default: the file's stem
    seeds: [0, 1]                  # every recipe runs once per seed (train.seed)
    set: {train.epochs: 2}         # `--set` overrides applied to every recipe
    presets:                       # one recipe per entry: a preset name or YAML path, or
      - resnet18                   # {preset: ..., label: ..., set: {...}} for a variant
      - {preset: resnet50, label: resnet50-lr0.05, set: {optim.lr: 0.05}}

    base: quickstart               # or: one preset and a grid of overrides,
    seeds: [0, 1, 2]               # one recipe per combination (the first key varies slowest)
    grid: {optim.lr: [0.05, 0.1], loss.label_smoothing: [0.0, 0.1]}

`set` values are written as a mapping of dotted keys (or a list of `key=value` strings) and go
through exactly the validation of `--set` (see `tui.orchestration.sweep.plan`). Unknown keys and
out-of-range seeds are reported with the engine's config helpers (`engine.config`), so a sweep
file and a preset say the same thing about the same mistake.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.config_values import check_range, unknown_key
from engine.errors import ConfigError
from engine.presets import bundled_folder, named_files, named_yaml, read_yaml

SWEEPS_DIR = bundled_folder("sweep")  # the bundled sweep files

MAX_RUNS = 1000  # runs (recipes x seeds) in one sweep: a grid larger is a typo more often than not
_TOP_KEYS = ["name", "description", "seeds", "set", "presets", "base", "grid"]
_ENTRY_KEYS = ["preset", "label", "set"]


@dataclass(frozen=True)
class Recipe:
    """One row of the table: a preset plus `--set` overrides (seed not included)."""

    label: str
    preset: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    seeds: tuple[int, ...]
    recipes: tuple[Recipe, ...]
    source: Path


def sweep_names() -> list[str]:
    return [e.name for e in named_files("sweep")]


def sweep_path(ref: str) -> Path:
    """A sweep name (./sweeps, the user folder, the bundled ones) or a path to a sweep file."""
    return named_yaml(ref, "sweep")


def _check_keys(raw: dict[Any, Any], valid: list[str], where: str) -> None:
    """Refuse a key the schema does not have, naming the nearest one (as a preset's would)."""
    for key in raw:
        if key not in valid:
            raise ConfigError(f"{where}: {unknown_key('', str(key), valid)}")


def _overrides(raw: Any, where: str) -> tuple[str, ...]:
    """A `set` block -> `key=value` strings (values as JSON, which YAML reads back unchanged)."""
    if raw is None:
        return ()
    if isinstance(raw, list):
        if not all(isinstance(x, str) and "=" in x for x in raw):
            raise ConfigError(f"{where} must be a mapping of key: value or a list of 'key=value'")
        items = [tuple(x.split("=", 1)) for x in raw]
        pairs = [(k.strip(), v) for k, v in items]
        out = tuple(f"{k}={v}" for k, v in pairs)
    elif isinstance(raw, dict):
        pairs = [(str(k), v) for k, v in raw.items()]
        out = tuple(f"{k}={json.dumps(v)}" for k, v in pairs)
    else:
        raise ConfigError(f"{where} must be a mapping of key: value, got {raw!r}")
    for key, _ in pairs:
        if key == "train.seed":
            raise ConfigError(f"{where}: train.seed comes from the sweep's `seeds:` list")
    return out


def _seeds(raw: Any, where: str) -> tuple[int, ...]:
    if raw is None:
        return (0,)
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) for s in values):
        raise ConfigError(f"{where}.seeds must be a list of integers, got {raw!r}")
    check_range(list(values), f"{where}.seeds", 0, None)  # train.seed's own range
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.seeds lists a seed twice: {raw!r}")
    return tuple(values)


def _preset_recipes(raw: Any, where: str) -> list[Recipe]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.presets must be a non-empty list of presets")
    recipes = []
    for i, entry in enumerate(raw):
        at = f"{where}.presets.{i}"
        if isinstance(entry, str):
            recipes.append(Recipe(Path(entry).stem if entry.endswith(".yaml") else entry, entry))
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{at} must be a preset name or {{preset: ..., set: ...}}")
        _check_keys(entry, _ENTRY_KEYS, at)
        preset = entry.get("preset")
        if not isinstance(preset, str):
            raise ConfigError(f"{at}.preset is missing (a preset name or YAML path)")
        label = entry.get("label") or Path(preset).stem
        recipes.append(Recipe(str(label), preset, _overrides(entry.get("set"), f"{at}.set")))
    return recipes


def _check_size(recipes: int, seeds: int, where: str) -> None:
    if recipes * seeds > MAX_RUNS:
        raise ConfigError(
            f"{where} plans {recipes * seeds:,} runs ({recipes:,} recipes x {seeds} seeds): more "
            f"than {MAX_RUNS:,}; split it into smaller sweeps"
        )


def _grid_recipes(base: Any, grid: Any, where: str, seeds: int) -> list[Recipe]:
    if not isinstance(base, str):
        raise ConfigError(f"{where}.base must be a preset name or YAML path, got {base!r}")
    if grid is None:
        return [Recipe(Path(base).stem, base)]
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}.grid must map dotted keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{key} must be a non-empty list of values")
        if key == "train.seed":
            raise ConfigError(f"{where}.grid: train.seed comes from the sweep's `seeds:` list")
    _check_size(math.prod(len(v) for v in grid.values()), seeds, where)  # before any is made
    keys = [str(k) for k in grid]
    recipes = []
    for combo in itertools.product(*grid.values()):
        sets = tuple(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo, strict=True))
        label = " ".join(f"{k}={_short(v)}" for k, v in zip(keys, combo, strict=True))
        recipes.append(Recipe(label, base, sets))
    return recipes


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_sweep(ref: str) -> SweepSpec:
    """Read and check a sweep file (the structure; the recipes are resolved by `plan_sweep`)."""
    path = sweep_path(ref)
    raw = read_yaml(path)
    where = path.name
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping (keys: {', '.join(_TOP_KEYS)})")
    _check_keys(raw, _TOP_KEYS, where)
    has_presets, has_base = "presets" in raw, "base" in raw
    if has_presets == has_base:
        raise ConfigError(f"{where} needs either `presets:` (a list) or `base:` (+ `grid:`)")
    if "grid" in raw and not has_base:
        raise ConfigError(f"{where}: `grid:` goes with `base:`, not with `presets:`")
    common = _overrides(raw.get("set"), f"{where}.set")
    seeds = _seeds(raw.get("seeds"), where)
    if has_presets:
        recipes = _preset_recipes(raw["presets"], where)
        _check_size(len(recipes), len(seeds), where)
    else:
        recipes = _grid_recipes(raw["base"], raw.get("grid"), where, len(seeds))
    seen: set[str] = set()
    for r in recipes:
        if r.label in seen:
            raise ConfigError(f"{where}: two recipes are labelled {r.label!r}; give one a label:")
        seen.add(r.label)
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name must be a non-empty string")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description must be a string")
    return SweepSpec(
        name=name.strip(),
        description=description,
        seeds=seeds,
        recipes=tuple(Recipe(r.label, r.preset, common + r.overrides) for r in recipes),
        source=path,
    )
