"""Every column of one row, with headers and JSON bodies pretty-printed, scrollable.

A table cell is cut to 50 characters; this is where the whole request and response are read.
`w` writes the row as JSON (in `px run -o json` form) to a file, because over SSH there is no
clipboard to copy to, and the notification says where it went.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from cluster.schemas import semantic_type
from pxtui.format import format_value, json_value
from pxtui.screens.body_view import body_renderable, pretty_json

__all__ = ["RowDetailScreen", "field_renderable", "pretty_json", "row_json", "save_row"]


def row_json(table_name: str, schema: pa.Schema, values: dict[str, Any]) -> dict[str, Any]:
    """The row as `px run -o json` prints it: `_tableName_` first, then the columns in order."""
    out: dict[str, Any] = {"_tableName_": table_name}
    for fld in schema:
        out[fld.name] = json_value(values.get(fld.name), fld)
    return out


def save_row(directory: Path, table_name: str, schema: pa.Schema, values: dict[str, Any]) -> Path:
    """Write the row to a new file in `directory` and return its absolute path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in table_name) or "row"
    path = directory / f"pxtui-{safe}-{stamp}.json"
    n = 1
    while path.exists():
        n += 1
        path = directory / f"pxtui-{safe}-{stamp}-{n}.json"
    path.write_text(json.dumps(row_json(table_name, schema, values), indent=2, ensure_ascii=False) + "\n")
    return path.resolve()


def field_renderable(fld: pa.Field, value: Any, row: dict[str, Any] | None = None) -> RenderableType:
    """Name line plus value: bodies pretty-printed (JSON, SQL, Redis commands; see body_view),
    formatted values with the raw number beside them."""
    st = semantic_type(fld)
    head = Text(fld.name, style="bold")
    if st not in ("ST_NONE", "ST_UNSPECIFIED"):
        head.append(f"  {st}", style="dim")
    shown = format_value(value, fld, full=True)
    if isinstance(value, str):
        pretty = body_renderable(fld.name, value, row or {})
        if pretty is not None:
            return Group(head, pretty, Text())
        body = Text(value if value else "(empty)", style="" if value else "dim")
        return Group(head, body, Text())
    body = Text(shown)
    raw = "" if value is None else str(value)
    if raw and raw != shown and not isinstance(value, bytes | bytearray):
        body.append(f"  ({raw})", style="dim")
    return Group(head, body, Text())


class RowDetailScreen(Screen[None]):
    """Full-screen view of one row; Esc returns to the live view (which keeps refreshing)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "Back"),
        Binding("w", "save", "Save JSON"),
        Binding("j,down", "scroll_down", "Down", show=False),
        Binding("k,up", "scroll_up", "Up", show=False),
    ]

    DEFAULT_CSS = """
    RowDetailScreen > #detail-title {
        dock: top; height: 1; background: $primary; color: $text; text-style: bold; padding: 0 1;
    }
    RowDetailScreen > #detail-saved { dock: bottom; height: auto; color: $success; padding: 0 1; }
    RowDetailScreen > VerticalScroll { padding: 0 1; }
    """

    def __init__(self, table_name: str, schema: pa.Schema, values: dict[str, Any], save_dir: Path) -> None:
        super().__init__()
        self.table_name = table_name
        self.schema = schema
        self.values = values
        self.save_dir = save_dir
        self.saved_path: Path | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"Row of {self.table_name} · Esc back · w save as JSON"), id="detail-title")
        with VerticalScroll(id="detail-body"):
            for fld in self.schema:
                yield Static(field_renderable(fld, self.values.get(fld.name), self.values), classes="detail-field")
        yield Static("", id="detail-saved")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_down(self) -> None:
        self.query_one(VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one(VerticalScroll).scroll_up(animate=False)

    def action_save(self) -> None:
        try:
            path = save_row(self.save_dir, self.table_name, self.schema, self.values)
        except OSError as e:
            self.notify(f"could not save: {e}", severity="error", timeout=8)
            return
        self.saved_path = path
        self.query_one("#detail-saved", Static).update(Text(f"saved to {path}"))
        self.notify(f"Row saved to {path}", timeout=8)
