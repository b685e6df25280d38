"""In-memory TableSource / MetadataSource fakes and small hand-made tables for the PxL tests."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from cluster import schemas
from cluster.pxl import compile_pxl, execute
from cluster.pxl.funcs.upid import make_upid
from cluster.pxl.vis import FuncToExecute

NOW = 1_700_000_000_000_000_000  # fixed compile-time clock
SEC = 1_000_000_000


class FakeTables:
    """Serves whole tables, filtered to the time range, split into batches of ``batch_rows``."""

    def __init__(self, tables: dict[str, pa.Table], batch_rows: int = 2) -> None:
        self.tables = tables
        self.batch_rows = batch_rows
        self.scans: list[tuple[str, int | None, int | None]] = []
        self.batches_served = 0

    def scan(self, table: str, start_ns: int | None, end_ns: int | None) -> Iterator[pa.RecordBatch]:
        self.scans.append((table, start_ns, end_ns))
        t = self.tables[table]
        if "time_" in t.column_names:
            times = t.column("time_").cast(pa.int64())
            mask = pa.repeat(pa.scalar(True), t.num_rows)
            if start_ns is not None:
                mask = pc.and_(mask, pc.greater_equal(times, start_ns))
            if end_ns is not None:
                mask = pc.and_(mask, pc.less_equal(times, end_ns))
            t = t.filter(mask)
        for batch in t.to_batches(max_chunksize=self.batch_rows):
            self.batches_served += 1
            yield batch


class FakeMetadata:
    """upid -> attributes by pid; pod ids -> names for the entity look-ups."""

    def __init__(self, by_pid: dict[int, dict[str, str]] | None = None,
                 entities: dict[tuple[str, str, str], str] | None = None) -> None:
        self.by_pid = by_pid or {}
        self.entities = entities or {}
        self.calls: list[str] = []

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        self.calls.append(attr)
        out = []
        for u in upids.to_pylist():
            pid = int.from_bytes(u[4:8], "big")
            out.append(self.by_pid.get(pid, {}).get(attr, ""))
        return pa.array(out, pa.string())

    def hostname(self) -> str:
        return "node-1"

    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array:
        return pa.array([self.entities.get((key, attr, v), "") for v in values.to_pylist()], pa.string())


def upid(pid: int, asid: int = 7, start: int = 1234) -> bytes:
    return make_upid(asid, pid, start)


def http_events(n: int = 6) -> pa.Table:
    """n HTTP rows, one second apart, ending 10 s before NOW."""
    base = NOW - 10 * SEC - (n - 1) * SEC
    cols = {
        "time_": pa.array([base + i * SEC for i in range(n)], pa.int64()).cast(schemas.TIME64NS),
        "upid": pa.array([upid(100 + i % 2) for i in range(n)], schemas.UINT128),
        "remote_addr": [f"10.0.0.{i}" for i in range(n)],
        "remote_port": [5000 + i for i in range(n)],
        "local_addr": ["10.1.0.1"] * n,
        "local_port": [8080] * n,
        "trace_role": [2 if i % 3 else 1 for i in range(n)],
        "encrypted": [False] * n,
        "major_version": [1] * n,
        "minor_version": [1] * n,
        "content_type": [0] * n,
        "req_headers": ['{"Host":"a"}'] * n,
        "req_method": ["GET" if i % 2 == 0 else "POST" for i in range(n)],
        "req_path": [f"/api/{i % 3}" for i in range(n)],
        "req_body": [""] * n,
        "req_body_size": [10 * i for i in range(n)],
        "resp_headers": ["{}"] * n,
        "resp_status": [200 if i % 4 else 500 for i in range(n)],
        "resp_message": ["OK"] * n,
        "resp_body": [""] * n,
        "resp_body_size": [100 * i for i in range(n)],
        "latency": [1_000_000 * (i + 1) for i in range(n)],
    }
    arrays = [pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array) else cols[f.name]
              for f in schemas.HTTP_EVENTS]
    return pa.Table.from_arrays(arrays, schema=schemas.HTTP_EVENTS)


SMALL_SCHEMA = pa.schema([
    schemas.col("time_", schemas.TIME64NS),
    schemas.col("svc", pa.string()),
    schemas.col("n", pa.int64()),
    schemas.col("x", pa.float64()),
    schemas.col("ok", pa.bool_()),
    schemas.col("bytes", pa.int64(), "ST_BYTES"),
    schemas.col("dur", pa.int64(), "ST_DURATION_NS"),
    schemas.col("doc", pa.string()),
])


def small_table(rows: list[tuple]) -> pa.Table:
    """Rows of (t_offset_s, svc, n, x, ok, bytes, dur, doc); times are NOW - 100 s + offset."""
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in SMALL_SCHEMA]
    times = pa.array([NOW - 100 * SEC + t * SEC for t in cols[0]], pa.int64()).cast(schemas.TIME64NS)
    arrays = [times] + [pa.array(list(c), f.type) for c, f in zip(cols[1:], list(SMALL_SCHEMA)[1:],
                                                                   strict=True)]
    return pa.Table.from_arrays(arrays, schema=SMALL_SCHEMA)


DEFAULT_ROWS = [
    (0, "a", 1, 1.5, True, 100, 10, '{"k":"v","i":5,"f":2.5,"o":{"z":1},"arr":[1,"s"]}'),
    (1, "b", -7, -2.25, False, 200, 20, '{"k":"w"}'),
    (2, "a", 3, 0.5, True, 300, 30, 'not json'),
    (3, "c", 4, 4.0, False, 400, 40, '{"k":null}'),
    (4, "b", 10, 10.0, True, 500, 50, '[1,2,3]'),
]

SCHEMAS = {"http_events": schemas.HTTP_EVENTS, "small": SMALL_SCHEMA, "conn_stats": schemas.CONN_STATS}


def run(source: str, tables: dict[str, pa.Table] | None = None, funcs: list[FuncToExecute] | None = None,
        metadata: FakeMetadata | None = None, batch_rows: int = 2) -> dict[str, pa.Table]:
    q = compile_pxl(source, funcs=funcs, now_ns=NOW, schemas=SCHEMAS)
    data = tables if tables is not None else {"small": small_table(DEFAULT_ROWS), "http_events": http_events()}
    return dict(execute(q, FakeTables(data, batch_rows), metadata or FakeMetadata()))


def one(source: str, **kw) -> pa.Table:
    """Run a script with exactly one output and return that table."""
    out = run(source, **kw)
    assert len(out) == 1, list(out)
    return next(iter(out.values()))


def column(source_expr: str, **kw) -> list:
    """Values of `expr` evaluated over the small table, as a Python list."""
    src = f"import px\ndf = px.DataFrame('small')\ndf.out = {source_expr}\npx.display(df[['out']])\n"
    return one(src, **kw).column("out").to_pylist()
