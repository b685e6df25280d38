"""UI test data: deterministic tables shaped like each vis widget's input, and scripts showing them.

Labelled as test data: nothing here comes from a cluster. Column names, types and semantic
types follow the bundled Pixie scripts these widgets serve (px/pod's resource charts, px/service
latency histograms, px/namespace's service graph, px/perf_flamegraph), so the formatting paths
(durations, bytes, percent) are the real ones. Times are fixed (BASE_NS) and the app is given a
fixed clock and UTC, so snapshots do not change between runs.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from cluster.schemas import TIME64NS, col
from pxtui.app import PxApp
from pxtui.runner import ScriptResult
from pxtui.scripts import Script
from tests.tui.fakes import BASE_NS, FakeRunner, http_rows

SEC = 1_000_000_000
SERVICES = ["frontend", "cart", "catalog", "checkout", "redis"]
FIXED_NOW = datetime(2023, 11, 14, 22, 13, 30, tzinfo=UTC)

# ---------------------------------------------------------------------------------- tables


def pods_table() -> pa.Table:
    """A Table with a gutter status column and a script-reference column (px/namespace pods)."""
    states = [{"phase": "Running", "ready": True}, {"phase": "Pending", "ready": False},
              {"phase": "Failed", "reason": "CrashLoopBackOff"}, {"phase": "Running", "ready": True},
              {"phase": "Succeeded"}]
    pods = [f"default/{s}-7d9f" for s in SERVICES]
    refs = [json.dumps({"label": p, "script": "test/pod", "args": {"pod": p}}) for p in pods]
    schema = pa.schema([
        col("status", pa.string(), "ST_POD_STATUS"),
        col("pod", pa.string(), "ST_SCRIPT_REFERENCE"),
        col("cpu", pa.float64(), "ST_PERCENT"),
        col("memory", pa.int64(), "ST_BYTES"),
        col("restarts", pa.int64()),
    ])
    return pa.table({
        "status": [json.dumps(s) for s in states],
        "pod": refs,
        "cpu": [0.12, 0.0, 0.91, 0.45, 0.03],
        "memory": [52_428_800, 0, 1_073_741_824, 268_435_456, 8_388_608],
        "restarts": [0, 0, 14, 1, 0],
    }, schema=schema)


def timeseries_table() -> pa.Table:
    """Request rate and p50 latency per service every 10 s over 5 minutes."""
    rows: dict[str, list[Any]] = {"time_": [], "service": [], "rps": [], "latency_p50": []}
    for step in range(30):
        for k, svc in enumerate(SERVICES[:3]):
            rows["time_"].append(BASE_NS + step * 10 * SEC)
            rows["service"].append(svc)
            rows["rps"].append(round(10 + 5 * k + (step % 7) * (k + 1) * 0.8, 2))
            rows["latency_p50"].append((2 + k) * 1_000_000 + (step * 37 % 11) * 250_000)
    schema = pa.schema([col("time_", TIME64NS), col("service", pa.string(), "ST_SERVICE_NAME"),
                        col("rps", pa.float64()), col("latency_p50", pa.int64(), "ST_DURATION_NS")])
    return pa.table(rows, schema=schema)


def bars_table() -> pa.Table:
    """Requests per service, stacked by status class."""
    rows: dict[str, list[Any]] = {"service": [], "status_class": [], "requests": []}
    for k, svc in enumerate(SERVICES):
        for j, cls in enumerate(["2xx", "4xx", "5xx"]):
            rows["service"].append(svc)
            rows["status_class"].append(cls)
            rows["requests"].append([400, 30, 8][j] * (5 - k) // 2 + j)
    return pa.table(rows)


def latency_table() -> pa.Table:
    """One latency per request: a log-normal-ish spread, deterministic."""
    values = [(1 + (i * 7919) % 97) * 180_000 + (i % 13) * 2_000_000 for i in range(400)]
    return pa.table({"latency": values}, schema=pa.schema([col("latency", pa.int64(), "ST_DURATION_NS")]))


EDGES = [("frontend", "cart", 4.2, 0.0), ("frontend", "catalog", 12.5, 0.02), ("cart", "redis", 0.8, 0.0),
         ("frontend", "checkout", 180.0, 0.12), ("checkout", "cart", 3.1, 0.0), ("checkout", "payment", 240.0, 0.0)]


def graph_table() -> pa.Table:
    """px/net_flow_graph-like edges: latency in ms as the colour column, bytes as the weight."""
    schema = pa.schema([col("from_entity", pa.string()), col("to_entity", pa.string()),
                        col("latency_ms", pa.float64()), col("bytes_total", pa.int64(), "ST_BYTES"),
                        col("requests", pa.int64())])
    return pa.table({
        "from_entity": [e[0] for e in EDGES], "to_entity": [e[1] for e in EDGES],
        "latency_ms": [e[2] for e in EDGES],
        "bytes_total": [int(e[2] * 10_000) + 4096 for e in EDGES],
        "requests": [100 * (i + 1) for i in range(len(EDGES))],
    }, schema=schema)


def request_graph_table() -> pa.Table:
    """px/namespace's service graph output (all 14 RequestGraph columns)."""
    n = len(EDGES)
    ms = 1_000_000
    schema = pa.schema([
        col("requestor_pod", pa.string()), col("responder_pod", pa.string()),
        col("requestor_service", pa.string()), col("responder_service", pa.string()),
        col("requestor_ip", pa.string()), col("responder_ip", pa.string()),
        col("latency_p50", pa.float64(), "ST_DURATION_NS"), col("latency_p90", pa.float64(), "ST_DURATION_NS"),
        col("latency_p99", pa.float64(), "ST_DURATION_NS"), col("error_rate", pa.float64(), "ST_PERCENT"),
        col("request_throughput", pa.float64()), col("inbound_throughput", pa.float64(), "ST_BYTES"),
        col("outbound_throughput", pa.float64(), "ST_BYTES"), col("throughput_total", pa.int64()),
    ])
    return pa.table({
        "requestor_pod": [f"default/{e[0]}-1" for e in EDGES], "responder_pod": [f"default/{e[1]}-1" for e in EDGES],
        "requestor_service": [f"default/{e[0]}" for e in EDGES],
        "responder_service": ["" if e[1] == "payment" else f"default/{e[1]}" for e in EDGES],
        "requestor_ip": [f"10.0.0.{i}" for i in range(n)], "responder_ip": [f"10.0.1.{i}" for i in range(n)],
        "latency_p50": [e[2] * ms for e in EDGES], "latency_p90": [e[2] * 2 * ms for e in EDGES],
        "latency_p99": [e[2] * 5 * ms for e in EDGES], "error_rate": [e[3] for e in EDGES],
        "request_throughput": [10.0 * (i + 1) for i in range(n)],
        "inbound_throughput": [1024.0 * (i + 1) for i in range(n)],
        "outbound_throughput": [2048.0 * (i + 1) for i in range(n)],
        "throughput_total": [600 * (i + 1) for i in range(n)],
    }, schema=schema)


