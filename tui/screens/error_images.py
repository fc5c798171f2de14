"""The test images behind a Results number (a confusion cell, a class's false positives or
negatives, the top losses): half-block pictures with true class, prediction and confidence,
sortable by confidence. Opened over Results; escape goes back."""

from __future__ import annotations

import os

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from tui.fmt import pct
from tui.orchestration.error_analysis import DERIVED, Predictions, Selection, by_confidence
from tui.widgets.image_tiles import ImageTiles

SHOWN = 120  # at most this many pictures (the first ones in the current order)


def captions(p: Predictions, rows: np.ndarray, names: list[str]) -> list[list[str]]:
    """Per image: test index, confidence and loss; true class; predicted class."""
    out = []
    for r in rows:
        pred = int(p.pred[r])
        out.append(
            [
                f"#{int(p.index[r])} {pct(p.confidence[r], 1)} loss {p.losses[r]:.2f}",
                f"true {names[int(p.labels[r])]}",
                f"pred {names[pred]}",
            ]
        )
    return out


class ErrorImagesScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    ErrorImagesScreen { background: $surface; }
    ErrorImagesScreen #images-title { height: auto; background: $panel; padding: 0 1; }
    ErrorImagesScreen #images-note { height: auto; padding: 0 1; }
    ErrorImagesScreen #images-scroll { height: 1fr; padding: 0 1; }
    ErrorImagesScreen #images { height: auto; }
    """
    BINDINGS = [
        Binding("escape,backspace", "close", "back to results"),
        Binding("s", "sort", "sort by confidence"),
    ]

    def __init__(
        self,
        selection: Selection,
        predictions: Predictions,
        class_names: list[str],
        images: np.ndarray | None,
        *,
        run_name: str = "",
        unavailable: str | None = None,
    ) -> None:
        super().__init__()
        self.selection = selection
        self.predictions = predictions
        self.class_names = class_names
        self.images = images  # the whole test set, indexed by Predictions.index
        self.run_name = run_name
        self.unavailable = unavailable
        self.rows = selection.rows
        self.order = selection.order
        self.highest_first: bool | None = None  # None: the selection's own order

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("", id="images-title")
            yield Static("", id="images-note")
            with VerticalScroll(id="images-scroll"):
                yield Static("", id="images")
        yield Footer()

    def on_mount(self) -> None:
        self.show()

    def shown_rows(self) -> np.ndarray:
        return self.rows[:SHOWN]

    def show(self) -> None:
        n = len(self.rows)
        title = Text.assemble(
            ("Images", "bold"),
            f"  {self.run_name}  " if self.run_name else "  ",
            (self.selection.title, "bold"),
            f"  {n} image{'s' if n != 1 else ''}",
            (f", the first {SHOWN} shown" if n > SHOWN else "", "bold"),
            (f"  by {self.order}", "dim"),
        )
        self.query_one("#images-title", Static).update(title)
        notes = [DERIVED] if self.predictions.derived else []
        if self.unavailable and n:
            notes.append(f"no pictures: {self.unavailable}")
        self.query_one("#images-note", Static).update(Text("\n".join(notes), style="yellow"))
        body = self.query_one("#images", Static)
        rows = self.shown_rows()
        if not n:
            body.update(Text(self.selection.empty, style="bold"))
        elif self.images is None:
            lines = ["   ".join(c) for c in captions(self.predictions, rows, self.class_names)]
            body.update("\n".join(lines))
        else:
            pictures = self.images[self.predictions.index[rows]]
            body.update(
                ImageTiles(
                    pictures,
                    captions(self.predictions, rows, self.class_names),
                    mono=bool(os.environ.get("NO_COLOR")),
                    caption_styles=["bold", "green", "red"],
                )
            )

    def action_sort(self) -> None:
        """By confidence, highest first; again: lowest first; and so on."""
        self.highest_first = not self.highest_first if self.highest_first is not None else True
        if self.order == "confidence, highest first" and self.highest_first:
            self.highest_first = False  # the selection is sorted so already: reverse it
        self.rows = by_confidence(self.predictions, self.rows, self.highest_first)
        self.order = f"confidence, {'highest' if self.highest_first else 'lowest'} first"
        self.show()
        self.query_one("#images-scroll", VerticalScroll).scroll_home(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
