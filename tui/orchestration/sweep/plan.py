"""A sweep's plan: every (recipe, seed) resolved and checked as `--run PRESET --set ...` would be,
in run order, and the sweep id that names its state (torch-free).

Runs go seed-major (every recipe with the first seed, then with the second, ...) so that an
interrupted sweep already has one run of each row. The sweep id is the name plus a hash of the
plan (each recipe as written: its preset's YAML with the overrides and seed applied, without the
keys that only say where a run executes).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from engine.config import WHERE_KEYS, RunConfig, apply_override
from engine.errors import BadInputError
from engine.presets import preset_path, read_yaml
from tui.orchestration.launcher import resolve_config
from tui.orchestration.sweep.spec import Recipe, SweepSpec


@dataclass
class PlannedRun:
    index: int  # 1-based, in run order
    recipe: Recipe
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return f"{self.recipe.label}#seed={self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [*self.recipe.overrides, f"train.seed={self.seed}"]


@dataclass
class Plan:
    spec: SweepSpec
    sweep_id: str
    runs: list[PlannedRun]


def _recipe_as_written(preset: str, overrides: list[str]) -> dict[str, Any]:
    """The preset's YAML with the overrides applied, before any default is filled in, without the
    keys that only say where a run executes: what the sweep id hashes. A default added to the
    code later does not change it; an edited preset or override does."""
    data = read_yaml(preset_path(preset)) or {}
    for assignment in overrides:
        apply_override(data, assignment)
    for dotted in WHERE_KEYS:
        node: Any = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[:40].strip("-")


def plan_sweep(spec: SweepSpec, *, data_dir: str | None = None, device: str | None = None) -> Plan:
    """Resolve every (recipe, seed) as `--run PRESET --set ...` would; raises ConfigError."""
    runs = []
    order = [(seed, recipe) for seed in spec.seeds for recipe in spec.recipes]
    for i, (seed, recipe) in enumerate(order, 1):
        try:
            cfg = resolve_config(
                recipe.preset,
                [*recipe.overrides, f"train.seed={seed}"],
                data_dir=data_dir,
                device=device,
            )
        except BadInputError as exc:
            raise type(exc)(f"{spec.source.name}, recipe {recipe.label!r}: {exc}") from None
        runs.append(PlannedRun(i, recipe, seed, cfg))
    fingerprint = json.dumps(
        [[r.recipe.label, r.seed, _recipe_as_written(r.recipe.preset, r.overrides)] for r in runs],
        sort_keys=True,
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:8]
    return Plan(spec, f"{_slug(spec.name) or 'sweep'}-{digest}", runs)
