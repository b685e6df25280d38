"""Stand-in for vis widget types the TUI does not draw yet (charts, graphs, flame graphs).

It takes the widget's place in the layout, so tables keep the size and position the vis.json
gives them, and it names the type, so the user knows what is missing rather than seeing a gap.
"""

from __future__ import annotations

from textual.widgets import Static

from cluster.pxl.vis import Widget


class PlaceholderPanel(Static):
    """A bordered box saying "<Type> (output: name): not drawn in the terminal yet"."""

    DEFAULT_CSS = """
    PlaceholderPanel {
        border: round $panel-lighten-2;
        color: $text-muted;
        content-align: center middle;
        height: 1fr;
    }
    """

    def __init__(self, widget: Widget) -> None:
        super().__init__(
            f"{widget.type} (output: {widget.output_name or '-'}): not drawn in the terminal yet",
            markup=False,
        )
        self.border_title = widget.name
        self.vis_widget = widget
