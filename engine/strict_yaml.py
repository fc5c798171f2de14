"""Strict safe YAML for presets, sweep files and `--set` values (torch-free).

On top of `yaml.SafeLoader` (no Python tags): a key given twice in one mapping is refused (PyYAML
keeps the last), and so is a document with more than `MAX_ALIASES` aliases, one that would expand
to more than `MAX_NODES` values (aliases counted as often as they are used), or one nested deeper
than `MAX_DEPTH` levels. An alias bomb ("billion laughs") is refused while it is composed, before
anything is built from it, and a deeply nested value gives an error, not a RecursionError.
"""

from __future__ import annotations

import reprlib
from typing import Any

import yaml

MAX_ALIASES = 100  # `*name` references in one document; presets use none
MAX_DEPTH = 64  # nested collections in one document; presets use 3
MAX_NODES = 100_000  # values in one document once its aliases are expanded
MAX_BYTES = 1 << 20  # a preset, sweep file or --set value

_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring = 2, 4, 4, 60
_SHORT.maxother = 60


def short(value: Any) -> str:
    """`repr(value)`, cut to a few elements and levels and 120 characters (error messages)."""
    text = _SHORT.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


class StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}  # node id -> values it expands to

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"more than {MAX_ALIASES} aliases (*name): refused", mark
                )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels: refused", mark
                )
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None and id(node) not in self._sizes:  # an alias's node is sized already
            self._sizes[id(node)] = self._expanded(node)
        return node

    def _expanded(self, node: yaml.Node) -> int:
        if isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size = 1 + sum(
                self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
            )
        else:
            size = 1
        if size > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"expands to more than {MAX_NODES:,} values: refused", node.start_mark
            )
        return size

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {short(key)}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """One YAML document, strictly (raises yaml.YAMLError, one line of it names the problem)."""
    if len(text) > MAX_BYTES:
        raise yaml.YAMLError(f"larger than {MAX_BYTES // 1024} KiB: refused")
    return yaml.load(text, Loader=StrictLoader)  # a SafeLoader subclass


def one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())
