"""A character grid that charts draw into, then hand to Rich as one styled Text.

Why not plotext: its axes and markers are hard-wired to box-drawing and braille characters,
which the ASCII mode must not emit, and its output changes with its own version; a 100-line grid
with our glyph table is deterministic (snapshot tests) and costs nothing to import.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

PALETTE = ("cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta")
"""Series colours (the 16-colour names, so they survive any terminal); markers differ too."""


class Canvas:
    """`width` x `height` cells, each a character and an optional Rich style name."""

    def __init__(self, width: int, height: int) -> None:
        self.width = max(0, width)
        self.height = max(0, height)
        self.chars = [[" "] * self.width for _ in range(self.height)]
        self.styles: list[list[str | None]] = [[None] * self.width for _ in range(self.height)]

    def put(self, x: int, y: int, ch: str, style: str | None = None) -> None:
        if 0 <= x < self.width and 0 <= y < self.height:
            self.chars[y][x] = ch
            self.styles[y][x] = style

    def get(self, x: int, y: int) -> str:
        return self.chars[y][x] if 0 <= x < self.width and 0 <= y < self.height else ""

    def write(self, x: int, y: int, text: str, style: str | None = None) -> None:
        """Text left to right from (x, y), cut at the right edge."""
        for i, ch in enumerate(text):
            self.put(x + i, y, ch, style)

    def to_text(self) -> Text:
        """One Text, lines joined by newlines, with runs of equal style merged."""
        out = Text(no_wrap=True, overflow="crop")
        for y in range(self.height):
            if y:
                out.append("\n")
            row, styles = self.chars[y], self.styles[y]
            start = 0
            for x in range(1, self.width + 1):
                if x == self.width or styles[x] != styles[start]:
                    out.append("".join(row[start:x]), style=styles[start] or "")
                    start = x
        return out


def scale(lo: float, hi: float, size: int) -> Callable[[float], int]:
    """Map [lo, hi] onto cells 0 .. size-1 (a flat range maps to the middle)."""
    span = hi - lo
    if span <= 0 or size <= 1:
        return lambda v: max(0, (size - 1) // 2)
    return lambda v: max(0, min(size - 1, round((v - lo) / span * (size - 1))))


def fit(text: str, width: int, ellipsis: str) -> str:
    """`text` cut to `width` cells with an ellipsis when something was dropped."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= len(ellipsis):
        return text[:width]
    return text[: width - len(ellipsis)] + ellipsis


def join_lines(lines: list[Text]) -> Text:
    """Lines into one Text that never wraps (a wrapped chart line would shift every row below)."""
    return Text("\n", no_wrap=True, overflow="crop").join(lines)
