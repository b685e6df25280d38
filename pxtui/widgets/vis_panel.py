"""The base of every drawn vis widget (charts, graphs, flame graph): a bordered, focusable box.

Why one base: every widget gets its table the same way (`update_model` with the formatted table
of its output name), draws for whatever size it currently has, says "no data" the same way, and
must be reachable with Tab and scrollable with j/k at 80x24 with no mouse. Subclasses implement
`prepare` (turn the table into their own data, once per refresh) and `draw` (lay it out for a
size, on every repaint or resize).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widget import Widget

from cluster.pxl.vis import Widget as VisWidget
from cluster.schemas import semantic_type
from pxtui.format import FormattedTable, format_value
from pxtui.widgets.chart_canvas import join_lines
from pxtui.widgets.glyphs import Glyphs, glyphs_for


class VisPanel(Widget, can_focus=True):
    """Shows one vis.json widget. `lines` taller than the box scroll with j/k."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,j", "scroll_lines(1)", "Down", show=False),
        Binding("up,k", "scroll_lines(-1)", "Up", show=False),
        Binding("pagedown", "scroll_lines(10)", "Page down", show=False),
        Binding("pageup", "scroll_lines(-10)", "Page up", show=False),
    ]

    DEFAULT_CSS = """
    VisPanel {
        border: round $primary 50%;
        border-title-color: $text;
        height: 1fr;
        padding: 0 1;
    }
    VisPanel:focus { border: round $primary; }
    """

    def __init__(self, widget: VisWidget, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.vis_widget = widget
        self.output_name = widget.output_name
        self.spec: dict[str, Any] = widget.display_spec
        self.model: FormattedTable | None = None
        self.problem: str | None = None  # a column the spec names is missing, etc.
        self.top = 0  # first line shown when the drawing is taller than the box
        self.border_title = str(self.spec.get("title") or widget.name)

    # ---------------------------------------------------------------- data

    def update_model(self, model: FormattedTable) -> None:
        """New data for this widget (on the event loop; `prepare` must stay cheap)."""
        self.model = model
        self.problem = None
        try:
            self.prepare(model)
        except KeyError as e:
            self.problem = (f"{self.vis_widget.type} {self.vis_widget.name!r}: column {e.args[0]!r} "
                            f"is not in output {model.name!r} (columns: {', '.join(model.columns)})")
        self.refresh()

    def prepare(self, model: FormattedTable) -> None:
        """Turn the table into what `draw` needs; raise KeyError(column) for a missing column."""

    def column(self, model: FormattedTable, name: str | None) -> pa.ChunkedArray:
        """The raw column `name`, raising KeyError(name) so the panel can say which is missing."""
        if not name or name not in model.columns:
            raise KeyError(name or "(unset)")
        return model.raw.column(name)

    def value_label(self, model: FormattedTable, column: str, value: Any) -> str:
        """`value` formatted by `column`'s semantic type (durations, bytes, percent...)."""
        fld = model.raw.schema.field(column)
        return format_value(value, fld)

    @staticmethod
    def semantic(model: FormattedTable, column: str) -> str:
        return semantic_type(model.raw.schema.field(column))

    # ---------------------------------------------------------------- drawing

    @property
    def glyphs(self) -> Glyphs:
        return glyphs_for(self)

    def draw(self, width: int, height: int) -> list[Text] | Text:
        """Lines for a content box of this size (subclasses)."""
        return Text("")

    def render(self) -> Text:
        width, height = self.content_region.width, self.content_region.height
        if self.problem is not None:
            return Text(self.problem, style="red")
        if self.model is None:
            return Text("waiting for data", style="dim italic")
        if width < 4 or height < 1:
            return Text("")
        drawn = self.draw(width, height)
        if isinstance(drawn, Text):
            return drawn
        self.top = max(0, min(self.top, len(drawn) - height))
        shown = drawn[self.top : self.top + height]
        return join_lines(shown)

    def action_scroll_lines(self, delta: int) -> None:
        self.top = max(0, self.top + delta)
        self.refresh()