STACKS = [
    ("main;serve;handle_request;parse_json;decode", 120),
    ("main;serve;handle_request;parse_json;alloc", 40),
    ("main;serve;handle_request;query_db;send", 90),
    ("main;serve;handle_request;query_db;recv", 60),
    ("main;serve;accept", 30),
    ("main;gc;mark", 45),
    ("main;gc;sweep", 15),
]


def flame_table() -> pa.Table:
    """px/perf_flamegraph-shaped stacks: two pods, folded stacks, sample counts, percentages."""
    rows: dict[str, list[Any]] = {"stack_trace": [], "count": [], "percent": [], "pod": []}
    total = sum(c for _, c in STACKS) * 2
    for p, pod in enumerate(["default/frontend-1", "default/cart-1"]):
        for stack, count in STACKS:
            c = count if p == 0 else count // 3
            rows["stack_trace"].append(stack)
            rows["count"].append(c)
            rows["percent"].append(c / total * 100)
            rows["pod"].append(pod)
    return pa.table(rows)


TABLES = {
    "pods": pods_table, "resources": timeseries_table, "bars": bars_table, "latencies": latency_table,
    "net_graph": graph_table, "svc_graph": request_graph_table, "stacks": flame_table,
}

# ---------------------------------------------------------------------------------- vis widgets

WIDGETS: dict[str, dict[str, Any]] = {
    "Table": {"name": "Pods", "globalFuncOutputName": "pods",
              "displaySpec": {"@type": "types.px.dev/px.vispb.Table", "gutterColumn": "status"}},
    "TimeseriesChart": {"name": "Requests", "globalFuncOutputName": "resources", "displaySpec": {
        "@type": "types.px.dev/px.vispb.TimeseriesChart", "title": "Request rate by service",
        "timeseries": [{"value": "rps", "series": "service", "mode": "MODE_AREA", "stackBySeries": True}],
        "yAxis": {"label": "req/s"}, "xAxis": None}},
    "BarChart": {"name": "Requests by service", "globalFuncOutputName": "bars", "displaySpec": {
        "@type": "types.px.dev/px.vispb.BarChart",
        "bar": {"value": "requests", "label": "service", "stackBy": "status_class", "horizontal": True}}},
    "HistogramChart": {"name": "Latency", "globalFuncOutputName": "latencies", "displaySpec": {
        "@type": "types.px.dev/px.vispb.HistogramChart",
        "histogram": {"value": "latency", "maxbins": 20, "minstep": 1_000_000},
        "xAxis": {"label": "latency"}, "yAxis": {"label": "requests"}}},
    "Graph": {"name": "Network flow", "globalFuncOutputName": "net_graph", "displaySpec": {
        "@type": "types.px.dev/px.vispb.Graph",
        "adjacencyList": {"fromColumn": "from_entity", "toColumn": "to_entity"},
        "edgeWeightColumn": "bytes_total", "edgeColorColumn": "latency_ms",
        "edgeThresholds": {"mediumThreshold": 10, "highThreshold": 100},
        "edgeHoverInfo": ["latency_ms", "requests"], "edgeLength": 300}},
    "RequestGraph": {"name": "Service graph", "globalFuncOutputName": "svc_graph", "displaySpec": {
        "@type": "types.px.dev/px.vispb.RequestGraph",
        "requestorPodColumn": "requestor_pod", "responderPodColumn": "responder_pod",
        "requestorServiceColumn": "requestor_service", "responderServiceColumn": "responder_service",
        "requestorIPColumn": "requestor_ip", "responderIPColumn": "responder_ip",
        "p50Column": "latency_p50", "p90Column": "latency_p90", "p99Column": "latency_p99",
        "errorRateColumn": "error_rate", "requestsPerSecondColumn": "request_throughput",
        "inboundBytesPerSecondColumn": "inbound_throughput", "outboundBytesPerSecondColumn": "outbound_throughput",
        "totalRequestCountColumn": "throughput_total"}},
    "StackTraceFlameGraph": {"name": "Flame graph", "globalFuncOutputName": "stacks", "displaySpec": {
        "@type": "types.px.dev/px.vispb.StackTraceFlameGraph", "stacktraceColumn": "stack_trace",
        "countColumn": "count", "percentageColumn": "percent", "podColumn": "pod"}},
}

