"""What the Setup form may edit, as plain records: the component kinds and their entries, each
entry's keyword parameters (type, default, limits, choices), and the config sections' fields.

Every read of the engine's catalogs (`engine.catalog`) and config dataclasses that Setup makes goes
through this module (no Textual here).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from engine.catalog import COMPONENTS
from engine.config import SECTION_CLASSES, RunConfig
from engine.config_values import check_choice, check_range, coerce
from engine.errors import ConfigError

NONE = "none"  # the menu entry of an optional component left out (e.g. no SAM)
MISSING: Any = inspect.Parameter.empty  # the default of a parameter that has none

Limits = tuple[float | None, float | None, bool]  # (low, high, low is exclusive); high inclusive


@dataclass(frozen=True)
class FieldSpec:
    """One editable value: a component's keyword parameter or a config section's field."""

    name: str
    type: str  # the annotation as text ("float", "bool | None", ...)
    default: Any  # MISSING when there is none
    limits: Limits | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""
    pattern: str | None = None  # a regular expression the text must match (section fields)

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING


@dataclass(frozen=True)
class EntrySpec:
    """One registered component: its name and its one-line description."""

    name: str
    doc: str


# single-component sections (every kind but `augment`), in the catalogs' order, with the kind's
# own label ("model", "optimizer", ...)
COMPONENT_TITLES: dict[str, str] = {
    section: catalog.kind for section, catalog in COMPONENTS.items() if section != "augment"
}
OPTIONAL_SECTIONS: frozenset[str] = frozenset(
    f.name
    for f in dataclasses.fields(RunConfig)
    if f.default is None and f.name in COMPONENT_TITLES
)
SECTIONS: tuple[str, ...] = tuple(SECTION_CLASSES)  # the plain sections: data, train, eval


def is_component_kind(kind: str) -> bool:
    return kind in COMPONENTS


def component_names(kind: str) -> list[str]:
    """The entries of one kind, sorted by name."""
    return COMPONENTS[kind].names()


def component_entries(kind: str) -> list[EntrySpec]:
    return [EntrySpec(e.name, e.description) for e in COMPONENTS[kind].entries()]


def component_entry(kind: str, name: str | None) -> EntrySpec | None:
    """The entry called `name`, or None when there is none (a name left out, a typo)."""
    return next((e for e in component_entries(kind) if e.name == name), None)


def component_fields(kind: str, name: str) -> list[FieldSpec]:
    """The parameters of entry `name` of `kind`, in the spec's order."""
    spec = COMPONENTS[kind].get(name)
    defaults = spec.resolve({})  # fresh copies of list defaults
    return [
        FieldSpec(
            name=p.name,
            type=p.type,
            default=defaults[p.name],
            limits=p.limit,
            choices=p.choices,
            doc=p.doc,
        )
        for p in spec.params
    ]


def component_defaults(kind: str, name: str) -> dict[str, Any]:
    """A new component of `name`, as the config holds it: its parameters at their defaults."""
    return {"name": name, **{f.name: f.default for f in component_fields(kind, name)}}


@dataclass(frozen=True)
class Switched:
    """A component switched to another entry: its parameters, and what happened to the old ones."""

    component: dict[str, Any]
    kept: tuple[str, ...]  # same name, valid for the new entry: carried over
    reset: tuple[str, ...]  # same name, not valid for the new entry: its default instead
    dropped: tuple[str, ...]  # the new entry has no such parameter

    def note(self, title: str) -> str:
        """`optimizer adamw: kept lr 0.1, weight_decay 0.0005; dropped momentum` (one line)."""
        c = self.component
        parts = []
        if self.kept:
            parts.append("kept " + ", ".join(f"{k} {c[k]!r}" for k in self.kept))
        if self.reset:
            parts.append("reset " + ", ".join(f"{k} to {c[k]!r}" for k in self.reset))
        new = [k for k in c if k != "name" and k not in self.kept and k not in self.reset]
        if new:
            parts.append("new " + ", ".join(f"{k} {c[k]!r}" for k in new))
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped))
        return f"{title} {c['name']}: " + ("; ".join(parts) or "no parameters")


def _valid_for(spec: Any, value: Any) -> bool:
    """Whether `value` passes the checks the config applies to parameter `spec`."""
    try:
        v = coerce(value, spec.type, spec.name)
        if spec.limits is not None:
            lo, hi, open_lo = spec.limits
            check_range(v, spec.name, lo, hi, open_lo=open_lo)
        if spec.choices is not None:
            check_choice(v, spec.name, spec.choices)
    except ConfigError:
        return False
    return True


def switch_component(kind: str, old: dict[str, Any] | None, name: str) -> Switched:
    """Entry `name` of `kind` in place of `old`: the parameters the two share keep their values
    where those are valid for the new entry (sgd -> adamw keeps lr and weight_decay)."""
    component = component_defaults(kind, name)
    fields = {f.name: f for f in component_fields(kind, name)}
    kept, reset, dropped = [], [], []
    for key, value in (old or {}).items():
        if key == "name":
            continue
        if key not in fields:
            dropped.append(key)
        elif value == component[key]:
            continue  # the same either way: nothing to say
        elif _valid_for(fields[key], value):
            component[key] = value
            kept.append(key)
        else:
            reset.append(key)
    return Switched(component, tuple(kept), tuple(reset), tuple(dropped))


def _pattern_text(pattern: re.Pattern[str] | str | None) -> str | None:
    return pattern.pattern if isinstance(pattern, re.Pattern) else pattern


def section_fields(section: str) -> list[FieldSpec]:
    """The fields of a plain config section (`data`, `train`, `eval`), from its dataclass."""
    out = []
    for f in dataclasses.fields(SECTION_CLASSES[section]):
        meta = f.metadata
        out.append(
            FieldSpec(
                name=f.name,
                type=str(f.type),
                default=f.default,
                choices=meta.get("choices"),
                doc=meta.get("doc") or "",
                pattern=_pattern_text(meta.get("pattern")),
            )
        )
    return out
