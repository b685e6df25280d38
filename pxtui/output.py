"""Printing results for scripts and CI: `-o table|json|jsonl|csv`.

JSON is for the edge only (engine-notes: Arrow everywhere else), so conversions here are
column-at-a-time with pyarrow.compute, then one to_pylist per column.
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from typing import Any, TextIO

import pyarrow as pa
import pyarrow.compute as pc

from cluster.schemas import UINT128, px_type_name, semantic_type


def _column_values(col: pa.ChunkedArray | pa.Array) -> list[Any]:
    t = col.type
    if pa.types.is_timestamp(t):
        return pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ").to_pylist()
    if t == UINT128:
        return [str(uuid.UUID(bytes=b)) if b is not None else None for b in col.to_pylist()]
    return col.to_pylist()


def json_document(script: str, args: dict[str, str], tables: list[tuple[str, pa.Table]],
                  warnings: list[str]) -> dict:
    out: dict[str, Any] = {"script": script, "args": args, "tables": {}, "warnings": warnings}
    for name, table in tables:
        cols = [
            {"name": f.name, "type": px_type_name(f.type), "semantic_type": semantic_type(f)}
            for f in table.schema
        ]
        values = [_column_values(table.column(i)) for i in range(table.num_columns)]
        rows = [dict(zip(table.schema.names, r, strict=True)) for r in zip(*values, strict=True)]
        out["tables"][name] = {"columns": cols, "rows": rows}
    return out


def _pixie_jsonl_value(v: Any) -> Any:
    # Pixie's CLI emits a string that parses as a float as a JSON number (pxl_surface.md §13.2).
    if isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        if math.isfinite(f) and v.strip() == v and v:
            return int(v) if v.lstrip("-").isdigit() else f
    return v


def write_jsonl(stream: TextIO, tables: list[tuple[str, pa.Table]]) -> None:
    for name, table in tables:
        values = [_column_values(table.column(i)) for i in range(table.num_columns)]
        for r in zip(*values, strict=True):
            row = {"_tableName_": name}
            row.update((k, _pixie_jsonl_value(v)) for k, v in zip(table.schema.names, r, strict=True))
            stream.write(json.dumps(row) + "\n")


def write_csv(stream: TextIO, tables: list[tuple[str, pa.Table]]) -> None:
    w = csv.writer(stream, lineterminator="\n")
    for name, table in tables:
        w.writerow(["table_id", *table.schema.names])
        values = [_column_values(table.column(i)) for i in range(table.num_columns)]
        for r in zip(*values, strict=True):
            w.writerow([name, *r])


def render_table_text(tables: list[tuple[str, pa.Table]]) -> str:
    """Borderless aligned tables with semantic formatting, as `px run -o table` prints them: as wide as
    the data (cells are already cut to 50 characters), never folded, so each row stays one line."""
    from rich.console import Console
    from rich.table import Table as RichTable
    from rich.text import Text

    from pxtui.format import format_column

    buf = io.StringIO()
    for name, table in tables:
        buf.write(f"Table ID: {name}\n")
        rt = RichTable(box=None, show_edge=False, pad_edge=False)
        cols = [format_column(table.column(i), table.schema.field(i)).to_pylist() for i in range(table.num_columns)]
        width = 0
        for f, values in zip(table.schema, cols, strict=True):
            rt.add_column(f.name.upper(), no_wrap=True)
            width += max([len(f.name), *(len(v) for v in values)]) + 2
        for r in zip(*cols, strict=True):
            rt.add_row(*(Text(v) for v in r))  # Text: a body holding "[bold]" is data, not markup
        Console(file=buf, width=max(width, 20), no_color=True, highlight=False).print(rt)
    return buf.getvalue()
