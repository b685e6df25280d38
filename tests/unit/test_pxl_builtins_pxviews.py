"""`import pxviews`: the library compiles on import, its views compute what they promise over
hand-made tables (test data), and a missing table is named at the script's call."""

from __future__ import annotations

import pyarrow as pa
import pytest

from cluster import schemas
from cluster.pxl import PxlCompileError, compile_pxl, execute
from tests.unit.test_pxl_support import NOW, SEC, FakeMetadata, FakeTables, upid

ALL = {name: spec.schema for name, spec in schemas.TABLES.items()}

VIEWS = [
    "pod_resource_stats('-5m', px.now())",
    "container_process_summary('-5m', px.now())",
    "container_process_timeseries('-5m', px.now(), 10 * 1000 * 1000 * 1000)",
    "processes(start_time='-5m', end_time=px.now())",
    "pod_network_timeseries('-5m', px.now(), 10000000000)",
    "pod_network_summary('-5m', px.now())",
    "inbound_http_summary('-5m', px.now())",
    "inbound_http_throughput_timeseries('-5m', px.now(), 10000000000)",
    "inbound_http_latency_timeseries('-5m', px.now(), 10000000000)",
    "http_graph(px.now() + px.parse_duration('-5m'), px.now())",
    "connection_throughput_stats('-5m', px.now())",
    "stacktraces('-5m', px.now())",
]


@pytest.mark.parametrize("call", VIEWS)
def test_every_view_compiles(call: str) -> None:
    q = compile_pxl(f"import px\nimport pxviews\npx.display(pxviews.{call})\n", now_ns=NOW, schemas=ALL)
    assert len(q.sinks) == 1 and q.sinks[0].node.relation


def process_stats() -> pa.Table:
    """Two processes of pod ns/p (pids 1, 2) and one of ns/q (pid 3), sampled at t = 0, 10 s."""
    rows = []
    for t in (0, 10):
        for pid, cpu, rss in ((1, 100, 1000), (2, 300, 2000), (3, 50, 500)):
            rows.append({"time_": NOW - 60 * SEC + t * SEC, "upid": upid(pid), "cpu_utime_ns": cpu * t * 10**6,
                         "cpu_ktime_ns": cpu * t * 10**5, "rss_bytes": rss, "vsize_bytes": 2 * rss,
                         "read_bytes": 10 * t, "write_bytes": 20 * t, "rchar_bytes": 30 * t,
                         "wchar_bytes": 40 * t})
    arrays = []
    for f in schemas.PROCESS_STATS:
        values = [r.get(f.name, 0) for r in rows]
        arr = pa.array(values, pa.int64()).cast(f.type) if f.name == "time_" else pa.array(values, f.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schemas.PROCESS_STATS)


METADATA = FakeMetadata(by_pid={
    1: {"pod_name": "ns/p", "pod_id": "pid-p", "container_id": "c1", "container_name": "web",
        "namespace": "ns", "node_name": "n1", "service_name": "ns/svc"},
    2: {"pod_name": "ns/p", "pod_id": "pid-p", "container_id": "c2", "container_name": "side",
        "namespace": "ns", "node_name": "n1", "service_name": "ns/svc"},
    3: {"pod_name": "ns/q", "pod_id": "pid-q", "container_id": "c3", "container_name": "web",
        "namespace": "ns", "node_name": "n2"},
}, entities={("pod_id", "pod_name", "pid-p"): "ns/p", ("pod_id", "pod_name", "pid-q"): "ns/q",
             ("pod_id", "service_name", "pid-p"): "ns/svc", ("pod_id", "node_name", "pid-p"): "n1",
             ("pod_id", "node_name", "pid-q"): "n2", ("pod_id", "namespace", "pid-p"): "ns",
             ("pod_id", "namespace", "pid-q"): "ns",
             ("pod_name", "status", "ns/p"): '{"phase":"Running"}'})


def run_view(call: str) -> pa.Table:
    q = compile_pxl(f"import px\nimport pxviews\npx.display(pxviews.{call})\n", now_ns=NOW, schemas=ALL)
    out = dict(execute(q, FakeTables({"process_stats": process_stats()}), METADATA))
    return out["output"]


def test_pod_resource_stats_values() -> None:
    rows = {r["pod"]: r for r in run_view("pod_resource_stats('-5m', px.now())").to_pylist()}
    p, q = rows["ns/p"], rows["ns/q"]
    assert p["container_count"] == 2 and q["container_count"] == 1
    # pod p: cpu grows (100 + 300) * 10 * 1.1e6 ns over a 10 s span -> 0.44 of a CPU
    assert p["cpu_usage"] == pytest.approx((100 + 300) * 10 * 1.1e6 / (10 * SEC))
    assert q["cpu_usage"] == pytest.approx(50 * 10 * 1.1e6 / (10 * SEC))
    assert p["rss"] == 3000.0 and q["vsize"] == 1000.0
    assert p["actual_disk_read_throughput"] == pytest.approx(2 * 100 / (10 * SEC))
    assert (p["service"], p["node"], p["namespace"], p["status"]) == ("ns/svc", "n1", "ns", '{"phase":"Running"}')
    assert q["status"] == ""


def test_container_process_timeseries_values() -> None:
    out = run_view("container_process_timeseries('-5m', px.now(), 20 * 1000 * 1000 * 1000)")
    rows = {(r["pod_id"], r["container"]): r for r in out.to_pylist()}
    assert set(rows) == {("pid-p", "web"), ("pid-p", "side"), ("pid-q", "web")}
    # both samples fall in one 20 s window: growth over the window divided by the window
    assert rows[("pid-p", "side")]["cpu_usage"] == pytest.approx(300 * 10 * 1.1e6 / (20 * SEC))
    assert rows[("pid-q", "web")]["rss"] == 500.0


def test_processes_view() -> None:
    out = run_view("processes('-5m', px.now())")
    assert sorted(out.column("pid").to_pylist()) == [1, 2, 3]
    assert set(out.column("pod").to_pylist()) == {"ns/p", "ns/q"}


def test_missing_table_is_named_at_the_call() -> None:
    schemas_without = {k: v for k, v in ALL.items() if k != "process_stats"}
    src = "import px\nimport pxviews\n\ndf = pxviews.pod_resource_stats('-5m', px.now())\npx.display(df)\n"
    with pytest.raises(PxlCompileError) as e:
        compile_pxl(src, now_ns=NOW, schemas=schemas_without)
    err = e.value.errors[0]
    assert (err.line, err.col) == (4, 6)
    assert "pxviews.pod_resource_stats" in err.message and "Table 'process_stats' not found" in err.message


def test_pxviews_errors_name_the_function_and_argument() -> None:
    with pytest.raises(PxlCompileError, match=r"pxviews has no function 'nope'; it provides: .*http_graph"):
        compile_pxl("import pxviews\ndf = pxviews.nope()\n", now_ns=NOW, schemas=ALL)
    with pytest.raises(PxlCompileError, match=r"missing required argument 'end_time'"):
        compile_pxl("import pxviews\ndf = pxviews.http_graph('-5m')\n", now_ns=NOW, schemas=ALL)


def test_library_does_not_see_script_names() -> None:
    """The library's scope is its own: a script variable called `px` cannot change it."""
    src = "import px\nimport pxviews\npx2 = px\ndf = pxviews.processes('-5m', px2.now())\npx.display(df)\n"
    assert compile_pxl(src, now_ns=NOW, schemas=ALL).sinks
