"""Setup's dialogs: discard the edits or keep editing; name a preset (the file's full path shown,
a bad name refused in place, the text kept)."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label

from tui.screens.common import ConfirmScreen, PromptScreen

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
    PresetNameScreen #where { color: $text-muted; }
    PresetNameScreen #name-error { color: $error; height: auto; }
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
