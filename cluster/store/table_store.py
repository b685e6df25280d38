"""The node's table store: per table, a ring of Arrow record batches under a byte cap.

Why a ring of batches: appends are cheap (no copy), eviction is whole batches from the oldest end,
and a scan hands out the batches themselves (zero-copy) in ascending time. Each batch remembers its
min and max time_, so a time-bounded scan skips whole batches and slices only at the edges.
Appends come from the tracer thread and scans from query threads, so a lock guards the ring; a
scan takes a snapshot of the ring (a list of references) and works outside the lock.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc


class UnknownTable(KeyError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"table {self.name!r} not found; available tables: {', '.join(self.known) or 'none'}"


class SchemaMismatch(ValueError):
    pass


@dataclass(slots=True)
class _Entry:
    batch: pa.RecordBatch
    tmin: int
    tmax: int
    nbytes: int


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int
    bytes: int
    batches: int
    min_time_ns: int | None
    max_time_ns: int | None
    rows_evicted: int
    max_bytes: int


def _time_bounds(batch: pa.RecordBatch) -> tuple[int, int]:
    if batch.num_rows == 0 or "time_" not in batch.schema.names:
        return 0, 0
    t = batch.column("time_").cast(pa.int64())
    mm = pc.min_max(t)
    return mm["min"].as_py(), mm["max"].as_py()


class Table:
    """One table's ring. Batches are appended in arrival order; rows within a batch need not be sorted,
    but the PEM appends in time order so ascending-time scans hold."""

    def __init__(self, name: str, schema: pa.Schema, max_bytes: int):
        self.name = name
        self.schema = schema
        self.max_bytes = max_bytes
        self._ring: deque[_Entry] = deque()
        self._bytes = 0
        self._rows = 0
        self._evicted_rows = 0
        self._lock = threading.Lock()

    def append(self, batch: pa.RecordBatch | pa.Table) -> None:
        if isinstance(batch, pa.Table):
            for b in batch.combine_chunks().to_batches():
                self.append(b)
            return
        if batch.num_rows == 0:
            return
        if batch.schema.names != self.schema.names:
            raise SchemaMismatch(
                f"{self.name}: batch columns {batch.schema.names} do not match {self.schema.names}"
            )
        if not batch.schema.equals(self.schema, check_metadata=False):
            batch = pa.RecordBatch.from_arrays(
                [c.cast(f.type) for c, f in zip(batch.columns, self.schema, strict=True)],
                schema=self.schema,
            )
        tmin, tmax = _time_bounds(batch)
        entry = _Entry(batch, tmin, tmax, batch.nbytes)
        with self._lock:
            self._ring.append(entry)
            self._bytes += entry.nbytes
            self._rows += batch.num_rows
            # Keep at least the newest batch even when it alone is over the cap.
            while self._bytes > self.max_bytes and len(self._ring) > 1:
                old = self._ring.popleft()
                self._bytes -= old.nbytes
                self._rows -= old.batch.num_rows
                self._evicted_rows += old.batch.num_rows

    def scan(self, start_ns: int | None = None, end_ns: int | None = None) -> Iterator[pa.RecordBatch]:
        """Batches holding rows with start <= time_ <= end (inclusive), oldest first."""
        with self._lock:
            snapshot = list(self._ring)
        for e in snapshot:
            if start_ns is not None and e.tmax < start_ns:
                continue
            if end_ns is not None and e.tmin > end_ns:
                continue
            inside = (start_ns is None or e.tmin >= start_ns) and (end_ns is None or e.tmax <= end_ns)
            if inside:
                yield e.batch
                continue
            t = e.batch.column("time_").cast(pa.int64())
            mask = None
            if start_ns is not None:
                mask = pc.greater_equal(t, start_ns)
            if end_ns is not None:
                m2 = pc.less_equal(t, end_ns)
                mask = m2 if mask is None else pc.and_(mask, m2)
            out = e.batch.filter(mask)
            if out.num_rows:
                yield out

    def stats(self) -> TableStats:
        with self._lock:
            ring = list(self._ring)
            rows, nbytes, evicted = self._rows, self._bytes, self._evicted_rows
        timed = [e for e in ring if e.batch.num_rows and "time_" in e.batch.schema.names]
        return TableStats(
            name=self.name,
            rows=rows,
            bytes=nbytes,
            batches=len(ring),
            min_time_ns=min((e.tmin for e in timed), default=None),
            max_time_ns=max((e.tmax for e in timed), default=None),
            rows_evicted=evicted,
            max_bytes=self.max_bytes,
        )


class TableStore:
    """All tables of one node. `scan` matches cluster.pxl.sources.TableSource."""

    DEFAULT_MAX_BYTES = 256 * 1024 * 1024

    def __init__(self, default_max_bytes: int = DEFAULT_MAX_BYTES):
        self.default_max_bytes = default_max_bytes
        self._tables: dict[str, Table] = {}
        self._lock = threading.Lock()

    def create(self, name: str, schema: pa.Schema, max_bytes: int | None = None) -> Table:
        with self._lock:
            if name in self._tables:
                return self._tables[name]
            t = Table(name, schema, max_bytes or self.default_max_bytes)
            self._tables[name] = t
            return t

    def get(self, name: str) -> Table:
        try:
            return self._tables[name]
        except KeyError:
            raise UnknownTable(name, sorted(self._tables)) from None

    def names(self) -> list[str]:
        return sorted(self._tables)

    def schemas(self) -> dict[str, pa.Schema]:
        return {n: t.schema for n, t in self._tables.items()}

    def append(self, name: str, batch: pa.RecordBatch | pa.Table) -> None:
        self.get(name).append(batch)

    def scan(self, table: str, start_ns: int | None, end_ns: int | None) -> Iterator[pa.RecordBatch]:
        return self.get(table).scan(start_ns, end_ns)

    def stats(self) -> list[TableStats]:
        return [self._tables[n].stats() for n in self.names()]
