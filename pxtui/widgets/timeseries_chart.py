"""vis.json `TimeseriesChart`: lines and areas over `time_`, split by a series column, stackable.

Each entry of `timeseries[]` names a `value` column, an optional `series` column (one line per
distinct value), `mode` (MODE_LINE / MODE_AREA) and `stackBySeries` (each series drawn on top of
the ones before it, as Pixie stacks request rates by service). Every series has its own colour
and its own marker character, and the legend names them, so the chart reads without colour.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import tzinfo

import pyarrow as pa
from rich.text import Text

from pxtui.format import FormattedTable, format_time_short
from pxtui.widgets.chart_canvas import PALETTE, Canvas, fit, join_lines, scale
from pxtui.widgets.vis_panel import VisPanel

MAX_SERIES = 8


@dataclass
class Series:
    """One line: its name, points sorted by time, and how it is drawn."""

    name: str
    points: list[tuple[int, float]] = field(default_factory=list)  # (time ns, value)
    area: bool = False
    base: list[tuple[int, float]] | None = None  # stacked: the series underneath


def _numeric(col: pa.ChunkedArray) -> list[float | None]:
    if pa.types.is_timestamp(col.type):
        col = col.cast(pa.int64())
    return [None if v is None else float(v) for v in col.to_pylist()]


def stack(series: list[Series]) -> list[Series]:
    """Add each series to the sum of the ones before it, timestamp by timestamp."""
    running: dict[int, float] = {}
    out = []
    for s in series:
        base = [(t, running.get(t, 0.0)) for t, _ in s.points]
        for t, v in s.points:
            running[t] = running.get(t, 0.0) + v
        out.append(Series(s.name, [(t, running[t]) for t, _ in s.points], s.area, base))
    return out


class TimeseriesChart(VisPanel):
    """A time axis at the bottom, value labels on the left, a legend on the first line."""

    def prepare(self, model: FormattedTable) -> None:
        raw = model.raw
        times_col = self.column(model, "time_")
        times = [int(t) for t in times_col.cast(pa.int64()).fill_null(0).to_pylist()]
        self.series: list[Series] = []
        self.value_column = ""
        hidden = 0
        for spec in self.spec.get("timeseries") or [{}]:
            value_name = spec.get("value")
            if not value_name:  # Pixie picks the first numeric column when none is named
                value_name = next((f.name for f in raw.schema if f.name != "time_"
                                   and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))), None)
            values = _numeric(self.column(model, value_name))
            self.value_column = self.value_column or value_name
            split = spec.get("series")
            keys = ([str(k) for k in self.column(model, split).to_pylist()] if split
                    else [value_name] * len(values))
            by_key: dict[str, dict[int, float]] = {}
            for t, k, v in zip(times, keys, values, strict=True):
                if v is not None:
                    bucket = by_key.setdefault(k, {})
                    bucket[t] = bucket.get(t, 0.0) + v
            area = spec.get("mode") == "MODE_AREA"
            group = [Series(k if split else value_name, sorted(pts.items()), area)
                     for k, pts in sorted(by_key.items())]
            if len(self.series) + len(group) > MAX_SERIES:
                keep = max(0, MAX_SERIES - len(self.series))
                hidden += len(group) - keep
                group = group[:keep]
            if spec.get("stackBySeries"):
                group = stack(group)
            self.series.extend(group)
        self.hidden_series = hidden
        self.t_range = (min(times), max(times)) if times else (0, 0)
        self.y_label = str((self.spec.get("yAxis") or {}).get("label") or "")

    def _y_text(self, v: float) -> str:
        assert self.model is not None
        fld = self.model.raw.schema.field(self.value_column)
        if pa.types.is_integer(fld.type):
            v = round(v)
        return self.value_label(self.model, self.value_column, v)

    def draw(self, width: int, height: int) -> Text:
        g = self.glyphs
        if not any(s.points for s in self.series):
            return Text("no points in this window", style="dim italic")
        # legend: marker + name per series, as many as fit on one line
        legend = Text(no_wrap=True, overflow="crop")
        if self.y_label:
            legend.append(f"{self.y_label}: ", style="bold")
        for i, s in enumerate(self.series):
            piece = f"{g.markers[i % len(g.markers)]} {s.name}  "
            legend.append(piece, style=PALETTE[i % len(PALETTE)])
        if self.hidden_series:
            legend.append(f"+{self.hidden_series} more series", style="dim")
        plot_h = height - 3  # legend, x axis, x labels
        if plot_h < 2:
            return legend
        lo = min(min((v for _, v in s.base or []), default=0.0) for s in self.series)
        lo = min(lo, min(v for s in self.series for _, v in s.points), 0.0)
        hi = max(v for s in self.series for _, v in s.points)
        if hi <= lo:
            hi = lo + 1.0
        labels = [self._y_text(hi), self._y_text((hi + lo) / 2), self._y_text(lo)]
        lw = min(max(len(s) for s in labels), max(4, width // 4))
        plot_w = width - lw - 1
        if plot_w < 4:
            return legend
        canvas = Canvas(width, plot_h + 2)
        for row, text in ((0, labels[0]), (plot_h // 2, labels[1]), (plot_h - 1, labels[2])):
            canvas.write(0, row, fit(text, lw, g.ellipsis).rjust(lw), "dim")
        for y in range(plot_h):
            canvas.put(lw, y, g.v_line, "dim")
        canvas.put(lw, plot_h, g.corner, "dim")
        for x in range(lw + 1, width):
            canvas.put(x, plot_h, g.h_line, "dim")
        t0, t1 = self.t_range
        tx = scale(t0, t1, plot_w)
        vy = scale(lo, hi, plot_h)

        def cell(t: int, v: float) -> tuple[int, int]:
            return lw + 1 + tx(t), plot_h - 1 - vy(v)

        for i, s in enumerate(self.series):
            colour = PALETTE[i % len(PALETTE)]
            marker = g.markers[i % len(g.markers)]
            pts = [cell(t, v) for t, v in s.points]
            if s.area:
                bases = [cell(t, v)[1] for t, v in (s.base or [(t, lo) for t, _ in s.points])]
                self._fill(canvas, pts, bases, g.area, colour)
            for (x0, y0), (x1, y1) in itertools.pairwise(pts):
                self._segment(canvas, x0, y0, x1, y1, colour)
            for x, y in pts:
                canvas.put(x, y, marker, colour)
        # x labels: start, middle and end times, where they fit
        tz = getattr(self.app, "tz", None)
        for frac, align in ((0.0, "left"), (0.5, "center"), (1.0, "right")):
            label = self._time_label(int(t0 + (t1 - t0) * frac), tz)
            x = lw + 1 + round((plot_w - 1) * frac)
            if align == "center":
                x -= len(label) // 2
            elif align == "right":
                x -= len(label) - 1
            x = max(lw + 1, min(x, width - len(label)))
            if all(canvas.get(x + k, plot_h + 1) == " " for k in range(-1, len(label) + 1) if x + k < width):
                canvas.write(x, plot_h + 1, label, "dim")
        return join_lines([legend, canvas.to_text()])

    @staticmethod
    def _time_label(ns: int, tz: tzinfo | None) -> str:
        return format_time_short(ns, tz)[:8]

    def _segment(self, canvas: Canvas, x0: int, y0: int, x1: int, y1: int, colour: str) -> None:
        """Join two points with -, |, / and \\ (or their Unicode lines), cell by cell."""
        g = self.glyphs
        steps = max(abs(x1 - x0), abs(y1 - y0))
        if steps <= 1:
            return
        for k in range(1, steps):
            x = x0 + round((x1 - x0) * k / steps)
            y = y0 + round((y1 - y0) * k / steps)
            if y1 == y0 or abs(x1 - x0) > 2 * abs(y1 - y0):
                ch = g.line_h
            elif x1 == x0 or abs(y1 - y0) > 2 * abs(x1 - x0):
                ch = g.line_v
            else:
                ch = g.line_up if (y1 < y0) == (x1 > x0) else g.line_down
            if canvas.get(x, y) in (" ", g.area):
                canvas.put(x, y, ch, colour)

    @staticmethod
    def _fill(canvas: Canvas, pts: list[tuple[int, int]], bases: list[int], ch: str, colour: str) -> None:
        """Shade between the series and its base, column by column, interpolating between points."""
        for k, ((x0, y0), (x1, y1)) in enumerate(zip(pts, pts[1:] or pts, strict=False)):
            b0, b1 = bases[k], bases[min(k + 1, len(bases) - 1)]
            for x in range(x0, max(x1, x0 + 1)):
                f = 0.0 if x1 == x0 else (x - x0) / (x1 - x0)
                top = round(y0 + (y1 - y0) * f)
                bottom = round(b0 + (b1 - b0) * f)
                for y in range(top + 1, bottom + 1):
                    if canvas.get(x, y) == " ":
                        canvas.put(x, y, ch, colour)
