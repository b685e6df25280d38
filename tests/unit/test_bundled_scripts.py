"""Every bundled script compiles and runs in function mode (its vis defaults, required variables
given) against a synthetic recording (tests/datagen.py) loaded through cluster/store/recording.py,
and returns each widget's output with the columns the widget reads and the columns pinned below.

Scripts that need a PxL builtin pxtui does not have yet are listed in MISSING_BUILTINS and marked
xfail(strict=True): when the builtin lands the case passes, strict turns that into a failure, and
the entry must be deleted, so the list only shrinks.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from cluster.schemas import semantic_type
from pxtui.local_runner import LocalRunner
from pxtui.runner import ScriptError
from pxtui.scripts import BUNDLE_DIR, Script, bundled
from tests import datagen

#: script id -> the builtin it waits for (empty: every bundled script runs today)
MISSING_BUILTINS: dict[str, str] = {}

#: widget types Pixie's vis.json uses (pxl_surface.md §12.4)
PIXIE_WIDGETS = {"Table", "TimeseriesChart", "BarChart", "HistogramChart", "Graph", "RequestGraph",
                 "StackTraceFlameGraph"}

_FRONTEND = next(p for p in datagen.cluster_processes() if p.service == "frontend")
#: values for the variables that have no default, all present in the synthetic cluster
REQUIRED_VALUES = {
    "namespace": "shop",
    "node": _FRONTEND.node,
    "pod": f"{_FRONTEND.namespace}/{_FRONTEND.pod}",
    "service": "shop/frontend",
    "responding_svc": "shop/frontend",
}

EXPECTED = """
px/agent_status agents: agent_id asid hostname ip_address agent_state create_time since_heartbeat
    kernel_headers_installed
px/amqp_data amqp_data: time_ source destination frame channel req_method resp_method req_msg resp_msg latency
    pod namespace
px/cluster service_graph: requestor_pod requestor_service requestor_ip responder_pod responder_service
    responder_ip latency_p50 latency_p90 latency_p99 error_rate request_throughput inbound_throughput
    outbound_throughput request_count
px/cluster nodes: node pod_count cpu_usage rss
px/cluster namespaces: namespace pod_count service_count cpu_usage rss
px/cluster services: service_link service latency_p50 latency_p90 latency_p99 error_rate request_throughput
    request_count
px/cluster pods: pod_link pod namespace node service processes cpu_usage rss
px/cql_data cql_data: time_ source destination req_op_name req_body resp_op_name resp_body failed latency pod
    namespace
px/dns_data dns_data: time_ source destination query_name rcode req_header req_body resp_header resp_body
    latency pod namespace
px/dns_flow_graph dns_flows: client server request_count latency_p50 latency_p99 failure_rate
px/funcs scalar_funcs: name return_type args
px/funcs aggregate_funcs: name return_type args
px/funcs table_funcs: name executor init_args output_relation
px/http_data http_data: time_ source destination method path status latency req_headers req_body req_body_size
    resp_headers resp_body resp_body_size resp_message trace_role service pod remote_addr remote_port
    local_addr local_port major_version minor_version
px/http_request_stats request_stats: service req_method req_path request_count latency_p50 latency_p90
    latency_p99 error_rate request_throughput req_bytes resp_bytes
px/inbound_conns connections: pod remote_addr remote_port client_pod conns_opened conns_closed conns_active
    bytes_sent bytes_recv
px/kafka_data kafka_data: time_ source destination api client_id req_body resp latency pod namespace
px/mongodb_data mongodb_data: time_ source destination req_cmd req_body resp_status resp_body latency pod
    namespace
px/mqtt_data mqtt_data: time_ source destination req_type req_header_fields req_properties req_payload resp_type
    resp_header_fields resp_properties resp_payload latency pod namespace
px/mysql_data mysql_data: time_ source destination command req_body resp_status resp_body failed latency pod
    namespace
px/mysql_stats let_over_time: time_ server latency_p50 latency_p99 error_rate request_throughput
px/mysql_stats by_command: server command request_count latency_p50 latency_p99 error_rate request_throughput
px/namespace service_graph: requestor_pod requestor_service requestor_ip responder_pod responder_service
    responder_ip latency_p50 latency_p90 latency_p99 error_rate request_throughput inbound_throughput
    outbound_throughput request_count
px/namespace pods: pod_link pod node processes cpu_usage rss
px/namespace services: service_link service latency_p50 latency_p90 latency_p99 error_rate request_throughput
    request_count
px/namespaces namespaces: namespace_link namespace pod_count service_count
px/namespaces namespace_usage: namespace cpu_usage rss vsize read_throughput write_throughput
px/nats_data nats_data: time_ source destination cmd subject body resp pod namespace
px/net_flow_graph flows: from_entity to_entity bytes_sent bytes_recv bytes_total throughput
px/node cpu_timeseries: time_ group cpu_usage rss
px/node processes: pid cmdline pod namespace cpu_usage rss vsize read_throughput write_throughput
px/node flamegraph: stack_trace count percent namespace pod cmdline node
px/nodes node_timeseries: time_ node cpu_usage rss
px/nodes nodes: node_link node pod_count processes cpu_usage rss
px/outbound_conns connections: pod remote_addr remote_port server_pod conns_opened conns_closed conns_active
    bytes_sent bytes_recv
