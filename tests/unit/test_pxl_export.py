"""px.export with px.otel: rows -> OTLP/HTTP protobuf, checked by a real HTTP server on 127.0.0.1
that decodes what it receives.  The tables are the hand-made test data of test_pxl_support."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from cluster.pxl import PxlCompileError, compile_pxl
from cluster.pxl.exec.export import PxlExportError
from cluster.pxl.planner import execute_distributed
from tests.unit.test_pxl_support import (
    DEFAULT_ROWS,
    NOW,
    SCHEMAS,
    SEC,
    FakeMetadata,
    FakeTables,
    http_events,
    run,
    small_table,
)


class Collector:
    """An OTLP/HTTP receiver: records (path, headers, body) and answers ``status`` after ``delay_s``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Message, bytes]] = []
        self.status = 200
        self.delay_s = 0.0
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.requests.append((self.path, self.headers, body))
                time.sleep(collector.delay_s)
                self.send_response(collector.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def body(self, path: str) -> bytes:
        found = [b for p, _, b in self.requests if p == path]
        assert len(found) == 1, [p for p, _, _ in self.requests]
        return found[0]


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


def script(url: str, timeout: float = 5) -> str:
    return f"""import px
df = px.DataFrame('small')
df.end = df.time_ + 5
px.export(df, px.otel.Data(
    resource={{'service.name': df.svc, 'env': 'test'}},
    data=[
        px.otel.metric.Gauge(name='n.value', value=df.n, description='n', attributes={{'ok': df.ok}}, unit='1'),
        px.otel.metric.Summary(name='x.summary', count=df.bytes, sum=df.x,
                               quantile_values={{0.5: df.x, 0.99: df.dur}}),
        px.otel.trace.Span(name=df.svc, start_time=df.time_, end_time=df.end,
                           trace_id=df.doc, kind=px.otel.trace.SPAN_KIND_CLIENT,
                           attributes={{'n': df.n}}),
    ],
    endpoint=px.otel.Endpoint('{url}', headers={{'x-api-key': 'k1'}}, insecure=True, timeout={timeout}),
))
px.display(df[['svc', 'n']], 'kept')
"""


def _t(offset_s: int) -> int:
    return NOW - 100 * SEC + offset_s * SEC


def test_metrics_and_spans_arrive_decoded(collector: Collector) -> None:
    out = run(script(collector.url))
    assert list(out) == ["kept"]  # the export makes no table; the display still does
    assert out["kept"].num_rows == len(DEFAULT_ROWS)

    metrics = ExportMetricsServiceRequest.FromString(collector.body("/v1/metrics"))
    by_service = {}
    for rm in metrics.resource_metrics:
        attrs = {kv.key: kv.value.string_value for kv in rm.resource.attributes}
        assert attrs["env"] == "test"
        by_service[attrs["service.name"]] = rm.scope_metrics[0].metrics
    assert sorted(by_service) == ["a", "b", "c"]
    gauge, summary = by_service["a"]
    assert (gauge.name, gauge.description, gauge.unit) == ("n.value", "n", "1")
    # svc 'a' rows: (t=0, n=1, ok=True) and (t=2, n=3, ok=True)
    assert [(p.time_unix_nano, p.as_int) for p in gauge.gauge.data_points] == [(_t(0), 1), (_t(2), 3)]
    assert gauge.gauge.data_points[0].attributes[0].key == "ok"
    assert gauge.gauge.data_points[0].attributes[0].value.bool_value is True
    b_points = by_service["b"][1].summary.data_points  # svc 'b': bytes 200/500, x -2.25/10.0, dur 20/50
    assert [(p.count, p.sum) for p in b_points] == [(200, -2.25), (500, 10.0)]
    assert [(q.quantile, q.value) for q in b_points[1].quantile_values] == [(0.5, 10.0), (0.99, 50.0)]
    assert summary.name == "x.summary"

    traces = ExportTraceServiceRequest.FromString(collector.body("/v1/traces"))
    spans = [s for rs in traces.resource_spans for s in rs.scope_spans[0].spans]
    assert len(spans) == len(DEFAULT_ROWS)
    first = next(s for s in spans if s.start_time_unix_nano == _t(0))
    assert (first.name, first.kind, first.end_time_unix_nano) == ("a", 3, _t(0) + 5)
    assert len(first.trace_id) == 16 and len(first.span_id) == 8  # doc is not hex: fresh random ids
    assert first.attributes[0].value.int_value == 1

    headers = {p: h for p, h, _ in collector.requests}
    assert headers["/v1/metrics"]["x-api-key"] == "k1"
    assert headers["/v1/metrics"]["Content-Type"] == "application/x-protobuf"


def test_hex_trace_ids_are_kept(collector: Collector) -> None:
    src = f"""import px
df = px.DataFrame('small')
df.tid = '{'a1' * 16}'
px.export(df, px.otel.Data(resource={{'service.name': 'x'}},
    data=[px.otel.trace.Span(name='op', start_time=df.time_, end_time=df.time_, trace_id=df.tid)],
    endpoint=px.otel.Endpoint('{collector.url}', insecure=True)))
"""
    assert run(src) == {}
    traces = ExportTraceServiceRequest.FromString(collector.body("/v1/traces"))
    assert {s.trace_id for s in traces.resource_spans[0].scope_spans[0].spans} == {bytes.fromhex("a1" * 16)}
    assert [p for p, _, _ in collector.requests] == ["/v1/traces"]  # spans only: no metrics request


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_unreachable_endpoint_is_a_runtime_error_that_keeps_outputs() -> None:
    url = _closed_port_url()
    with pytest.raises(PxlExportError) as info:
        run(script(url))
    assert f"export to {url}/v1/metrics failed" in str(info.value)
    assert str(info.value).startswith("px.export: ")
    outputs = dict(info.value.outputs)
    assert outputs["kept"].num_rows == len(DEFAULT_ROWS)


def test_http_error_and_timeout_are_reported(collector: Collector) -> None:
    collector.status = 503
    with pytest.raises(PxlExportError, match="HTTP 503"):
        run(script(collector.url))
    collector.status, collector.delay_s = 200, 1.0
    t0 = time.perf_counter()
    with pytest.raises(PxlExportError, match="timed out"):
        run(script(collector.url, timeout=0.2))
    assert time.perf_counter() - t0 < 1.0


def test_distributed_plan_exports_on_kelvin(collector: Collector) -> None:
    q = compile_pxl(script(collector.url), now_ns=NOW, schemas=SCHEMAS)
    rows = small_table(DEFAULT_ROWS)
    agents = [(FakeTables({"small": rows.slice(0, 2), "http_events": http_events()}), FakeMetadata()),
              (FakeTables({"small": rows.slice(2), "http_events": http_events()}), FakeMetadata())]
    out = dict(execute_distributed(q, agents))
    assert list(out) == ["kept"]
    spans = ExportTraceServiceRequest.FromString(collector.body("/v1/traces"))
    assert sum(len(rs.scope_spans[0].spans) for rs in spans.resource_spans) == len(DEFAULT_ROWS)


@pytest.mark.parametrize(("data", "message"), [
    ("[px.otel.metric.Gauge(name='g', value=df.missing)]", "Column 'missing' not found"),
    ("[px.otel.metric.Gauge(name='g', value=df.n * 2)]", "assign the expression to a column first"),
    ("[px.otel.metric.Gauge(name='g', value=df.svc)]", "Gauge value must be a INT64/FLOAT64"),
    ("[1]", "data items must be px.otel.metric.Gauge/Summary or px.otel.trace.Span"),
    ("[px.otel.trace.Span(name='s', start_time=df.time_, end_time=df.time_, kind=9)]", "Span kind 9"),
])
def test_bad_specs_are_compile_errors(data: str, message: str) -> None:
    src = (f"import px\ndf = px.DataFrame('small')\npx.export(df, px.otel.Data(resource={{}}, data={data}, "
           f"endpoint=px.otel.Endpoint('http://127.0.0.1:1')))\n")
    with pytest.raises(PxlCompileError, match=message):
        run(src)


def test_metrics_need_time_column() -> None:
    src = ("import px\ndf = px.DataFrame('small')\ndf = df.groupby('svc').agg(n=('n', px.sum))\n"
           "px.export(df, px.otel.Data(resource={}, data=[px.otel.metric.Gauge(name='g', value=df.n)], "
           "endpoint=px.otel.Endpoint('http://127.0.0.1:1')))\n")
    with pytest.raises(PxlCompileError, match="metrics need a TIME64NS time_ column"):
        run(src)


def test_endpoint_without_scheme_uses_insecure_flag() -> None:
    from cluster.pxl.exec.export import base_url
    from cluster.pxl.funcs.otel_spec import Endpoint

    assert base_url(Endpoint("collector:4318", insecure=True)) == "http://collector:4318"
    assert base_url(Endpoint("collector:4318/")) == "https://collector:4318"
    assert base_url(Endpoint("http://c:1")) == "http://c:1"
