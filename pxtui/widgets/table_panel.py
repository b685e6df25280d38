"""The vis.json `Table` widget: a titled grid with sorting, filtering and stable refreshes.

This is where Arrow meets the screen. Sorting uses the raw values (latency sorts as a number,
not as "9 ms" > "10 ms"), filtering uses the text the user sees, and both are vectorised
(pyarrow.compute), so a 1000-row refresh costs a few milliseconds of event-loop time.
"""

from __future__ import annotations

from typing import ClassVar

import pyarrow as pa
import pyarrow.compute as pc
from textual import on
from textual.actions import SkipAction
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input

from pxtui.format import MAX_CELL_CHARS, STATUS_STYLES, FormattedTable, status_state
from pxtui.widgets.arrow_table import ArrowTable, GridData
from pxtui.widgets.glyphs import glyphs_for


def view_order(model: FormattedTable, sort: tuple[str, bool] | None, needle: str) -> pa.Array:
    """Row indices of `model.raw` to show, in display order.

    Without an explicit sort, tables with a `time_` column show newest first (a live tail);
    others keep the script's order. The filter is a case-insensitive substring match over the
    displayed text of every column.
    """
    raw = model.raw
    n = raw.num_rows
    keys: list[tuple[str, str]] = []
    if sort is not None and sort[0] in raw.column_names:
        keys = [(sort[0], "descending" if sort[1] else "ascending")]
    elif "time_" in raw.column_names:
        keys = [("time_", "descending")]
    order: pa.Array
    if keys and n:
        try:
            order = pc.sort_indices(raw.select([keys[0][0]]), sort_keys=keys)
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError):
            # A type Arrow cannot sort (nested, extension): sort by what is displayed instead.
            text = model.text[raw.column_names.index(keys[0][0])]
            order = pc.sort_indices(pa.table({"t": text}), sort_keys=[("t", keys[0][1])])
    else:
        order = pa.array(range(n), pa.uint64())
    if needle and n:
        mask = None
        for col in model.text:
            m = pc.match_substring(col, needle, ignore_case=True)
            mask = m if mask is None else pc.or_(mask, m)
        if mask is not None:
            order = pc.filter(order, pc.take(mask, order))
    return order


