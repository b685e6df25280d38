"""Arrow IPC framing for gRPC messages: self-contained streams of a bounded size."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # results ship in IPC messages of about this size


def ipc_chunks(table: pa.Table, target_bytes: int = MAX_MESSAGE_BYTES) -> Iterator[tuple[bytes, int]]:
    """Self-contained IPC streams (schema + batches) of about target_bytes each."""
    if table.num_rows == 0:
        yield ipc_bytes(table.schema, []), 0
        return
    per_row = max(1, table.nbytes // max(table.num_rows, 1))
    rows = max(1, target_bytes // per_row)
    for start in range(0, table.num_rows, rows):
        part = table.slice(start, rows)
        yield ipc_bytes(table.schema, part.to_batches()), part.num_rows


def ipc_bytes(schema: pa.Schema, batches: list[pa.RecordBatch]) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as w:
        for b in batches:
            w.write_batch(b)
    return sink.getvalue().to_pybytes()


def read_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
