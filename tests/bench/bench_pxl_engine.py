"""PxL engine vs DuckDB on the same Arrow data, measured in the same run.

Generates synthetic http_events rows (benchmark data, labelled as such: pyarrow-vectorised random
values drawn from small pools of realistic strings, 65,536-row batches) into a cluster.store
TableStore, plus a 120-row ``bench_pods`` table (upid -> pod, service, node).  Each PxL shape runs
through compile_pxl + execute over the store; the same query runs in DuckDB over the same Arrow
tables in place.  Prints the median of ``--repeat`` runs per shape and the ratio PxL / DuckDB
(below 1.0 = PxL is faster).  Row counts must match DuckDB's, and service_stats is checked against
DuckDB's exact answer: counts, byte sums and error rates equal, every quantile within the sketch's
stated relative error of DuckDB's quantile_cont.

    /work/main/.venv/bin/python tests/bench/bench_pxl_engine.py            # 1M and 5M rows
    /work/main/.venv/bin/python tests/bench/bench_pxl_engine.py --rows 1000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import compile_pxl, execute
from cluster.pxl.funcs.quantile_sketch import RELATIVE_ERROR
from cluster.pxl.funcs.upid import make_upid
from cluster.schemas import HTTP_EVENTS
from cluster.store.table_store import TableStore

BATCH_ROWS = 65_536
NOW = 1_800_000_000_000_000_000
WINDOW_NS = 5 * 60 * 1_000_000_000
N_PODS = 120

PODS_SCHEMA = pa.schema(
    [("upid", pa.binary(16)), ("pod", pa.string()), ("service", pa.string()), ("node", pa.string())]
)


def _pool(values: list, typ: pa.DataType | None = None) -> pa.Array:
    return pa.array(values, typ or pa.string())


def _pick(pool: pa.Array, n: int) -> pa.Array:
    idx = pc.floor(pc.multiply(pc.random(n), len(pool))).cast(pa.int64())
    return pool.take(idx)


def pods_table() -> pa.Table:
    upids = [make_upid(1 + i % 6, 1000 + i, 555_000 + i) for i in range(N_PODS)]
    return pa.table(
        {
            "upid": pa.array(upids, pa.binary(16)),
            "pod": [f"shop/pod-{i:03d}" for i in range(N_PODS)],
            "service": [f"shop/svc-{i % 12:02d}" for i in range(N_PODS)],
            "node": [f"node-{i % 6}" for i in range(N_PODS)],
        },
        schema=PODS_SCHEMA,
    )


def http_batches(total: int, pods: pa.Table):
    """Synthetic http_events batches in ascending time_, spread over the last 5 minutes."""
    paths = [f"/api/v1/{noun}/{i}" for noun in ("orders", "items", "users", "cart") for i in range(90)]
    paths += [f"/api/v1/checkout/{i}" for i in range(40)]
    pools = {
        "upid": pods.column("upid").combine_chunks(),
        "remote_addr": _pool([f"10.{i // 250}.{i % 250}.7" for i in range(200)]),
        "remote_port": _pool(list(range(30000, 30200)), pa.int64()),
        "local_addr": _pool([f"10.9.0.{i}" for i in range(40)]),
        "req_headers": _pool(
            [
                f'{{"Host":"svc-{i}.shop:8080","User-Agent":"python-requests/2.31",'
                f'"Accept":"application/json","X-Request-Id":"{i:08x}-1b2a-4c3d"}}'
                for i in range(50)
            ]
        ),
        "req_method": _pool(["GET"] * 6 + ["POST"] * 2 + ["PUT", "DELETE"]),
        "req_path": _pool(paths),
        "req_body": _pool([""] * 5 + [f'{{"sku":"A-{i}","qty":{i % 5}}}' for i in range(20)]),
        "resp_headers": _pool(
            [f'{{"Content-Type":"application/json","Content-Length":"{100 + i}"}}' for i in range(50)]
        ),
        "resp_status": _pool([200] * 16 + [201, 404, 500, 503], pa.int64()),
        "resp_body": _pool(
            [
                f'{{"id":{i},"status":"shipped","items":[{{"sku":"A-{i}","qty":2,'
                f'"price":19.99}}],"total":{i * 3.5:.2f},"currency":"EUR",'
                f'"note":"{"x" * (i % 160)}"}}'
                for i in range(100)
            ]
        ),
    }
    step = WINDOW_NS // total
    start = NOW - WINDOW_NS + 1
    done = 0
    while done < total:
        n = min(BATCH_ROWS, total - done)
        times = pc.add(pc.multiply(pa.array(range(done, done + n), pa.int64()), step), start)
        status = _pick(pools["resp_status"], n)
        cols = {
            "time_": times.cast(pa.timestamp("ns", tz="UTC")),
            "upid": _pick(pools["upid"], n),
            "remote_addr": _pick(pools["remote_addr"], n),
            "remote_port": _pick(pools["remote_port"], n),
            "local_addr": _pick(pools["local_addr"], n),
            "local_port": pa.repeat(pa.scalar(8080), n),
            "trace_role": pa.repeat(pa.scalar(2), n),
            "encrypted": pa.repeat(pa.scalar(False), n),
            "major_version": pa.repeat(pa.scalar(1), n),
            "minor_version": pa.repeat(pa.scalar(1), n),
            "content_type": pa.repeat(pa.scalar(1), n),
            "req_headers": _pick(pools["req_headers"], n),
            "req_method": _pick(pools["req_method"], n),
            "req_path": _pick(pools["req_path"], n),
            "req_body": _pick(pools["req_body"], n),
            "req_body_size": pc.floor(pc.multiply(pc.random(n), 400)).cast(pa.int64()),
            "resp_headers": _pick(pools["resp_headers"], n),
            "resp_status": status,
            "resp_message": pc.if_else(pc.less(status, 400), "OK", "Error"),
            "resp_body": _pick(pools["resp_body"], n),
            "resp_body_size": pc.floor(pc.multiply(pc.random(n), 20_000)).cast(pa.int64()),
            # log-uniform latency between 100 us and ~40 ms
            "latency": pc.floor(pc.multiply(pc.exp(pc.multiply(pc.random(n), 6.0)), 1e5)).cast(pa.int64()),
        }
        yield pa.RecordBatch.from_arrays([cols[f.name] for f in HTTP_EVENTS], schema=HTTP_EVENTS)
        done += n


HTTP_DATA = """import px
df = px.DataFrame(table='http_events', start_time='-5m')
df = df[px.contains(df.req_path, 'checkout')]
df = df[df.resp_status >= 500]
df = df[['time_', 'upid', 'req_method', 'req_path', 'resp_status', 'latency']]
px.display(df.head(1000))
"""

SERVICE_STATS = """import px
df = px.DataFrame(table='http_events', start_time='-5m')
df.service = df.ctx['service']
df.timestamp = px.bin(df.time_, px.DurationNanos(10 * 1000 * 1000 * 1000))
df.failure = df.resp_status >= 400
df = df.groupby(['service', 'timestamp']).agg(
    latency_quantiles=('latency', px.quantiles),
    error_rate=('failure', px.mean),
    throughput_total=('latency', px.count),
    bytes_total=('resp_body_size', px.sum),
)
df.request_throughput = df.throughput_total / 10.0
px.display(df)
"""

ENDPOINTS = """import px
df = px.DataFrame(table='http_events', start_time='-5m')
df.failure = df.resp_status >= 400
df = df.groupby(['req_path', 'req_method']).agg(
    requests=('latency', px.count),
    latency_mean=('latency', px.mean),
    latency_max=('latency', px.max),
    errors=('failure', px.sum),
)
px.display(df.head(100))
"""

JOIN = """import px
df = px.DataFrame(table='http_events', start_time='-5m')
df = df.groupby('upid').agg(requests=('latency', px.count), latency_sum=('latency', px.sum))
pods = px.DataFrame(table='bench_pods')
df = df.merge(pods, how='inner', left_on='upid', right_on='upid', suffixes=['', '_pod'])
df = df.groupby('node').agg(requests=('requests', px.sum), latency_sum=('latency_sum', px.sum))
px.display(df)
"""

_T0 = f"make_timestamp_ns({NOW - WINDOW_NS})::TIMESTAMPTZ_NS"
DUCK = {
    "http_data": f"""SELECT time_, upid, req_method, req_path, resp_status, latency FROM http
        WHERE time_ >= {_T0} AND contains(req_path, 'checkout') AND resp_status >= 500 LIMIT 1000""",
    "service_stats": f"""SELECT p.service,
        (epoch_ns(h.time_) // 10000000000) * 10000000000 AS ts,
        quantile_cont(h.latency, [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99]) AS q,
        avg((h.resp_status >= 400)::INT) AS error_rate, count(*) AS n, sum(h.resp_body_size) AS bytes,
        count(*) / 10.0 AS throughput
        FROM http h JOIN pods p ON h.upid = p.upid WHERE h.time_ >= {_T0} GROUP BY 1, 2""",
    "endpoints": f"""SELECT req_path, req_method, count(*) AS requests, avg(latency), max(latency),
        sum((resp_status >= 400)::INT) AS errors FROM http WHERE time_ >= {_T0} GROUP BY 1, 2 LIMIT 100""",
    "join": f"""WITH a AS (SELECT upid, count(*) AS r, sum(latency) AS l FROM http WHERE time_ >= {_T0}
        GROUP BY upid) SELECT p.node, sum(a.r), sum(a.l) FROM a JOIN pods p ON a.upid = p.upid GROUP BY 1""",
}
PXL = {"http_data": HTTP_DATA, "service_stats": SERVICE_STATS, "endpoints": ENDPOINTS, "join": JOIN}


class BenchMetadata:
    """upid -> pod/service/node from the 120-row bench_pods table: a dictionary lookup
    (index_in + take), which is how a PEM answers ctx[...] from its process table."""

    def __init__(self, pods: pa.Table) -> None:
        self.upids = pods.column("upid").combine_chunks()
        self.attrs = {
            "pod_name": pods.column("pod").combine_chunks(),
            "service_name": pods.column("service").combine_chunks(),
            "node_name": pods.column("node").combine_chunks(),
        }

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        values = self.attrs.get(attr)
        if values is None:
            return pa.repeat(pa.scalar(""), len(upids))
        return pc.fill_null(values.take(pc.index_in(upids, value_set=self.upids)), "")

    def hostname(self) -> str:
        return "bench-host"


def check_service_stats(pxl: pa.Table, duck: pa.Table) -> None:
    """The PxL answer against DuckDB's exact one: counts, sums and error rates equal, each quantile
    within the sketch's stated relative error of the exact (interpolated) quantile."""
    want = {(r["service"], r["ts"]): r for r in duck.to_pylist()}
    keys = zip(pxl.column("service").to_pylist(), pxl.column("timestamp").cast(pa.int64()).to_pylist(), strict=True)
    for key, q, err, n, size in zip(
        keys,
        *(pxl.column(c).to_pylist() for c in ("latency_quantiles", "error_rate", "throughput_total", "bytes_total")),
        strict=True,
    ):
        exact = want[key]
        assert (n, size) == (exact["n"], exact["bytes"]), key
        assert abs(err - exact["error_rate"]) <= 1e-12, key
        for got, ref in zip(json.loads(q).values(), exact["q"], strict=True):
            assert abs(got - ref) <= RELATIVE_ERROR * abs(ref) + 1e-9, (key, got, ref)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run(rows: int, repeat: int) -> list[tuple[str, float, float, int]]:
    import duckdb

    pods = pods_table()
    store = TableStore(default_max_bytes=1 << 40)
    store.create("http_events", HTTP_EVENTS)
    store.create("bench_pods", PODS_SCHEMA)
    store.append("bench_pods", pods)
    t0 = time.perf_counter()
    for batch in http_batches(rows, pods):
        store.append("http_events", batch)
    gen_s = time.perf_counter() - t0
    http = pa.Table.from_batches(list(store.scan("http_events", None, None)), schema=HTTP_EVENTS)
    print(
        f"\n{rows:,} rows generated in {gen_s:.1f} s, {http.nbytes / 2**20:,.0f} MiB in "
        f"{http.column('time_').num_chunks} batches"
    )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("http", http)
    con.register("pods", pods)
    metadata = BenchMetadata(pods)
    schemas = store.schemas()
    results = []
    for name, src in PXL.items():

        def pxl_run(src: str = src) -> int:
            query = compile_pxl(src, now_ns=NOW, schemas=schemas)
            return sum(t.num_rows for _, t in execute(query, store, metadata))

        def duck_run(name: str = name) -> int:
            return con.sql(DUCK[name]).to_arrow_table().num_rows

        out_rows = pxl_run()
        duck_rows = duck_run()
        assert out_rows == duck_rows, f"{name}: PxL gave {out_rows} rows, DuckDB {duck_rows}"
        if name == "service_stats":
            query = compile_pxl(src, now_ns=NOW, schemas=schemas)
            check_service_stats(execute(query, store, metadata)[0][1], con.sql(DUCK[name]).to_arrow_table())
        p = median_ms(pxl_run, repeat)
        d = median_ms(duck_run, repeat)
        results.append((name, p, d, out_rows))
        print(
            f"  {name:14s} pxl {p:9.1f} ms   duckdb {d:9.1f} ms   ratio {p / d:5.2f}x   ({out_rows} rows)", flush=True
        )
    con.close()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="rows to generate (repeatable)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import duckdb

    print(
        f"pyarrow {pa.__version__}, duckdb {duckdb.__version__}; median of {args.repeat}; "
        f"ratio = PxL time / DuckDB time"
    )
    for rows in args.rows or [1_000_000, 5_000_000]:
        run(rows, args.repeat)


if __name__ == "__main__":
    main()
