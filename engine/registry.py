"""A small generic registry: name -> builder, with a one-line description for menus and --help.

Every pluggable component (models, augmentations, optimizers, losses, schedules) lives in one
`Registry`; adding a component is one function plus one `@REGISTRY.register(...)` line.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T", bound=Callable[..., Any])


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
class Entry(Generic[T]):
    name: str
    builder: T
    description: str
    limits: dict[str, Limit]
    choices: dict[str, tuple[str, ...]]


class UnknownNameError(KeyError):
    """A name that is not in a registry; the message lists the nearest valid names."""

    def __init__(self, kind: str, name: str, valid: list[str]) -> None:
        close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        self.message = f"unknown {kind} {name!r}{hint} (valid: {', '.join(valid)})"
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        description: str = "",
        limits: dict[str, str] | None = None,
        choices: dict[str, tuple[str, ...]] | None = None,
    ) -> Callable[[T], T]:
        """Decorator adding `builder` under `name`.

        `limits` maps a numeric parameter to its range, `choices` a string parameter to its values;
        the config layer checks both before anything runs.
        """

        def add(builder: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            text = description or (builder.__doc__ or "").strip().split("\n")[0]
            parsed = {k: parse_limit(v) for k, v in (limits or {}).items()}
            self._entries[name] = Entry(name, builder, text, parsed, dict(choices or {}))
            return builder

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[name].builder

    def limits(self, name: str) -> dict[str, Limit]:
        self.get(name)
        return self._entries[name].limits

    def choices(self, name: str) -> dict[str, tuple[str, ...]]:
        self.get(name)
        return self._entries[name].choices

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self, pattern: str = "*") -> list[str]:
        import fnmatch

        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)
