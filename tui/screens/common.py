"""Pieces the screens share: the typed base screen, the title bar, modal dialogs, number
formatting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerState

from tui.fmt import duration, pct

if TYPE_CHECKING:  # tui.app imports the screens: a runtime import would be circular
    from tui.app import CifarApp

__all__ = [
    "CifarScreen",
    "ConfirmScreen",
    "PromptScreen",
    "TitleBar",
    "duration",
    "pass_worker_error_on",
    "pct",
    "synthetic_tag",
]


def pass_worker_error_on(screen: Screen[Any], event: Worker.StateChanged) -> None:
    """Worker.StateChanged does not bubble (Textual posts it to the worker's node only): a screen
    passes its workers' failures on, so that the app's one handler shows every one of them."""
    if event.state is WorkerState.ERROR:
        screen.app.post_message(event)


class CifarScreen(Screen[None]):
    """A screen of the dashboard: `self.cifar` is the running app, typed as CifarApp; the
    failures of its workers reach the app (CifarApp.on_worker_state_changed)."""

    @property
    def cifar(self) -> CifarApp:
        return cast("CifarApp", self.app)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        pass_worker_error_on(self, event)


def synthetic_tag(synthetic: bool) -> Text:
    return Text(" SYNTHETIC ", style="bold reverse") if synthetic else Text("")


class TitleBar(Static):
    """One line: screen name, then whatever the screen says about its run."""

    DEFAULT_CSS = """
    TitleBar { height: 1; background: $panel; color: $text; padding: 0 1; }
    """

    def __init__(self, screen_name: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.screen_name = screen_name

    def set(self, *parts: str | Text) -> None:
        text = Text.assemble((f"{self.screen_name}", "bold"))
        for part in parts:
            if part:
                text.append("  ")
                text.append(part if isinstance(part, Text) else Text(part))
        self.update(text)

    def on_mount(self) -> None:
        self.set()


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no. `y` or Enter on Yes confirms; `n` or Escape cancels."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 60; max-width: 95%; height: auto; border: thick $warning; padding: 1 2;
        background: $surface;
    }
    ConfirmScreen Label { width: 100%; }  /* wraps at word boundaries, never cut */
    ConfirmScreen Horizontal { height: auto; margin-top: 1; }
    ConfirmScreen Button { margin-right: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, question: str, yes: str = "Yes") -> None:
        super().__init__()
        self.question = question
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            with Horizontal():
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PromptScreen(ModalScreen[str | None]):
    """One line of text; Enter submits, Escape cancels (None)."""

    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical {
        width: 60; max-width: 95%; height: auto; border: thick $accent; padding: 1 2;
        background: $surface;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def __init__(self, question: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.question = question
        self.value = value
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question)
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Label("Enter: ok   Escape: cancel", classes="dim")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
