"""Bars as text, shared by BarChart and HistogramChart: horizontal rows or vertical columns.

A bar is a list of segments (value, colour, fill character); stacked bars have several. Fill
characters differ per stack key, so stacks read without colour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text

from pxtui.widgets.chart_canvas import Canvas, fit
from pxtui.widgets.glyphs import Glyphs


@dataclass
class Bar:
    label: str
    segments: list[tuple[float, str, str]]  # (value, style, fill character)

    @property
    def total(self) -> float:
        return sum(max(0.0, v) for v, _, _ in self.segments)


def draw_rows(bars: list[Bar | str], width: int, g: Glyphs, value_text: Callable[[float], str]) -> list[Text]:
    """One line per bar: label, bar, value. A plain string in `bars` is a group heading."""
    real = [b for b in bars if isinstance(b, Bar)]
    if not real:
        return [Text("no rows", style="dim italic")]
    lw = min(max(len(b.label) for b in real), max(6, width // 3))
    values = [value_text(b.total) for b in real]
    vw = max(len(v) for v in values)
    room = max(1, width - lw - vw - 3)
    top = max((b.total for b in real), default=0.0) or 1.0
    lines: list[Text] = []
    for item in bars:
        if isinstance(item, str):
            lines.append(Text(fit(item, width, g.ellipsis), style="bold"))
            continue
        line = Text(no_wrap=True, overflow="crop")
        line.append(fit(item.label, lw, g.ellipsis).ljust(lw) + " ")
        used = 0
        for value, style, ch in item.segments:
            cells = round(max(0.0, value) / top * room)
            cells = min(cells, room - used)
            line.append(ch * cells, style=style)
            used += cells
        line.append(" " * (room - used + 1))
        line.append(value_text(item.total).rjust(vw), style="dim")
        lines.append(line)
    return lines


def draw_columns(bars: list[Bar], width: int, height: int, g: Glyphs,
                 value_text: Callable[[float], str], axis_labels: tuple[str, str] | None = None) -> Text:
    """Vertical bars over an x axis; labels under the bars, or `axis_labels` (first, last)."""
    if not bars:
        return Text("no rows", style="dim italic")
    plot_h = height - 2
    if plot_h < 2:
        return Text(f"{len(bars)} bars (too little room)", style="dim")
    top = max(b.total for b in bars) or 1.0
    labels = [value_text(top), value_text(top / 2), value_text(0)]
    lw = max(len(s) for s in labels)
    plot_w = width - lw - 1
    n = len(bars)
    cw = max(1, min(8, plot_w // n - 1)) if n else 1
    fit_n = max(1, plot_w // (cw + 1))
    shown = bars[:fit_n]
    canvas = Canvas(width, plot_h + 2)
    for row, text in ((0, labels[0]), (plot_h // 2, labels[1]), (plot_h - 1, labels[2])):
        canvas.write(0, row, text.rjust(lw), "dim")
    for y in range(plot_h):
        canvas.put(lw, y, g.v_line, "dim")
    canvas.put(lw, plot_h, g.corner, "dim")
    for x in range(lw + 1, width):
        canvas.put(x, plot_h, g.h_line, "dim")
    for i, bar in enumerate(shown):
        x0 = lw + 1 + i * (cw + 1) + 1
        level = 0.0  # in eighths of a cell
        for value, style, ch in bar.segments:
            eighths = max(0.0, value) / top * plot_h * 8
            start, end = level, level + eighths
            for cell in range(int(start // 8), plot_h):
                lo, hi = cell * 8, cell * 8 + 8
                covered = min(hi, end) - max(lo, start)
                if covered <= 0:
                    break
                glyph = ch if covered >= 6 or not g.bar_eighths[1] else g.bar_eighths[max(1, round(covered))]
                if covered < 4 and g.ascii:
                    continue
                for dx in range(cw):
                    canvas.put(x0 + dx, plot_h - 1 - cell, glyph, style)
            level = end
    if axis_labels is not None:
        first, last = axis_labels
        canvas.write(lw + 1, plot_h + 1, first, "dim")
        canvas.write(max(lw + 2 + len(first), width - len(last)), plot_h + 1, last, "dim")
    else:
        for i, bar in enumerate(shown):
            x0 = lw + 1 + i * (cw + 1) + 1
            canvas.write(x0, plot_h + 1, fit(bar.label, cw, g.ellipsis if cw > 2 else ""), "dim")
    text = canvas.to_text()
    if len(shown) < n:
        text.append(f"\n+{n - len(shown)} more bars (widen the terminal)", style="dim")
    return text
