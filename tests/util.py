"""Small helpers shared by tests."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa


def as_rows(data: pa.Table | pa.RecordBatch | Iterable[pa.RecordBatch]) -> list[dict]:
    """Rows as dicts, with TIME64NS as int ns (Python datetimes cannot hold nanoseconds)."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    elif not isinstance(data, pa.Table):
        batches = list(data)
        if not batches:
            return []
        data = pa.Table.from_batches(batches)
    cols = [c.cast(pa.int64()) if pa.types.is_timestamp(c.type) else c for c in data.columns]
    return pa.Table.from_arrays(cols, names=data.column_names).to_pylist()
