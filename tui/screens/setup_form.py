"""The Setup form's pieces: one labelled row per config value, the editing control each value gets
(menu, checkbox, auto/true/false menu or text field), and the rows of a component (its name menu,
its description, its parameters) or of a plain config section.

Each control is tagged with the key path of the value it edits (`control_path`), which is how the
screen knows where a Changed message's value goes. The metadata comes from
`tui.screens.setup_fields`, as plain records.
"""

from __future__ import annotations

import re
from typing import Any
from weakref import WeakKeyDictionary

import yaml
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Button, Checkbox, Input, Label, Select, Static

from engine import strict_yaml
from tui.screens.setup_fields import (
    COMPONENT_TITLES,
    NONE,
    OPTIONAL_SECTIONS,
    SECTIONS,
    FieldSpec,
    component_entries,
    component_entry,
    component_fields,
    section_fields,
)

Path_ = tuple[Any, ...]  # a key path into the raw config, e.g. ("augment", 0, "p")

_PATHS: WeakKeyDictionary[Widget, Path_] = WeakKeyDictionary()


def control_path(widget: Widget) -> Path_ | None:
    """The key path of the config value `widget` edits; None for any other widget."""
    return _PATHS.get(widget)


def _tag(widget: Widget, path: Path_) -> None:
    _PATHS[widget] = path


def value_text(value: Any) -> str:
    """A value as the user would type it (YAML scalars)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return yaml.safe_dump(list(value), default_flow_style=True).strip()
    return str(value)


# YAML 1.1 (PyYAML) reads `1e-08` as a string: a float without a dot in its mantissa
EXPONENT_FLOAT_RE = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_value(text: str) -> Any:
    """A typed value as YAML reads it; numbers like 1e-08 become floats."""
    if not text.strip():
        return None
    try:
        value = strict_yaml.load(text)
    except yaml.YAMLError:  # kept as typed: the config check names what is wrong
        return text
    if isinstance(value, str) and EXPONENT_FLOAT_RE.fullmatch(value.strip()):
        return float(value)
    return value


def device_choices(doc: str) -> list[str]:
    """The device menu from the field's documented forms ('auto | cpu | cuda | cuda:N')."""
    out: list[str] = []
    for token in (t.strip() for t in doc.split("|")):
        if token.endswith(":N"):
            out += [f"{token[:-2]}:{i}" for i in range(4)]
        elif token:
            out.append(token)
    return out


class TickBox(Checkbox):
    """A checkbox whose state is a glyph, `[x]` or `[ ]`, not only a colour (NO_COLOR)."""

    @property
    def _button(self) -> Content:
        style = self.get_visual_style("toggle--button")
        return Content.assemble((f"[{'x' if self.value else ' '}]", style))


class FieldRow(Horizontal):
    """label + one editing control, one line high."""

    DEFAULT_CSS = """
    FieldRow { height: 1; margin: 0 0 0 2; }
    FieldRow > Label { width: 20; color: $text-muted; }
    FieldRow > Input { width: 1fr; max-width: 30; }
    FieldRow > Select { width: 1fr; max-width: 30; }
    FieldRow > Checkbox { width: 7; }
    FieldRow:focus-within { background: $boost; }
    FieldRow:focus-within > Label { color: $accent; text-style: bold reverse; }
    """


def control(path: Path_, value: Any, annotation: str, choices: tuple[str, ...] | None) -> Widget:
    """The editing widget for one value, tagged with `path`."""
    widget: Widget
    if choices:
        options = [(c, c) for c in choices]
        if value is not None and value not in choices:
            options.append((str(value), value))
        widget = Select(options, value=value, allow_blank=value is None, compact=True)
    elif annotation.replace(" ", "") == "bool":
        widget = TickBox(value=bool(value), compact=True)
    elif annotation.replace(" ", "") in ("bool|None", "None|bool"):  # null means auto
        current = "auto" if value is None else value_text(bool(value))
        options = [(c, c) for c in ("auto", "true", "false")]
        widget = Select(options, value=current, allow_blank=False, compact=True)
    else:
        widget = Input(value_text(value), placeholder=annotation, compact=True)
    _tag(widget, path)
    return widget


