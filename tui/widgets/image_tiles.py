"""Test images as half-block tiles (`tui.widgets.preview.half_block_lines`), each under a few
caption lines, as many per row as the width allows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment
from rich.style import Style

from tui.widgets.confusion import PLAIN
from tui.widgets.preview import half_block_lines

GAP = 2


class ImageTiles:
    """A Rich renderable: `images` (uint8 [n, 3, H, W]) with `captions` (lines per image)."""

    def __init__(
        self,
        images: np.ndarray,
        captions: list[list[str]],
        *,
        mono: bool = False,
        caption_styles: list[str] | None = None,
    ) -> None:
        self.images = images
        self.captions = captions
        self.mono = mono
        self.styles = [Style.parse(s) for s in caption_styles or []]
        self._drawn: dict[int, list[Segment]] = {}  # by width: Textual measures, then draws
        self._tiles: dict[int, list[list[Segment]]] = {}  # by image, whatever the width

    def per_row(self, width: int) -> int:
        w = self.images.shape[-1]
        return max(1, (width + GAP) // (w + GAP))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        if width not in self._drawn:
            self._drawn = {width: list(self._segments(width))}
        yield from self._drawn[width]

    def _segments(self, width: int) -> Iterator[Segment]:
        n, w = len(self.images), self.images.shape[-1]
        per_row = self.per_row(width)
        lines = max((len(c) for c in self.captions), default=0)
        for start in range(0, n, per_row):
            idx = range(start, min(n, start + per_row))
            for line in range(lines):
                style = self.styles[line] if line < len(self.styles) else Style(dim=True)
                for j, i in enumerate(idx):
                    text = self.captions[i][line] if line < len(self.captions[i]) else ""
                    yield Segment(" " * GAP if j else "", PLAIN)
                    yield Segment(text[:w].ljust(w), style)
                yield Segment.line()
            tiles = [self._tile(i) for i in idx]
            for line in range(len(tiles[0])):
                for j, tile in enumerate(tiles):
                    if j:
                        yield Segment(" " * GAP, PLAIN)
                    yield from tile[line]
                yield Segment.line()
            yield Segment.line()

    def _tile(self, i: int) -> list[list[Segment]]:
        if i not in self._tiles:
            self._tiles[i] = half_block_lines(self.images[i], mono=self.mono)
        return self._tiles[i]