class TablePanel(Vertical):
    """One table of results. The app feeds it `FormattedTable`s; it keeps the view state."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "cycle_sort", "Sort"),
        Binding("slash", "start_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    DEFAULT_CSS = """
    TablePanel {
        border: round $primary 50%;
        border-title-color: $text;
        height: 1fr;
    }
    TablePanel:focus-within { border: round $primary; }
    TablePanel > Input, TablePanel > Input:focus {
        dock: bottom;
        height: 1;
        border: none;
        padding: 0 1;
        display: none;
    }
    TablePanel.-filtering > Input { display: block; }
    TablePanel.-filtering > Input:focus { display: block; }
    """

    class RowOpened(Message):
        """Enter on a row: the app opens the detail screen for `model` row `index`, or follows
        the script reference when the cursor is on one (`column` is the cursor's column)."""

        def __init__(self, panel: TablePanel, model: FormattedTable, index: int, column: str | None = None) -> None:
            super().__init__()
            self.panel = panel
            self.model = model
            self.index = index
            self.column = column

    class ViewChanged(Message):
        """Shown/total rows, sort or filter changed (for the status line)."""

        def __init__(self, panel: TablePanel) -> None:
            super().__init__()
            self.panel = panel

    def __init__(self, title: str, output_name: str, *, id: str | None = None,
                 gutter_column: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.output_name = output_name
        self.gutter_column = gutter_column  # vis.json gutterColumn: a status icon before each row
        self.model: FormattedTable | None = None
        self.sort: tuple[str, bool] | None = None  # (column, descending)
        self.filter_text = ""
        self._order: pa.Array = pa.array([], pa.uint64())

    def compose(self) -> ComposeResult:
        yield ArrowTable()
        yield Input(placeholder="filter (substring, Esc clears)")

    @property
    def grid(self) -> ArrowTable:
        return self.query_one(ArrowTable)

    @property
    def shown_rows(self) -> int:
        return len(self._order)

    @property
    def total_rows(self) -> int:
        return self.model.num_rows if self.model is not None else 0

    @property
    def has_gutter(self) -> bool:
        return bool(self.gutter_column) and self.model is not None and self.gutter_column in self.model.columns

    def column_at(self, grid_column: int) -> str | None:
        """The model column under grid column `grid_column` (None on the gutter)."""
        if self.model is None or not self.model.columns:
            return None
        i = grid_column - (1 if self.has_gutter else 0)
        return self.model.columns[min(max(i, 0), len(self.model.columns) - 1)] if i >= 0 else None

    def raw_index(self, grid_row: int) -> int | None:
        """Map a grid row to the row of `model.raw` (None when out of range)."""
        if 0 <= grid_row < len(self._order):
            return int(self._order[grid_row].as_py())
        return None

    # ---------------------------------------------------------------- updates

    def update_model(self, model: FormattedTable) -> None:
        """Show new data, keeping the cursor on the same record when it is still there.

        When the cursor sits on the top row and the view is not scrolled, it stays on top, so a
        live table keeps showing the newest rows; otherwise it follows its record (matched on
        all displayed cells) and keeps its screen line.
        """
        grid = self.grid
        old_model = self.model
        anchor: list[str] | None = None
        old_pos = grid.cursor_row
        follow_top = old_pos == 0 and grid.scroll_offset.y == 0
        offset = grid.screen_offset
        if old_model is not None and not follow_top:
            idx = self.raw_index(old_pos)
            if idx is not None and old_model.columns == model.columns:
                anchor = [col[idx].as_py() for col in old_model.text]
        self.model = model
        if self.sort is not None and self.sort[0] not in model.columns:
            self.sort = None
        self._order = view_order(model, self.sort, self.filter_text)
        new_pos = 0 if follow_top else old_pos
        if anchor is not None:
            found = self._find(anchor, old_pos)
            if found is not None:
                new_pos = found
        self._push(new_pos, offset)

    def _find(self, cells: list[str], near: int) -> int | None:
        """Grid position of the row whose displayed cells equal `cells`, nearest to `near`."""
        assert self.model is not None
        mask = None
        for col, value in zip(self.model.text, cells, strict=True):
            m = pc.equal(col, value)
            mask = m if mask is None else pc.and_(mask, m)
        if mask is None or len(self._order) == 0:
            return None
        hits = pc.indices_nonzero(pc.take(mask, self._order)).to_pylist()
        if not hits:
            return None
        return min(hits, key=lambda p: abs(p - near))

    def _refilter(self, keep_row: bool = True) -> None:
        if self.model is None:
            return
        idx = self.raw_index(self.grid.cursor_row) if keep_row else None
        self._order = view_order(self.model, self.sort, self.filter_text)
        pos = 0
        if idx is not None:
            hits = pc.indices_nonzero(pc.equal(self._order, idx)).to_pylist()
            pos = hits[0] if hits else 0
        self._push(pos, None)

    def _push(self, cursor_row: int, screen_offset: int | None) -> None:
        """Build the column-major text for the grid: `take` per column, then to_pylist."""
        model = self.model
        if model is None:
            return
        order = self._order
        g = glyphs_for(self)
        headers: list[str] = []
        widths: list[int] = []
        cells: list[list[str]] = []
        styles: list[list[str | None] | None] = []
        if self.has_gutter:
            assert self.gutter_column is not None
            raw = model.raw.column(self.gutter_column).take(order).to_pylist()
            states = [status_state(None if v is None else str(v)) for v in raw]
            headers.append("")
            widths.append(1)
            cells.append([g.status[s] for s in states])
            styles.append([STATUS_STYLES[s] for s in states])
        for i, name in enumerate(model.columns):
            mark = ""
            if self.sort is not None and self.sort[0] == name:
                mark = g.sort_down if self.sort[1] else g.sort_up
            headers.append(name + mark)
            content = model.widths[i] if i < len(model.widths) else 0
            widths.append(min(MAX_CELL_CHARS, max(content, len(name) + 2)))
        cells += [col.take(order).to_pylist() for col in model.text]
        styles += [s.take(order).to_pylist() if s is not None else None for s in model.styles]
        empty = "no rows" if model.num_rows == 0 else f"no rows match {self.filter_text!r} (Esc clears)"
        self.grid.set_data(GridData(headers, cells, styles, widths, empty), cursor_row, screen_offset)
        self.post_message(self.ViewChanged(self))

    # ---------------------------------------------------------------- actions

    def action_cycle_sort(self) -> None:
        """`s`: unsorted -> ascending -> descending -> unsorted, on the cursor's column."""
        if self.model is None or not self.model.columns:
            return
        col = self.column_at(self.grid.cursor_column)
        if col is None:
            return
        if self.sort is None or self.sort[0] != col:
            self.sort = (col, False)
        elif not self.sort[1]:
            self.sort = (col, True)
        else:
            self.sort = None
        self._refilter()

    def action_start_filter(self) -> None:
        self.add_class("-filtering")
        inp = self.query_one(Input)
        inp.value = self.filter_text
        inp.focus()

    def action_clear_filter(self) -> None:
        had = bool(self.filter_text) or self.has_class("-filtering")
        if not had:
            raise SkipAction()  # nothing to clear: Esc goes on to the app (back from a drill-down)
        self.filter_text = ""
        self.query_one(Input).value = ""
        self.remove_class("-filtering")
        self.grid.focus()
        if had:
            self._refilter()

    def set_filter(self, text: str) -> None:
        """Filter programmatically (the app's command line and tests use this)."""
        self.filter_text = text
        if text:
            self.add_class("-filtering")
        self._refilter()

    @on(Input.Changed)
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value != self.filter_text:
            self.filter_text = event.value
            self._refilter()

    @on(Input.Submitted)
    def _filter_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.filter_text:
            self.remove_class("-filtering")
        self.grid.focus()

    @on(ArrowTable.Selected)
    def _row_selected(self, event: ArrowTable.Selected) -> None:
        event.stop()
        idx = self.raw_index(event.row)
        if self.model is not None and idx is not None:
            self.post_message(self.RowOpened(self, self.model, idx, self.column_at(self.grid.cursor_column)))

    @on(ArrowTable.CursorMoved)
    def _cursor_moved(self, event: ArrowTable.CursorMoved) -> None:
        event.stop()
        self.post_message(self.ViewChanged(self))