px/perf_flamegraph stacks: stack_trace count percent node namespace pod container cmdline
px/pgsql_data pgsql_data: time_ source destination req_cmd req resp latency pod namespace
px/pgsql_stats let_over_time: time_ server latency_p50 latency_p99 error_rate request_throughput
px/pgsql_stats by_command: server command request_count latency_p50 latency_p99 error_rate request_throughput
px/pod resource_timeseries: time_ cpu_usage rss vsize
px/pod http_timeseries: time_ group latency_p50 latency_p90 latency_p99 error_rate request_throughput
    inbound_throughput outbound_throughput request_count
px/pod processes: pid cmdline cpu_usage rss vsize read_throughput write_throughput
px/pod callers: requestor request_count latency_p50 latency_p99 error_rate request_throughput
px/pod flamegraph: stack_trace count percent namespace pod container cmdline
px/pods resource_timeseries: time_ pod cpu_usage rss
px/pods http_timeseries: time_ group latency_p50 latency_p90 latency_p99 error_rate request_throughput
    inbound_throughput outbound_throughput request_count
px/pods pods: pod_link pod namespace node_link processes cpu_usage rss
px/redis_data redis_data: time_ source destination req_cmd req_args resp latency pod namespace
px/redis_stats let_over_time: time_ server latency_p50 latency_p99 error_rate request_throughput
px/redis_stats by_command: server command request_count latency_p50 latency_p99 error_rate request_throughput
px/schemas tables: table_name columns
px/schemas columns: table_name column_name column_type pattern_type column_desc
px/service http_timeseries: time_ group latency_p50 latency_p90 latency_p99 error_rate request_throughput
    inbound_throughput outbound_throughput request_count
px/service endpoints: req_method req_path request_count latency_p50 latency_p99 error_rate request_throughput
px/service callers: requestor responder request_count latency_p50 latency_p99 error_rate
px/service_edge_stats edge_timeseries: time_ group latency_p50 latency_p90 latency_p99 error_rate
    request_throughput inbound_throughput outbound_throughput request_count
px/service_edge_stats edge_pods: requestor_pod responder_pod request_count latency_p50 latency_p99 error_rate
    request_throughput
px/service_stats let_over_time: time_ group latency_p50 latency_p90 latency_p99 error_rate request_throughput
    inbound_throughput outbound_throughput request_count
px/service_stats status_codes: status request_count
px/service_stats incoming: requestor request_count latency_p50 latency_p90 latency_p99 error_rate
    request_throughput inbound_throughput outbound_throughput
px/services service_graph: requestor_pod requestor_service requestor_ip responder_pod responder_service
    responder_ip latency_p50 latency_p90 latency_p99 error_rate request_throughput inbound_throughput
    outbound_throughput request_count
px/services service_timeseries: time_ group latency_p50 latency_p90 latency_p99 error_rate request_throughput
    inbound_throughput outbound_throughput request_count
px/services services: service_link service latency_p50 latency_p90 latency_p99 error_rate request_throughput
    inbound_throughput outbound_throughput request_count
px/slow_http_requests slow_requests: time_ service pod requestor req_method req_path resp_status latency
    service_p99 req_body resp_body
