"""Lays out a script's vis.json widgets on the terminal, following their 12-column grid.

Wide terminals: widgets are grouped into rows by their `position.y`; a row's height is
proportional to its tallest widget's `h` and each widget's width to its `w`, so Pixie's dashboards
keep their shape. Narrow ones (under `NARROW_WIDTH` columns, e.g. 80x24): one widget per row at a
readable fixed height, and the body scrolls (Tab moves focus, and the view, to the next widget).
A script with a single widget always gets the whole body.

Types the TUI does not draw (PieChart, VegaChart, ...) get a `PlaceholderPanel` naming them.
A script without widgets (script mode, `-f file.pxl`) gets one table per returned table, added
as results arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget as TWidget

from cluster.pxl.vis import Widget
from pxtui.format import FormattedTable
from pxtui.widgets.bar_chart import BarChart
from pxtui.widgets.flame_graph import FlameGraph
from pxtui.widgets.histogram_chart import HistogramChart
from pxtui.widgets.placeholder_panel import PlaceholderPanel
from pxtui.widgets.service_graph import ServiceGraph
from pxtui.widgets.table_panel import TablePanel
from pxtui.widgets.timeseries_chart import TimeseriesChart
from pxtui.widgets.vis_panel import VisPanel

NARROW_WIDTH = 110
"""Below this many columns side-by-side widgets get too thin to read: stack them."""

NARROW_ROW_LINES = 14
"""Height of each stacked widget in narrow mode (a table shows ~10 rows, a chart is legible)."""

PANELS: dict[str, type[VisPanel]] = {
    "TimeseriesChart": TimeseriesChart,
    "BarChart": BarChart,
    "HistogramChart": HistogramChart,
    "Graph": ServiceGraph,
    "RequestGraph": ServiceGraph,
    "StackTraceFlameGraph": FlameGraph,
}


def make_panel(widget: Widget, index: int) -> TWidget:
    """The widget class for a vis.json widget type (one file per type under widgets/)."""
    wid = f"vis-widget-{index}"
    if widget.type == "Table":
        gutter = widget.display_spec.get("gutterColumn")
        return TablePanel(widget.name, widget.output_name, id=wid, gutter_column=str(gutter) if gutter else None)
    panel = PANELS.get(widget.type)
    if panel is not None:
        return panel(widget, id=wid)
    return PlaceholderPanel(widget)


class VisLayout(VerticalScroll, can_focus=False):
    """The body of the live view; the app hands it formatted tables by output name."""

    DEFAULT_CSS = """
    VisLayout { height: 1fr; }
    VisLayout > Horizontal { height: 1fr; min-height: 6; }
    """

    def __init__(self, widgets: Iterable[Widget], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.vis_widgets = tuple(widgets)
        self.narrow: bool | None = None
        self._rows: list[tuple[Horizontal, list[tuple[TWidget, Widget]]]] = []

    def compose(self) -> ComposeResult:
        indexed = list(enumerate(self.vis_widgets))
        indexed.sort(key=lambda iw: (iw[1].position.get("y", 0), iw[1].position.get("x", 0)))
        for _, row in groupby(indexed, key=lambda iw: iw[1].position.get("y", 0)):
            items = list(row)
            line = Horizontal()
            panels = [(make_panel(w, i), w) for i, w in items]
            self._rows.append((line, panels))
            with line:
                yield from (p for p, _ in panels)

    def on_mount(self) -> None:
        self._arrange(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._arrange(event.size.width)

    def _arrange(self, width: int) -> None:
        """Grid proportions when wide, one widget per fixed-height row when narrow."""
        narrow = 0 < width < NARROW_WIDTH and len(self.vis_widgets) > 1
        if narrow == self.narrow:
            return
        self.narrow = narrow
        self.set_class(narrow, "-narrow")
        for line, panels in self._rows:
            if narrow:
                line.styles.layout = "vertical"
                line.styles.height = "auto"
                for panel, _ in panels:
                    panel.styles.width = "1fr"
                    panel.styles.height = NARROW_ROW_LINES
            else:
                line.styles.layout = "horizontal"
                line.styles.height = f"{max(max(w.position.get('h', 1), 1) for _, w in panels)}fr"
                for panel, w in panels:
                    panel.styles.width = f"{max(w.position.get('w', 12), 1)}fr"
                    panel.styles.height = "1fr"

    @property
    def table_panels(self) -> list[TablePanel]:
        return list(self.query(TablePanel))

    @property
    def vis_panels(self) -> list[VisPanel]:
        return list(self.query(VisPanel))

    async def update_tables(self, tables: dict[str, FormattedTable]) -> None:
        """Give every panel its output; in script mode, create table panels for new tables."""
        if not self.vis_widgets:
            have = {p.output_name for p in self.table_panels}
            new = [Horizontal(TablePanel(name, name)) for name in tables if name not in have]
            if new:
                await self.mount_all(new)
        for panel in self.table_panels:
            model = tables.get(panel.output_name)
            if model is not None:
                panel.update_model(model)
        for vis_panel in self.vis_panels:
            model = tables.get(vis_panel.output_name)
            if model is not None:
                vis_panel.update_model(model)
