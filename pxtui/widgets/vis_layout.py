"""Lays out a script's vis.json widgets on the terminal, following their 12-column grid.

Widgets are grouped into rows by their `position.y`; a row's height is proportional to its
tallest widget's `h` and each widget's width to its `w`, so Pixie's dashboards keep their shape.
(Stacked widgets beside a tall one become separate rows: acceptable until a screen needs it.)
Types the TUI does not draw yet get a `PlaceholderPanel`, so adding a chart widget later means
one new file and one entry in `_make_panel`.

A script without widgets (script mode, `-f file.pxl`) gets one table per returned table, added
as results arrive.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget as TWidget

from cluster.pxl.vis import Widget
from pxtui.format import FormattedTable
from pxtui.widgets.placeholder_panel import PlaceholderPanel
from pxtui.widgets.table_panel import TablePanel


def _make_panel(widget: Widget, index: int) -> TWidget:
    if widget.type == "Table":
        return TablePanel(widget.name, widget.output_name, id=f"vis-widget-{index}")
    return PlaceholderPanel(widget)


class VisLayout(Vertical):
    """The body of the live view; the app hands it formatted tables by output name."""

    DEFAULT_CSS = """
    VisLayout { height: 1fr; }
    VisLayout > Horizontal { height: 1fr; min-height: 6; }
    """

    def __init__(self, widgets: Iterable[Widget], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.vis_widgets = tuple(widgets)

    def compose(self) -> ComposeResult:
        indexed = list(enumerate(self.vis_widgets))
        indexed.sort(key=lambda iw: (iw[1].position.get("y", 0), iw[1].position.get("x", 0)))
        for _, row in groupby(indexed, key=lambda iw: iw[1].position.get("y", 0)):
            items = list(row)
            line = Horizontal()
            line.styles.height = f"{max(max(w.position.get('h', 1), 1) for _, w in items)}fr"
            with line:
                for i, w in items:
                    panel = _make_panel(w, i)
                    panel.styles.width = f"{max(w.position.get('w', 12), 1)}fr"
                    yield panel

    @property
    def table_panels(self) -> list[TablePanel]:
        return list(self.query(TablePanel))

    async def update_tables(self, tables: dict[str, FormattedTable]) -> None:
        """Give every table panel its output; in script mode, create panels for new tables."""
        if not self.vis_widgets:
            have = {p.output_name for p in self.table_panels}
            new = [Horizontal(TablePanel(name, name)) for name in tables if name not in have]
            if new:
                await self.mount_all(new)
        for panel in self.table_panels:
            model = tables.get(panel.output_name)
            if model is not None:
                panel.update_model(model)
