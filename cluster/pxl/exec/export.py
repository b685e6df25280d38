"""Runs px.export sinks: a DataFrame's rows -> OTLP protobuf -> POST <url>/v1/metrics, /v1/traces.

OTLP/HTTP with a protobuf body (the collector's default HTTP receiver).  Metrics need the frame's
TIME64NS ``time_`` column for their data points' timestamps.  Rows are grouped by the values of the
resource attributes, one ResourceMetrics / ResourceSpans per distinct combination.

Exports run after every result table has been computed, and a failed export raises
:class:`PxlExportError` naming the endpoint and carrying those tables in ``outputs``, so a caller can
still return what was computed.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

import pyarrow as pa
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from cluster.pxl import ir
from cluster.pxl.errors import PxlRuntimeError
from cluster.pxl.funcs.otel_spec import Attributes, Endpoint, ExportSpec, Field, Gauge, Span, Summary

Outputs = list[tuple[str, pa.Table]]
Row = dict[str, object]


class PxlExportError(PxlRuntimeError):
    """An export that failed; ``outputs`` holds the script's result tables, all computed."""

    def __init__(self, endpoint: str, message: str, outputs: Outputs) -> None:
        super().__init__("px.export", f"export to {endpoint} failed: {message}")
        self.endpoint = endpoint
        self.outputs = outputs


def run_sinks(sinks: Sequence[ir.Sink], table_of: Callable[[ir.PlanNode], pa.Table]) -> Outputs:
    """Result tables in order; then every export sink's rows are sent (see the module docstring)."""
    outputs = [(s.name, table_of(s.node)) for s in sinks if s.export is None]
    for s in sinks:
        if s.export is not None:
            spec: ExportSpec = s.export  # type: ignore[assignment]
            try:
                export_table(spec, table_of(s.node))
            except ExportFailure as e:
                raise PxlExportError(e.url, str(e), outputs) from None
    return outputs


class ExportFailure(Exception):
    def __init__(self, url: str, message: str) -> None:
        super().__init__(message)
        self.url = url


# ---- rows -> OTLP ------------------------------------------------------------------------------


def _value(f: Field, row: Row) -> object:
    return row[f.column] if f.column is not None else f.value


def _any_value(v: object) -> AnyValue:
    if isinstance(v, bool):
        return AnyValue(bool_value=v)
    if isinstance(v, int):
        return AnyValue(int_value=v)
    if isinstance(v, float):
        return AnyValue(double_value=v)
    if isinstance(v, bytes):
        return AnyValue(bytes_value=v)
    return AnyValue(string_value=str(v))


def _attributes(attrs: Attributes, row: Row) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any_value(_value(f, row))) for k, f in attrs]


def _ns(v: object) -> int:
    return int(v)  # type: ignore[call-overload]


def _id(v: object | None, size: int) -> bytes:
    """Hex text (or raw bytes) of the right length, else a fresh random id, as Pixie does."""
    if isinstance(v, bytes) and len(v) == size:
        return v
    if isinstance(v, str):
        try:
            b = bytes.fromhex(v)
            if len(b) == size:
                return b
        except ValueError:
            pass
    return os.urandom(size)


def _by_resource(spec: ExportSpec, rows: list[Row]) -> dict[tuple, list[Row]]:
    groups: dict[tuple, list[Row]] = {}
    for row in rows:
        key = tuple(repr(_value(f, row)) for _, f in spec.resource)
        groups.setdefault(key, []).append(row)
    return groups


def metrics_request(spec: ExportSpec, rows: list[Row]) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    for group in _by_resource(spec, rows).values():
        rm = req.resource_metrics.add()
        rm.resource.attributes.extend(_attributes(spec.resource, group[0]))
        sm = rm.scope_metrics.add()
        sm.scope.name = "pxtui"
        for d in spec.data:
            if isinstance(d, Span):
                continue
            m = sm.metrics.add(name=d.name, description=d.description, unit=d.unit)
            for row in group:
                t = _ns(row["time_"])
                if isinstance(d, Gauge):
                    p = m.gauge.data_points.add(time_unix_nano=t)
                    v = _value(d.value, row)
                    if isinstance(v, float):
                        p.as_double = v
                    else:
                        p.as_int = int(v)  # type: ignore[call-overload]
                else:
                    assert isinstance(d, Summary)
                    p2 = m.summary.data_points.add(time_unix_nano=t, count=int(_value(d.count, row)),  # type: ignore[call-overload]
                                                   sum=float(_value(d.sum, row)))  # type: ignore[arg-type]
                    for q, f in d.quantile_values:
                        p2.quantile_values.add(quantile=q, value=float(_value(f, row)))  # type: ignore[arg-type]
                    p2.attributes.extend(_attributes(d.attributes, row))
                    continue
                p.attributes.extend(_attributes(d.attributes, row))
    return req


def traces_request(spec: ExportSpec, rows: list[Row]) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    for group in _by_resource(spec, rows).values():
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(_attributes(spec.resource, group[0]))
        ss = rs.scope_spans.add()
        ss.scope.name = "pxtui"
        for d in spec.data:
            if not isinstance(d, Span):
                continue
            for row in group:
                s = ss.spans.add(name=str(_value(d.name, row)), kind=d.kind,  # type: ignore[arg-type]
                                 start_time_unix_nano=_ns(_value(d.start_time, row)),
                                 end_time_unix_nano=_ns(_value(d.end_time, row)))
                s.trace_id = _id(_value(d.trace_id, row) if d.trace_id else None, 16)
                s.span_id = _id(_value(d.span_id, row) if d.span_id else None, 8)
                if d.parent_span_id is not None:
                    s.parent_span_id = _id(_value(d.parent_span_id, row), 8)
                s.attributes.extend(_attributes(d.attributes, row))
    return req


# ---- sending -----------------------------------------------------------------------------------


def base_url(endpoint: Endpoint) -> str:
    """The endpoint's URL with a scheme: as given, else http:// when insecure and https:// if not."""
    url = endpoint.url.rstrip("/")
    if "://" in url:
        return url
    return ("http://" if endpoint.insecure else "https://") + url


def post(endpoint: Endpoint, path: str, body: bytes) -> None:
    url = base_url(endpoint) + path
    headers = {"Content-Type": "application/x-protobuf", **dict(endpoint.headers)}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=endpoint.timeout_s) as resp:
            resp.read()
    except urllib.error.HTTPError as e:
        raise ExportFailure(url, f"HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ExportFailure(url, f"{type(reason).__name__}: {reason}") from None


def export_table(spec: ExportSpec, table: pa.Table) -> None:
    """Send ``table``'s rows per ``spec``; nothing is sent for an empty table."""
    if table.num_rows == 0:
        return
    times = [i for i, f in enumerate(table.schema) if pa.types.is_timestamp(f.type)]
    for i in times:  # exact nanoseconds, not datetimes
        table = table.set_column(i, table.schema.field(i).name, table.column(i).cast(pa.int64()))
    rows = table.to_pylist()
    if spec.has_metrics:
        post(spec.endpoint, "/v1/metrics", metrics_request(spec, rows).SerializeToString())
    if spec.has_spans:
        post(spec.endpoint, "/v1/traces", traces_request(spec, rows).SerializeToString())