def name_select(section: str, path: Path_, name: str | None) -> Select[str]:
    """The menu of a component's entries (`none` first for an optional one)."""
    options = [(e.name, e.name) for e in component_entries(section)]
    if section in OPTIONAL_SECTIONS:
        options.insert(0, (NONE, NONE))
    value = Select.NULL if name is None else name  # no name: the first entry
    select: Select[str] = Select(options, value=value, allow_blank=False, compact=True)
    _tag(select, (*path, "name"))
    return select


def _limits_text(spec: FieldSpec) -> str:
    if spec.limits is None:
        return ""
    lo, hi, open_lo = spec.limits
    bracket = "(" if open_lo or lo is None else "["
    lo_t = "-inf" if lo is None else f"{lo:g}"
    hi_t = "inf" if hi is None else f"{hi:g}"
    return f" in {bracket}{lo_t}, {hi_t}]"


def param_widgets(section: str, path: Path_, comp: dict[str, Any]) -> list[Widget]:
    """The entry's description, then one row per keyword parameter of its builder."""
    name = comp.get("name")
    entry = component_entry(section, name)
    if entry is None:
        return []
    widgets: list[Widget] = [Static(entry.doc, classes="doc")]
    for spec in component_fields(section, entry.name):
        value = comp.get(spec.name, spec.default)
        widget = control((*path, spec.name), value, spec.type, spec.choices)
        tip = f"{spec.name}: {spec.type}{_limits_text(spec)}"
        if spec.has_default:
            tip += f" (default {spec.default!r})"
        widget.tooltip = tip
        widgets.append(FieldRow(Label(spec.name), widget))
    return widgets


def component_widgets(section: str, path: Path_, comp: dict[str, Any] | None) -> list[Widget]:
    """A component's name menu, then (unless it is left out) its parameters."""
    if comp is None:
        return [FieldRow(Label("name"), name_select(section, path, NONE))]
    select = name_select(section, path, comp.get("name"))
    return [FieldRow(Label("name"), select), *param_widgets(section, path, comp)]


def section_rows(section: str, values: dict[str, Any]) -> list[Widget]:
    """One row per field of a plain config section (`data`, `train`, `eval`)."""
    rows: list[Widget] = []
    for spec in section_fields(section):
        choices = spec.choices
        if spec.name == "device" and spec.pattern is not None:
            choices = tuple(device_choices(spec.doc))
        widget = control(
            (section, spec.name), values.get(spec.name, spec.default), spec.type, choices
        )
        widget.tooltip = spec.doc or None
        rows.append(FieldRow(Label(spec.name), widget))
    return rows


def form_blocks(raw: dict[str, Any]) -> list[Vertical]:
    """The whole form: description, components, augmentations, plain sections."""
    description = FieldRow(
        Label("text"), control(("description",), raw.get("description"), "str", None)
    )
    blocks = [
        Vertical(Label("description", classes="section"), description, classes="block"),
        *(
            Vertical(*section_widgets(section, raw), id=f"sec-{section}", classes="block")
            for section in COMPONENT_TITLES
        ),
        Vertical(
            Label("augmentations (applied in this order)", classes="section"),
            Vertical(*aug_widgets(raw), id="augs"),
            Button("+ add augmentation", id="add-aug", compact=True),
            classes="block",
        ),
    ]
    for section in SECTIONS:
        rows = section_rows(section, raw.get(section) or {})
        blocks.append(Vertical(Label(section, classes="section"), *rows, classes="block"))
    return blocks


def section_widgets(section: str, raw: dict[str, Any]) -> list[Widget]:
    """A component's block: its title, name menu and parameters."""
    title = Label(COMPONENT_TITLES[section], classes="section")
    return [title, *component_widgets(section, (section,), raw.get(section))]


def aug_widgets(raw: dict[str, Any]) -> list[Widget]:
    """The augmentation list: each entry's menu, move/remove buttons and parameters."""
    out: list[Widget] = []
    augs = raw.get("augment") or []
    for i, comp in enumerate(augs):
        path = ("augment", i)
        head = Horizontal(
            Label(f"{i + 1}. "),
            name_select("augment", path, comp.get("name")),
            Button("↑", id=f"aug-up-{i}", compact=True, tooltip="move up"),
            Button("↓", id=f"aug-down-{i}", compact=True, tooltip="move down"),
            Button("✕", id=f"aug-del-{i}", compact=True, tooltip="remove"),
            classes="aug-head",
        )
        out.append(Vertical(head, *param_widgets("augment", path, comp), classes="aug"))
    if not augs:
        out.append(Static("none", classes="doc"))
    return out
