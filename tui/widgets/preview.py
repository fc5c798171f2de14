"""Augmentation preview: pairs of 32x32 images (original, augmented) drawn with half blocks.

`▀` with fg = upper pixel, bg = lower pixel: a 32x32 image is 32 columns x 16 lines. Without
colour (NO_COLOR) the pixels become shade characters of their luminance.
"""

from __future__ import annotations

import os

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style
from textual.widget import Widget

from tui.widgets.confusion import PLAIN, half_block_style

SHADES = " ░▒▓█"


def half_block_lines(image: np.ndarray, *, mono: bool = False) -> list[list[Segment]]:
    """image: uint8 [3, H, W] -> H/2 lines of W segments (odd H: the last half is blank)."""
    img = np.asarray(image, dtype=np.uint8)
    _, h, w = img.shape
    lines = []
    for y in range(0, h, 2):
        row = []
        for x in range(w):
            up = tuple(int(c) for c in img[:, y, x])
            low = tuple(int(c) for c in img[:, y + 1, x]) if y + 1 < h else None
            if mono:
                lum = (0.299 * up[0] + 0.587 * up[1] + 0.114 * up[2]) / 255
                if low is not None:
                    lum = (lum + (0.299 * low[0] + 0.587 * low[1] + 0.114 * low[2]) / 255) / 2
                row.append(Segment(SHADES[min(4, int(lum * 5))], PLAIN))
            else:
                row.append(Segment("▀", half_block_style(up, low)))
        lines.append(row)
    return lines


class PreviewGrid:
    """A Rich renderable: as many (original | augmented) pairs per row as the width allows."""

    def __init__(
        self,
        original: np.ndarray,
        augmented: np.ndarray,
        captions: list[str],
        *,
        mono: bool = False,
    ) -> None:
        self.original = original
        self.augmented = augmented
        self.captions = captions
        self.mono = mono

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Rows of images: captions, then the originals, then the same images augmented."""
        n, _, _, w = self.original.shape
        gap = 2
        per_row = max(1, (options.max_width + gap) // (w + gap))
        dim = Style(dim=True)
        for start in range(0, n, per_row):
            idx = list(range(start, min(n, start + per_row)))
            for j, i in enumerate(idx):
                yield Segment(" " * gap if j else "", PLAIN)
                yield Segment(self.captions[i][:w].ljust(w), dim)
            yield Segment.line()
            for images in (self.original, self.augmented):
                tiles = [half_block_lines(images[i], mono=self.mono) for i in idx]
                for line in range(len(tiles[0])):
                    for j, tile in enumerate(tiles):
                        if j:
                            yield Segment(" " * gap, PLAIN)
                        yield from tile[line]
                    yield Segment.line()
            yield Segment.line()


class AugmentPreview(Widget):
    """Shows a PreviewGrid, or a message while the engine prepares it."""

    DEFAULT_CSS = """
    AugmentPreview { height: auto; width: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.grid: PreviewGrid | None = None
        self.message = "no preview yet"

    def show_message(self, text: str) -> None:
        self.grid, self.message = None, text
        self.refresh(layout=True)

    def show_npz(self, path: os.PathLike[str] | str) -> int:
        """Load an `engine preview` npz; returns the number of image pairs."""
        with np.load(path, allow_pickle=False) as z:
            original, augmented = z["original"], z["augmented"]
            names = [str(x) for x in z["class_names"]]
            labels = z["labels"]
        captions = [names[int(lab)] for lab in labels]
        self.grid = PreviewGrid(
            original, augmented, captions, mono=bool(os.environ.get("NO_COLOR"))
        )
        self.refresh(layout=True)
        return len(original)

    def render(self):  # noqa: ANN201 - a Rich renderable
        return self.grid if self.grid is not None else self.message