px/sql_queries query_timeseries: time_ database latency_p50 request_throughput
px/sql_queries queries: database query request_count latency_p50 latency_p99 error_rate request_throughput
"""


def expected_columns() -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for entry in EXPECTED.strip().replace("\n    ", " ").splitlines():
        head, cols = entry.split(": ", 1)
        sid, output = head.split(" ")
        out[(sid, output)] = cols.split()
    return out


SCRIPTS = bundled()


class MissingBuiltin(Exception):
    """The script failed because a builtin it names is not implemented yet."""


def _cases() -> list:
    cases = []
    for sid in SCRIPTS:
        marks = []
        if sid in MISSING_BUILTINS:
            marks.append(pytest.mark.xfail(strict=True, raises=MissingBuiltin,
                                           reason=f"needs {MISSING_BUILTINS[sid]}"))
        cases.append(pytest.param(sid, marks=marks, id=sid))
    return cases


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> LocalRunner:
    d = tmp_path_factory.mktemp("bundled") / "synthetic"
    datagen.write(d, seed=11, rows=1500)
    return LocalRunner.open(d)


def widget_columns(widget_type: str, spec: dict) -> set[str]:
    """The columns a widget reads from its table, as named by its displaySpec."""
    cols: set[str] = set()
    for key, value in spec.items():
        if key.endswith("Column") and isinstance(value, str) and value:
            cols.add(value)
    if widget_type == "TimeseriesChart":
        cols.add("time_")
        for ts in spec.get("timeseries", []):
            cols.update(v for k, v in ts.items() if k in ("value", "series") and v)
    if widget_type == "BarChart":
        bar = spec.get("bar", {})
        cols.update(v for k, v in bar.items() if k in ("value", "label", "stackBy", "groupBy") and v)
    if widget_type == "Graph":
        adj = spec.get("adjacencyList", {})
        cols.update(v for v in (adj.get("fromColumn"), adj.get("toColumn")) if v)
        cols.update(spec.get("edgeHoverInfo", []))
    return cols


def _run(runner: LocalRunner, script: Script):
    args = {v.name: REQUIRED_VALUES[v.name] for v in script.vis.variables if v.required}
    try:
        return runner.run(script, args)
    except ScriptError as e:
        missing = MISSING_BUILTINS.get(script.id)
        if missing and missing in str(e):
            raise MissingBuiltin(str(e)) from e
        raise


@pytest.mark.parametrize("sid", _cases())
def test_bundled_script_runs_and_feeds_its_widgets(runner: LocalRunner, sid: str) -> None:
    script = SCRIPTS[sid]
    assert not script.vis.empty, f"{sid}: bundled scripts run in function mode, so need vis.json funcs"
    result = _run(runner, script)
    expected = expected_columns()
    outputs = {name for name, _ in result.tables}
    assert outputs == {o for o, _ in script.vis.global_funcs} | {o for o, _ in script.vis.widget_funcs}
    for name, table in result.tables:
        assert table.column_names == expected[(sid, name)], f"{sid}: output {name}"
        _check_semantics(sid, name, table)
    for w in script.vis.widgets:
        assert w.type in PIXIE_WIDGETS, f"{sid}: widget {w.name} has type {w.type}"
        table = result.table(w.output_name)
        assert table is not None, f"{sid}: widget {w.name} reads {w.output_name}, which the script did not return"
        missing = widget_columns(w.type, w.display_spec) - set(table.column_names)
        assert not missing, f"{sid}: widget {w.name} reads missing column(s) {sorted(missing)}"
        assert table.num_rows > 0, f"{sid}: widget {w.name} got no rows from the synthetic cluster"


def _check_semantics(sid: str, name: str, table: pa.Table) -> None:
    """Columns named like a duration or a rate carry the semantic type a renderer needs."""
    for f in table.schema:
        if f.name.startswith("latency_p") and pa.types.is_integer(f.type):
            assert semantic_type(f) == "ST_DURATION_NS", f"{sid}/{name}.{f.name}"
        if f.name in ("error_rate", "cpu_usage"):
            assert semantic_type(f) == "ST_PERCENT", f"{sid}/{name}.{f.name}"


def test_every_pinned_output_belongs_to_a_bundled_script() -> None:
    assert {sid for sid, _ in expected_columns()} == set(SCRIPTS)


@pytest.mark.parametrize("sid", sorted(SCRIPTS))
def test_bundle_shape_matches_pixies(sid: str) -> None:
    d = BUNDLE_DIR / sid
    assert len(list(d.glob("*.pxl"))) == 1
    manifest = yaml.safe_load((d / "manifest.yaml").read_text())
    assert isinstance(manifest.get("short"), str) and manifest["short"].strip()
    assert isinstance(manifest.get("long"), str) and len(manifest["long"].split()) >= 8
    vis = json.loads((d / "vis.json").read_text())
    assert set(vis) <= {"variables", "globalFuncs", "widgets"}
    for v in vis["variables"]:
        assert v["type"].startswith("PX_") and v["description"]
        assert "defaultValue" not in v or isinstance(v["defaultValue"], str)
    for w in vis["widgets"]:
        assert w["displaySpec"]["@type"].startswith("types.px.dev/px.vispb.")
        assert set(w["position"]) == {"x", "y", "w", "h"} and w["position"]["x"] + w["position"]["w"] <= 12


def test_the_bundle_holds_the_scripts_this_project_ships() -> None:
    wanted = (
        "cluster", "namespaces", "namespace", "nodes", "node", "pods", "pod", "services", "service",
        "service_stats", "service_edge_stats", "http_request_stats", "slow_http_requests", "net_flow_graph",
        "inbound_conns", "outbound_conns", "mysql_data", "pgsql_data", "redis_data", "dns_data", "kafka_data",
        "cql_data", "mongodb_data", "amqp_data", "nats_data", "mysql_stats", "pgsql_stats", "redis_stats",
        "dns_flow_graph", "sql_queries", "perf_flamegraph", "agent_status", "schemas", "funcs", "http_data",
    )
    assert {f"px/{w}" for w in wanted} <= set(SCRIPTS)
    assert Path(BUNDLE_DIR / "px" / "http_data" / "http_data.pxl").exists()
