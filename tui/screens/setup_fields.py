"""What the Setup form may edit, as plain records: the component kinds and their entries, each
entry's keyword parameters (type, default, limits, choices), and the config sections' fields.

Every read of the engine's registry metadata and config dataclasses that Setup makes goes through
this module (no Textual here), so the form can be pointed at another source in one place.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from dataclasses import dataclass
from typing import Any

from engine.config import COMPONENT_REGISTRIES, SECTION_CLASSES, RunConfig, component_params

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


def _ann_text(annotation: Any) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")


# single-component sections (every kind but `augment`), in the registries' order, with the kind's
# own label ("model", "optimizer", ...)
COMPONENT_TITLES: dict[str, str] = {
    section: registry.kind
    for section, registry in COMPONENT_REGISTRIES.items()
    if section != "augment"
}
OPTIONAL_SECTIONS: frozenset[str] = frozenset(
    f.name
    for f in dataclasses.fields(RunConfig)
    if f.default is None and f.name in COMPONENT_TITLES
)
SECTIONS: tuple[str, ...] = tuple(SECTION_CLASSES)  # the plain sections: data, train, eval


def is_component_kind(kind: str) -> bool:
    return kind in COMPONENT_REGISTRIES


def component_names(kind: str) -> list[str]:
    """The entries of one kind, sorted by name."""
    return COMPONENT_REGISTRIES[kind].names()


def component_entries(kind: str) -> list[EntrySpec]:
    return [EntrySpec(e.name, e.description) for e in COMPONENT_REGISTRIES[kind].entries()]


def component_entry(kind: str, name: str | None) -> EntrySpec | None:
    """The entry called `name`, or None when there is none (a name left out, a typo)."""
    return next((e for e in component_entries(kind) if e.name == name), None)


def component_fields(kind: str, name: str) -> list[FieldSpec]:
    """The keyword parameters of entry `name` of `kind`, in the builder's order."""
    registry = COMPONENT_REGISTRIES[kind]
    choices = registry.choices(name)
    limits = registry.limits(name)
    return [
        FieldSpec(
            name=key,
            type=_ann_text(param.annotation),
            default=param.default,
            limits=limits.get(key),
            choices=choices.get(key),
        )
        for key, param in component_params(registry, name).items()
    ]


def component_defaults(kind: str, name: str) -> dict[str, Any]:
    """A new component of `name`, as the config holds it: its parameters at their defaults."""
    return {"name": name, **{f.name: f.default for f in component_fields(kind, name)}}


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
