"""Setup's dialogs: discard the edits or keep editing; name a preset (the file's full path shown,
a bad name refused in place, the text kept)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList
from textual.widgets.option_list import Option

from tui.screens.common import ConfirmScreen, PromptScreen
from tui.screens.setup_fields import COMPONENT_TITLES

PRESET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def preset_name_fault(name: str) -> str | None:
    """Why `name` cannot name a preset file, or None."""
    if not name:
        return "type a name"
    if not PRESET_NAME_RE.match(name):
        return f"{name!r} is not a preset name: start with a letter or digit, then use - _ ."
    return None


class DiscardEditsScreen(ConfirmScreen):
    """`y` discards the Setup edits (and loads the other preset), `n` / Escape keeps editing."""

    def __init__(self, question: str) -> None:
        super().__init__(question, yes="Discard edits")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.question))
            with Horizontal():
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Keep editing (n)", id="no")


class PresetNameScreen(PromptScreen):
    """The new preset's name; the file's path follows it as it is typed. A bad name keeps the
    dialog open with the reason under the text."""

    DEFAULT_CSS = """
    PresetNameScreen #where { color: $text-muted; width: 100%; }
    PresetNameScreen #name-error { color: $error; width: 100%; height: auto; }
    """

    def __init__(self, folder: Path, suggestion: str) -> None:
        super().__init__("Save this config as preset (name):", suggestion)
        self.folder = folder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(self.value, id="answer")
            yield Label(Text(self._where(self.value)), id="where")
            yield Label("", id="name-error")
            yield Label("Enter: save   Escape: cancel", classes="dim")

    def _where(self, name: str) -> str:
        return f"file: {self.folder.resolve() / (name or '?')}.yaml"

    def on_input_changed(self, event: Input.Changed) -> None:
        self.query_one("#where", Label).update(Text(self._where(event.value.strip())))
        self.query_one("#name-error", Label).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.prevent_default()  # not PromptScreen's handler: it would close on any text
        name = event.value.strip()
        fault = preset_name_fault(name)
        if fault is not None:
            self.query_one("#name-error", Label).update(Text(fault))
            return
        self.dismiss(name)


@dataclass(frozen=True)
class JumpTarget:
    """A place in the Setup form: a section (its first field) or one field, by key path."""

    label: str  # `optim` (a section: "optimizer"), `optim.lr` (a field)
    title: str  # what the list shows
    path: tuple[Any, ...]  # the control to focus


def jump_targets(paths: Iterable[tuple[Any, ...]]) -> list[JumpTarget]:
    """Every section of the form (at its first field), then every field, in the form's order,
    from the key paths of the form's controls."""
    sections: list[JumpTarget] = []
    fields: list[JumpTarget] = []
    for path in paths:
        section = str(path[0])
        if not any(t.label == section for t in sections):
            title = "augmentations" if section == "augment" else section
            title = COMPONENT_TITLES.get(section, title)
            sections.append(JumpTarget(section, f"§ {title} ({section})", path))
        label = ".".join(str(k) for k in path)
        fields.append(JumpTarget(label, label, path))
    return sections + fields


class JumpScreen(ModalScreen[JumpTarget | None]):
    """Jump to a section or a field: type part of a name (`lr`, `warm`, `train`), Enter goes to
    the highlighted match; Up / Down move in the list; Escape stays."""

    DEFAULT_CSS = """
    JumpScreen { align: center middle; }
    JumpScreen > Vertical {
        width: 60; max-width: 95%; height: 80%; border: thick $accent; padding: 0 1;
        background: $surface;
    }
    JumpScreen #jump-list { height: 1fr; border: none; }
    """
    BINDINGS = [
        Binding("escape", "cancel", "cancel"),
        Binding("down", "move(1)", "next", show=False),
        Binding("up", "move(-1)", "previous", show=False),
    ]

    def __init__(self, targets: list[JumpTarget], query: str = "") -> None:
        super().__init__()
        self.targets = targets
        self.query_text = query
        self.shown: list[JumpTarget] = []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Go to a section or a field (type to filter, Enter to go):")
            yield Input(self.query_text, placeholder="e.g. lr, warmup, train", id="jump-query")
            yield OptionList(id="jump-list")

    def on_mount(self) -> None:
        self._fill(self.query_text)
        self.query_one("#jump-query", Input).focus()

    def matches(self, text: str) -> list[JumpTarget]:
        """Targets whose name holds `text` (any case); sections first, then fields."""
        t = text.strip().lower()
        return [x for x in self.targets if t in x.label.lower() or t in x.title.lower()]

    def _fill(self, text: str) -> None:
        self.shown = self.matches(text)
        options = self.query_one("#jump-list", OptionList)
        options.clear_options()
        options.add_options([Option(Text(x.title)) for x in self.shown])
        if self.shown:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._go(self.query_one("#jump-list", OptionList).highlighted)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._go(event.option_index)

    def _go(self, index: int | None) -> None:
        if index is None or not 0 <= index < len(self.shown):
            self.notify("no section or field matches: change the text", severity="warning")
            return
        self.dismiss(self.shown[index])

    def action_move(self, step: int) -> None:
        options = self.query_one("#jump-list", OptionList)
        if self.shown:
            now = options.highlighted or 0
            options.highlighted = max(0, min(len(self.shown) - 1, now + step))

    def action_cancel(self) -> None:
        self.dismiss(None)
