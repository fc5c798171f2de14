"""The `?` / F1 dialog: every key in effect on the screen below it, read from the live bindings
(app, screen, and the focused widget when it is one of ours), so it cannot drift from the code."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.keys import format_key
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

SCREEN_KEYS = ("setup", "monitor", "results", "runs")  # keys 1-4, and alt+1-4 (work in text fields)
# what the bindings cannot say
NOTES = (
    ("enter", "choose: a preset, a menu entry, a run", "lists"),
    ("arrows", "move in lists, tables and the confusion matrix", "lists"),
)
TEXT_FIELD_NOTE = (
    "In a text field, digits and letters type: switch screens with alt+1..alt+4, "
    "or press escape / tab to leave the field first."
)


def key_text(key: str) -> str:
    """'ctrl+l' -> 'ctrl+l', 'question_mark' -> '?', 'alt+1' -> 'alt+1'."""
    *mods, last = key.split("+")
    return "+".join([*mods, format_key(last)])


def binding_rows(screen: Screen) -> list[tuple[str, str, str]]:
    """(where, keys, what) for each action bound on the app, `screen` or one of our widgets in
    its focus chain; the keys of one action are joined ('ctrl+l / l')."""
    rows: dict[tuple[str, str], list[str]] = {}
    for key, active in screen.active_bindings.items():
        binding, node = active.binding, active.node
        if binding.system or not binding.description:
            continue
        if isinstance(node, App):
            where = "everywhere"
        elif node is screen:
            where = screen.__class__.__name__.removesuffix("Screen").lower()
        elif type(node).__module__.startswith("tui."):
            where = type(node).__name__
        else:
            continue  # Textual's own widget keys (cursor movement, editing)
        keys = rows.setdefault((where, binding.description), [])
        if key not in keys:
            keys.append(key)
    order = {"everywhere": 1}
    out = [
        (where, " / ".join(key_text(k) for k in keys), what) for (where, what), keys in rows.items()
    ]
    return sorted(out, key=lambda r: order.get(r[0], 0))  # stable: screen keys first


class KeysScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > VerticalScroll {
        width: 84; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,question_mark,f1,q", "close", "close")]

    def __init__(self, title: str, rows: list[tuple[str, str, str]], in_text_field: bool) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows
        self.in_text_field = in_text_field

    @classmethod
    def for_screen(cls, screen: Screen) -> KeysScreen:
        from textual.widgets import Input

        focused = screen.focused
        name = screen.__class__.__name__.removesuffix("Screen")
        return cls(f"Keys: {name}", binding_rows(screen), isinstance(focused, Input))

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        table.add_column(style="dim", no_wrap=True)
        for where, keys, what in self.rows:
            table.add_row(keys, what, where)
        for keys, what, where in NOTES:
            table.add_row(keys, what, where)
        note = Text(TEXT_FIELD_NOTE, style="bold yellow" if self.in_text_field else "dim")
        with VerticalScroll():
            yield Static(Text(self.title_text, style="bold"))
            yield Static(table)
            yield Static(note)
            yield Static(Text("escape, ? or F1 closes", style="dim"))

    def action_close(self) -> None:
        self.dismiss()