VARIABLES = [
    {"name": "start_time", "type": "PX_STRING", "description": "Start of the window.", "defaultValue": "-5m"},
    {"name": "namespace", "type": "PX_NAMESPACE", "description": "Namespace to show.", "defaultValue": "default"},
]

PXL = """import px

# UI test script: the fake runner never executes it.
def pods(start_time: str, namespace: str):
    df = px.DataFrame(table='process_stats', start_time=start_time)
    return df
"""


def _vis(widgets: list[dict[str, Any]]) -> str:
    funcs = [{"outputName": name, "func": {"name": "pods", "args": [
        {"name": "start_time", "variable": "start_time"}, {"name": "namespace", "variable": "namespace"}]}}
        for name in TABLES]
    return json.dumps({"variables": VARIABLES, "globalFuncs": funcs, "widgets": widgets})


def widget_script(kind: str) -> Script:
    """A script whose vis.json holds only the `kind` widget, full width."""
    w = {**WIDGETS[kind], "position": {"x": 0, "y": 0, "w": 12, "h": 4}}
    return Script(f"test/{kind}", PXL, _vis([w]), short=f"{kind} test view")


DASHBOARD_LAYOUT = [  # (kind, x, y, w, h) as Pixie dashboards place them
    ("TimeseriesChart", 0, 0, 6, 3), ("HistogramChart", 6, 0, 6, 3),
    ("RequestGraph", 0, 3, 6, 4), ("BarChart", 6, 3, 6, 4),
    ("Table", 0, 7, 12, 3), ("Graph", 0, 10, 6, 4), ("StackTraceFlameGraph", 6, 10, 6, 4),
]


def dashboard_script() -> Script:
    """Every widget type on one 12-column grid (layout tests)."""
    widgets = [{**WIDGETS[k], "position": {"x": x, "y": y, "w": w, "h": h}} for k, x, y, w, h in DASHBOARD_LAYOUT]
    return Script("test/dashboard", PXL, _vis(widgets), short="every widget type")


def pod_script() -> Script:
    """The drill-down target of the pods table's script references."""
    vis = {"variables": [{"name": "pod", "type": "PX_POD", "description": "The pod."},
                         {"name": "start_time", "type": "PX_STRING", "defaultValue": "-5m"}],
           "globalFuncs": [{"outputName": "http_data", "func": {"name": "f", "args": [
               {"name": "pod", "variable": "pod"}]}}],
           "widgets": [{"name": "Pod traffic", "position": {"x": 0, "y": 0, "w": 12, "h": 4},
                        "globalFuncOutputName": "http_data",
                        "displaySpec": {"@type": "types.px.dev/px.vispb.Table"}}]}
    return Script("test/pod", "import px\n# UI test target\n", json.dumps(vis), short="one pod")


def all_scripts() -> dict[str, Script]:
    """What the palette and drill-downs see in these tests (instead of the bundled set)."""
    scripts = {s.id: s for s in [widget_script(k) for k in WIDGETS]}
    scripts["test/dashboard"] = dashboard_script()
    scripts["test/pod"] = pod_script()
    return scripts


def result(_: int = 0) -> ScriptResult:
    """Every table, every run (each widget picks its output by name)."""
    tables = [(name, make()) for name, make in TABLES.items()]
    tables.append(("http_data", http_rows(20)))
    return ScriptResult(tables=tables)


def widget_runner() -> FakeRunner:
    return FakeRunner(produce=result)


def make_widget_app(script: Script, tmp_path: Path | None = None, *, ascii_only: bool = False,
                    runner: FakeRunner | None = None) -> PxApp:
    """A deterministic app: fixed clock, UTC, no auto-refresh (runs happen on `r`)."""
    return PxApp(runner or widget_runner(), script, {}, refresh_s=3600.0, save_dir=tmp_path, tz=UTC,
                 ascii_only=ascii_only, clock=lambda: FIXED_NOW, timer=lambda: 0.0,
                 scripts=all_scripts())
