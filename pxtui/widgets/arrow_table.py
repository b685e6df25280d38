"""A virtual grid of pre-formatted cells: only the lines on screen are ever rendered.

Why not Textual's DataTable: it measures every cell through Rich on each update, which took
~450 ms of event-loop time for a 1000 x 23 http_data refresh (every 2 s), and it parses str cells
as markup, which mangles JSON bodies ("[...]"). Here the column widths arrive precomputed (by
pyarrow, in the worker thread), cells are plain text, and a refresh is O(rows on screen).

The grid knows nothing about Arrow, sorting or filtering: `TablePanel` decides which rows to
show in which order and hands over column-major lists of strings. It owns only the cursor, the
scroll position and the header, which stays fixed while rows scroll under it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rich.cells import set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

CELL_PAD = 1


@dataclass
class GridData:
    """What the grid draws: headers, column-major cell text, optional per-cell style names."""

    headers: list[str] = field(default_factory=list)
    cells: list[list[str]] = field(default_factory=list)
    styles: list[list[str | None] | None] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)  # content width of each column, no padding
    empty_message: str = "no rows"

    @property
    def row_count(self) -> int:
        return len(self.cells[0]) if self.cells else 0


class ArrowTable(ScrollView, can_focus=True):
    """Row-cursor table over `GridData`, keyboard first (works without a mouse, at 80x24)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Details", show=True),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("left,h", "cursor_left", "Left", show=False),
        Binding("right,l", "cursor_right", "Right", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "first_row", "First row", show=False),
        Binding("end,G", "last_row", "Last row", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "arrow-table--header",
        "arrow-table--header-cursor",
        "arrow-table--cursor",
        "arrow-table--cursor-cell",
        "arrow-table--empty",
    }

    DEFAULT_CSS = """
    ArrowTable {
        background: $surface;
        color: $text;
        height: 1fr;
        scrollbar-size-vertical: 1;
        scrollbar-size-horizontal: 1;
    }
    ArrowTable > .arrow-table--header { text-style: bold; background: $primary 40%; }
    ArrowTable > .arrow-table--header-cursor { text-style: bold reverse; }
    ArrowTable > .arrow-table--cursor { background: $secondary 30%; }
    ArrowTable:focus > .arrow-table--cursor { background: $secondary 60%; }
    ArrowTable > .arrow-table--cursor-cell { text-style: bold underline; }
    ArrowTable > .arrow-table--empty { color: $text-muted; text-style: italic; }
    """

    class Selected(Message):
        """Enter on a row; `row` is the position in the grid (the panel maps it to data)."""

        def __init__(self, table: ArrowTable, row: int) -> None:
            super().__init__()
            self.table = table
            self.row = row

        @property
        def control(self) -> ArrowTable:
            return self.table

    class CursorMoved(Message):
        """The cursor changed row or column (the status line shows the position)."""

        def __init__(self, table: ArrowTable, row: int, column: int) -> None:
            super().__init__()
            self.table = table
            self.row = row
            self.column = column

        @property
        def control(self) -> ArrowTable:
            return self.table

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._data = GridData()
        self._col_x: list[int] = []  # left edge of each column in virtual coordinates
        self.cursor_row = 0
        self.cursor_column = 0
        self._style_cache: dict[str, Style] = {}

    # ---------------------------------------------------------------- data

    @property
    def data(self) -> GridData:
        return self._data

    @property
    def row_count(self) -> int:
        return self._data.row_count

    def set_data(
        self, data: GridData, cursor_row: int | None = None, screen_offset: int | None = None
    ) -> None:
        """Replace what is shown. `cursor_row` is where the cursor goes (clamped); with
        `screen_offset` the cursor stays on the same screen line, so a refresh that inserts rows
        above it does not make the row under the user's eye jump."""
        self._data = data
        x = 0
        self._col_x = []
        for w in data.widths:
            self._col_x.append(x)
            x += w + 2 * CELL_PAD
        self.virtual_size = Size(x, data.row_count + 1)
        rows = data.row_count
        self.cursor_row = max(0, min(self.cursor_row if cursor_row is None else cursor_row, rows - 1))
        self.cursor_column = max(0, min(self.cursor_column, len(data.widths) - 1))
        if screen_offset is not None:
            self.scroll_to(y=max(0, self.cursor_row - screen_offset), animate=False, immediate=True)
        self._scroll_cursor_into_view()
        self.refresh()

    @property
    def screen_offset(self) -> int:
        """How many lines below the top data line the cursor is drawn."""
        return self.cursor_row - int(self.scroll_offset.y)

    # ---------------------------------------------------------------- rendering

    def _style(self, name: str | None) -> Style:
        if not name:
            return Style()
        style = self._style_cache.get(name)
        if style is None:
            try:
                style = Style.parse(name)
            except Exception:  # a bad style name from a formatter must not break drawing
                style = Style()
            self._style_cache[name] = style
        return style

    @property
    def _page_height(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = self.scroll_offset
        base = self.rich_style
        data = self._data
        if y == 0:
            strip = self._header_strip(base)
        else:
            row = scroll_y + y - 1
            if row < data.row_count:
                strip = self._row_strip(row, base)
            elif row == 0 and data.row_count == 0:
                style = base + self.get_component_rich_style("arrow-table--empty")
                return Strip([Segment(f" {data.empty_message}", style)]).crop_extend(0, width, base)
            else:
                return Strip.blank(width, base)
        return strip.crop_extend(scroll_x, scroll_x + width, base)

    def _header_strip(self, base: Style) -> Strip:
        header = base + self.get_component_rich_style("arrow-table--header")
        cursor = header + self.get_component_rich_style("arrow-table--header-cursor")
        segs = []
        for c, (label, w) in enumerate(zip(self._data.headers, self._data.widths, strict=False)):
            style = cursor if c == self.cursor_column else header
            segs.append(Segment(" " * CELL_PAD + set_cell_size(label, w) + " " * CELL_PAD, style))
        return Strip(segs)

    def _row_strip(self, row: int, base: Style) -> Strip:
        data = self._data
        is_cursor = row == self.cursor_row
        row_style = base + self.get_component_rich_style("arrow-table--cursor") if is_cursor else base
        cursor_cell = self.get_component_rich_style("arrow-table--cursor-cell") if is_cursor else None
        segs = []
        for c, w in enumerate(data.widths):
            text = data.cells[c][row]
            style = row_style
            col_styles = data.styles[c] if c < len(data.styles) else None
            if col_styles is not None:
                style = style + self._style(col_styles[row])
            if cursor_cell is not None and c == self.cursor_column:
                style = style + cursor_cell
            pad = " " * CELL_PAD
            segs.append(Segment(pad + set_cell_size(text or "", w) + pad, style))
        return Strip(segs)

    # ---------------------------------------------------------------- cursor

    def _scroll_cursor_into_view(self) -> None:
        scroll_x, scroll_y = self.scroll_offset
        page = self._page_height
        if self.cursor_row < scroll_y:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row > scroll_y + page - 1:
            self.scroll_to(y=self.cursor_row - page + 1, animate=False, immediate=True)
        if self._col_x:
            c = self.cursor_column
            left = self._col_x[c]
            right = left + self._data.widths[c] + 2 * CELL_PAD
            width = self.scrollable_content_region.width
            if left < scroll_x:
                self.scroll_to(x=left, animate=False, immediate=True)
            elif right > scroll_x + width:
                self.scroll_to(x=min(left, right - width), animate=False, immediate=True)

    def move_cursor(self, row: int | None = None, column: int | None = None) -> None:
        """Move (clamped), keep it visible, and tell the panel."""
        rows, cols = self.row_count, len(self._data.widths)
        if row is not None:
            self.cursor_row = max(0, min(row, rows - 1))
        if column is not None:
            self.cursor_column = max(0, min(column, cols - 1))
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.CursorMoved(self, self.cursor_row, self.cursor_column))

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_cursor_left(self) -> None:
        self.move_cursor(column=self.cursor_column - 1)

    def action_cursor_right(self) -> None:
        self.move_cursor(column=self.cursor_column + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self.cursor_row - self._page_height)

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page_height)

    def action_first_row(self) -> None:
        self.move_cursor(row=0)

    def action_last_row(self) -> None:
        self.move_cursor(row=self.row_count - 1)

    def action_select(self) -> None:
        if self.row_count:
            self.post_message(self.Selected(self, self.cursor_row))

    def on_click(self, event: events.Click) -> None:
        """Mouse is optional, but a click should at least put the cursor where it lands."""
        if event.y < 1 or not self._col_x:
            return
        scroll_x, scroll_y = self.scroll_offset
        vx = event.x + scroll_x
        column = max(i for i, x in enumerate(self._col_x) if x <= vx) if vx >= 0 else 0
        self.move_cursor(row=scroll_y + event.y - 1, column=column)
        if event.chain == 2:
            self.action_select()

    def on_resize(self, event: events.Resize) -> None:
        self._scroll_cursor_into_view()
