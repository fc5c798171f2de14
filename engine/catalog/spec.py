"""Typed component specs and the catalogs that hold them (torch-free).

A `Spec` is everything the config layer, the Setup menus and `cifar-tui presets` need to know about
one component: its name, a one-line description, its parameters (type, default, limits, choices)
and the dotted path of its implementation, imported only when the component is built (timm's
`OptimInfo` records are the model). Implementation modules import torch at the top like any
PyTorch code; nothing here does.

Implementations receive the engine's own arguments positionally (a model's `num_classes`, an
optimizer's model, ...), then every parameter of the spec, and the spec's `fixed` arguments, as
keywords: defaults live in the spec and nowhere else.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.config_values import nearest

Limit = tuple[float | None, float | None, bool]  # (low, high, low is exclusive); inclusive high


def parse_limit(text: str) -> Limit:
    """Parse a compact range: '> 0', '>= 0', '0..1' (inclusive), '<= 10', or an interval
    '(0, 1]' / '[0, 1]' (the upper end is always inclusive)."""
    t = text.replace(" ", "")
    if t[:1] in "([" and t.endswith("]") and "," in t:
        lo, hi = t[1:-1].split(",")
        return float(lo), float(hi), t[0] == "("
    if ".." in t:
        lo, hi = t.split("..")
        return float(lo), float(hi), False
    for op, make in (
        (">=", lambda v: (v, None, False)),
        (">", lambda v: (v, None, True)),
        ("<=", lambda v: (None, v, False)),
    ):
        if t.startswith(op):
            return make(float(t[len(op) :]))
    raise ValueError(f"bad limit {text!r}: use '> 0', '>= 0', '<= 1', '0..1' or '(0, 1]'")


@dataclass(frozen=True)
class Param:
    """One user-settable parameter. `type` is the annotation as a config value is checked
    against it: int, float, bool, str, list[int], list[float], or `X | None`."""

    name: str
    type: str
    default: Any
    doc: str = ""
    limit: Limit | None = None
    choices: tuple[str, ...] | None = None


def param(
    name: str,
    type: str,
    default: Any,
    doc: str = "",
    *,
    limit: str | None = None,
    choices: tuple[str, ...] | None = None,
) -> Param:
    """A `Param`, its limit written compactly ('> 0', '0..1', '(0, 1]')."""
    return Param(name, type, default, doc, parse_limit(limit) if limit else None, choices)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _load(path: str) -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    implementation: Callable[..., Any] = getattr(importlib.import_module(module), attr)
    return implementation


@dataclass(frozen=True)
class Spec:
    """A component: `impl` ("module:attribute") builds it; `reference` (augmentations only) is
    the slow per-image implementation the fast one is checked against; `fixed` are arguments
    this entry sets for its implementation (a ResNet-18 is `build_resnet` with depth 18);
    `train_images` (datasets only) is the size of its training set, so that a split or a batch
    too large for it is refused before a run folder exists. `check` refuses, torch-free, values
    each in range but not valid together or for the architecture (a WRN depth that is not
    6n + 4): it takes every parameter and returns `"depth = 12 is ..."` (the fault, led by the
    parameter's name) or None; the config layer prefixes the key path."""

    name: str
    description: str
    impl: str
    params: tuple[Param, ...] = ()
    reference: str | None = None
    fixed: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    train_images: int | None = None
    check: Callable[[Mapping[str, Any]], str | None] | None = None

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def resolve(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter: the given values over the defaults. Raises TypeError for a key the
        spec does not have."""
        names = [p.name for p in self.params]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TypeError(
                f"{self.name} takes no parameter {unknown[0]!r} (it takes: {', '.join(names)})"
            )
        return {p.name: values.get(p.name, _copy(p.default)) for p in self.params}

    def load(self) -> Callable[..., Any]:
        return _load(self.impl)

    def load_reference(self) -> Callable[..., Any]:
        if self.reference is None:
            raise ValueError(f"{self.name} has no reference implementation")
        return _load(self.reference)


class UnknownNameError(KeyError):
    """A name that is not in a catalog; the message lists the nearest valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        close = nearest(name, valid)
        hint = f"; did you mean {close!r}?" if close else ""
        self.message = f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class Catalog:
    """The specs of one kind of component, by name (`list_models("wrn*")` is `names("wrn*")`)."""

    def __init__(self, kind: str, specs: Iterable[Spec]) -> None:
        self.kind = kind
        self._specs: dict[str, Spec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"{kind} {spec.name!r} is described twice")
            self._specs[spec.name] = spec

    def get(self, name: str) -> Spec:
        if name not in self._specs:
            raise UnknownNameError(self.kind, name, self.names())
        return self._specs[name]

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._specs if fnmatch.fnmatch(n, pattern))

    def entries(self) -> Iterator[Spec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def build(self, name: str, /, *args: Any, **params: Any) -> Any:
        """Import `name`'s implementation and call it: engine arguments `args`, then every
        parameter (the given ones over the defaults) and the spec's fixed arguments."""
        spec = self.get(name)
        return spec.load()(*args, **spec.resolve(params), **spec.fixed)

    def build_reference(self, name: str, /, *args: Any, **params: Any) -> Any:
        """The same through the reference implementation (augmentations: one image at a time)."""
        spec = self.get(name)
        return spec.load_reference()(*args, **spec.resolve(params), **spec.fixed)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)
