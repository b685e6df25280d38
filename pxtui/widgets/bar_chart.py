"""vis.json `BarChart`: `bar.value` per `bar.label`, optionally stacked (`stackBy`) and grouped
(`groupBy`), horizontal or vertical as `bar.horizontal` says.

Values of rows sharing a label (and stack key) are summed, as a chart of a grouped-by table
expects; labels keep the order the script returned them in.
"""

from __future__ import annotations

from rich.text import Text

from pxtui.format import FormattedTable
from pxtui.widgets.bar_drawing import Bar, draw_columns, draw_rows
from pxtui.widgets.chart_canvas import PALETTE, join_lines
from pxtui.widgets.vis_panel import VisPanel


class BarChart(VisPanel):
    """Bars per label; with `groupBy`, a heading per group (rows) or groups side by side."""

    def prepare(self, model: FormattedTable) -> None:
        bar = self.spec.get("bar") or {}
        self.value_column = str(bar.get("value") or "")
        values = self.column(model, self.value_column).to_pylist()
        labels = [str(v) for v in self.column(model, bar.get("label")).to_pylist()]
        stack_col, group_col = bar.get("stackBy"), bar.get("groupBy")
        stacks = [str(v) for v in self.column(model, stack_col).to_pylist()] if stack_col else [""] * len(values)
        groups = [str(v) for v in self.column(model, group_col).to_pylist()] if group_col else [""] * len(values)
        self.horizontal = bool(bar.get("horizontal"))
        self.stack_keys = list(dict.fromkeys(stacks))
        sums: dict[tuple[str, str], dict[str, float]] = {}
        for g, lab, s, v in zip(groups, labels, stacks, values, strict=True):
            if v is None:
                continue
            per = sums.setdefault((g, lab), {})
            per[s] = per.get(s, 0.0) + float(v)
        self.groups: dict[str, list[Bar]] = {}
        for (g, lab), per in sums.items():
            segments = []
            for k, key in enumerate(self.stack_keys):
                if key in per:
                    fill = self.glyphs.bar_fills[k % len(self.glyphs.bar_fills)] if stack_col else self.glyphs.bar
                    segments.append((per[key], PALETTE[k % len(PALETTE)], fill))
            self.groups.setdefault(g, []).append(Bar(lab, segments))

    def _value_text(self, v: float) -> str:
        assert self.model is not None
        return self.value_label(self.model, self.value_column, round(v) if float(v).is_integer() else v)

    def draw(self, width: int, height: int) -> list[Text] | Text:
        g = self.glyphs
        legend: list[Text] = []
        if len(self.stack_keys) > 1:
            line = Text(no_wrap=True, overflow="crop")
            for k, key in enumerate(self.stack_keys):
                line.append(f"{g.bar_fills[k % len(g.bar_fills)]} {key}  ", style=PALETTE[k % len(PALETTE)])
            legend.append(line)
        if self.horizontal or (len(self.groups) > 1 and not self.horizontal and height < 8):
            items: list[Bar | str] = []
            for name, bars in self.groups.items():
                if name:
                    items.append(name)
                items.extend(bars)
            return legend + draw_rows(items, width, g, self._value_text)
        bars: list[Bar] = []
        for name, group in self.groups.items():
            for b in group:
                bars.append(Bar(f"{name}/{b.label}" if name else b.label, b.segments))
        body = draw_columns(bars, width, height - len(legend), g, self._value_text)
        return join_lines([*legend, body])
