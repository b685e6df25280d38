"""vis.json `HistogramChart`: the distribution of `histogram.value`, binned here.

`prebinCount` names a column that already holds counts (the value column is then the bin's
start); otherwise every row counts once. At most `maxbins` bins (default: what the width allows)
of at least `minstep` each, so latencies bin the way Pixie's chart bins them.
"""

from __future__ import annotations

import math

from rich.text import Text

from pxtui.format import FormattedTable
from pxtui.widgets.bar_drawing import Bar, draw_columns
from pxtui.widgets.chart_canvas import join_lines
from pxtui.widgets.vis_panel import VisPanel

DEFAULT_MAX_BINS = 30


def bin_values(values: list[tuple[float, float]], max_bins: int, min_step: float) -> tuple[float, float, list[float]]:
    """(first edge, step, counts) for (value, weight) pairs; equal-width bins over the range."""
    if not values:
        return 0.0, 1.0, []
    lo = min(v for v, _ in values)
    hi = max(v for v, _ in values)
    span = hi - lo
    step = max(span / max(1, max_bins), min_step, 1e-12)
    if span == 0:
        step = max(min_step, 1.0)
    n = max(1, min(max_bins, math.floor(span / step) + 1))
    counts = [0.0] * n
    for v, w in values:
        counts[min(n - 1, int((v - lo) / step))] += w
    return lo, step, counts


class HistogramChart(VisPanel):
    """Vertical bars, the value range under them, counts on the left."""

    def prepare(self, model: FormattedTable) -> None:
        hist = self.spec.get("histogram") or {}
        self.value_column = str(hist.get("value") or "")
        raw_values = self.column(model, self.value_column).to_pylist()
        count_col = hist.get("prebinCount")
        weights = self.column(model, count_col).to_pylist() if count_col else [1] * len(raw_values)
        self.pairs = [(float(v), float(w or 0)) for v, w in zip(raw_values, weights, strict=True) if v is not None]
        self.max_bins = int(hist.get("maxbins") or DEFAULT_MAX_BINS)
        self.min_step = float(hist.get("minstep") or 0.0)
        self.x_label = str((self.spec.get("xAxis") or {}).get("label") or self.value_column)
        self.y_label = str((self.spec.get("yAxis") or {}).get("label") or "count")

    def draw(self, width: int, height: int) -> Text:
        g = self.glyphs
        assert self.model is not None
        bins = max(1, min(self.max_bins, (width - 8) // 2))
        lo, step, counts = bin_values(self.pairs, bins, self.min_step)
        if not counts:
            return Text("no values in this window", style="dim italic")
        bars = [Bar(str(i), [(c, "cyan", g.bar)]) for i, c in enumerate(counts)]

        def value(v: float) -> str:
            return str(round(v)) if float(v).is_integer() else f"{v:.1f}"

        def x_text(v: float) -> str:
            return self.value_label(self.model, self.value_column, v) if self.model else str(v)

        first = x_text(lo)
        last = x_text(lo + step * len(counts))
        head = Text(f"{self.y_label} by {self.x_label}", style="bold", no_wrap=True, overflow="crop")
        body = draw_columns(bars, width, height - 1, g, value, axis_labels=(first, last))
        return join_lines([head, body])
