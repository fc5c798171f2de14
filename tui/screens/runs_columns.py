"""The Runs screen's column picker: any key of the runs' resolved configs as a table column."""

from __future__ import annotations

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

HELP = "space / Enter: show or hide · type to find a key · Escape: done"


class ColumnsScreen(ModalScreen[list[str]]):
    """Dismissed with the chosen keys: those shown before keep their place, new ones follow in
    the order they were ticked. A tick is `[x]`, readable without colour."""

    DEFAULT_CSS = """
    ColumnsScreen { align: center middle; }
    ColumnsScreen > Vertical {
        width: 76; max-width: 100%; height: 90%; border: thick $accent; padding: 0 1;
        background: $surface;
    }
    ColumnsScreen #keys { height: 1fr; }
    ColumnsScreen Label { width: 100%; }
    """
    BINDINGS = [
        Binding("escape", "done", "done"),
        Binding("space", "tick", "show / hide", show=False),
    ]

    def __init__(self, keys: list[tuple[str, list[str]]], chosen: list[str]) -> None:
        super().__init__()
        self.keys = keys  # (key, its distinct values), the keys that vary first
        self.chosen = list(chosen)
        self.shown: list[str] = []  # the keys listed, in the list's order

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text("Columns: config keys of the runs (values that differ first)", "bold"))
            yield Input(
                placeholder="find a key, e.g. optim or lr", id="find", select_on_focus=False
            )
            yield OptionList(id="keys")
            yield Label(Text(HELP, "dim"))

    def on_mount(self) -> None:
        self.show_keys("")
        self.query_one("#keys", OptionList).focus()

    def prompt(self, key: str, values: list[str], width: int) -> Text:
        more = f" +{len(values) - 3}" if len(values) > 3 else ""
        return Text.assemble(
            "[x] " if key in self.chosen else "[ ] ",
            key.ljust(width),
            "  ",
            (" · ".join(values[:3]) + more, "dim"),
            no_wrap=True,
            overflow="ellipsis",
        )

    def show_keys(self, find: str) -> None:
        widget = self.query_one("#keys", OptionList)
        widget.clear_options()
        terms = find.lower().split()
        shown = [(k, v) for k, v in self.keys if all(t in k.lower() for t in terms)]
        self.shown = [k for k, _ in shown]
        width = max((len(k) for k, _ in shown), default=0)
        widget.add_options([Option(self.prompt(k, v, width)) for k, v in shown])
        if not shown:
            widget.add_option(Option(Text(f"no key holds {find!r}", "dim"), disabled=True))
        elif widget.highlighted is None:
            widget.highlighted = 0

    def action_tick(self) -> None:
        widget = self.query_one("#keys", OptionList)
        at = widget.highlighted
        if not widget.has_focus or at is None or at >= len(self.shown):
            return
        key = self.shown[at]
        if key in self.chosen:
            self.chosen.remove(key)
        else:
            self.chosen.append(key)
        values = dict(self.keys)[key]
        width = max(len(k) for k in self.shown)
        widget.replace_option_prompt_at_index(at, self.prompt(key, values, width))

    @on(OptionList.OptionSelected, "#keys")
    def _selected(self, _event: OptionList.OptionSelected) -> None:
        self.action_tick()  # Enter or a click

    @on(Input.Changed, "#find")
    def _find(self, event: Input.Changed) -> None:
        self.show_keys(event.value)

    @on(Input.Submitted, "#find")
    def _found(self, _event: Input.Submitted) -> None:
        self.query_one("#keys", OptionList).focus()

    def on_key(self, event: events.Key) -> None:
        """A printable key typed in the list goes to the finder."""
        if not self.query_one("#keys", OptionList).has_focus:
            return
        if event.is_printable and event.character and event.character != " ":
            find = self.query_one("#find", Input)
            find.focus()
            find.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    def action_done(self) -> None:
        self.dismiss(self.chosen)
