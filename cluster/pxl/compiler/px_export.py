"""px.export and the px.otel builders (pxl_surface.md §8).

``px.export(df, px.otel.Data(resource={...}, data=[...], endpoint=px.otel.Endpoint(url, ...)))``
becomes a sink carrying a cluster.pxl.funcs.otel_spec.ExportSpec; cluster.pxl.exec.export sends the
rows as OTLP/HTTP.  Per-row fields take a DataFrame column (``df.col``) or a literal; a computed
expression must be assigned to a column first, because the sink reads columns, not expressions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cluster.pxl import ir
from cluster.pxl.compiler.dataframe import DataFrame
from cluster.pxl.compiler.objects import (
    Args,
    Builtin,
    DictValue,
    ExprValue,
    Kwargs,
    ListValue,
    Module,
    NoneValue,
    PxlObject,
    error,
    literal,
)
from cluster.pxl.funcs import otel_spec as spec
from cluster.pxl.types import BOOLEAN, FLOAT64, INT64, STRING, TIME64NS

if TYPE_CHECKING:
    from cluster.pxl.compiler.evaluator import Evaluator

#: (column name, its data type, what it is used for) that the exported frame must have
Needs = tuple[tuple[str, str, str], ...]
_NUMBER = (INT64, FLOAT64)
_TIME = (TIME64NS, INT64)
_ANY = (BOOLEAN, INT64, FLOAT64, STRING, TIME64NS)


@dataclass(eq=False)
class OTelObject(PxlObject):
    """A built px.otel value: the spec piece and the columns it reads."""

    kind: str
    value: object
    needs: Needs = field(default_factory=tuple)

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"px.otel.{self.kind}"


def _bind(name: str, params: list[str], args: Args, kwargs: Kwargs, node: ast.AST,
          required: int) -> dict[str, PxlObject]:
    if len(args) > len(params):
        raise error(node, f"{name}() takes at most {len(params)} positional arguments, got {len(args)}")
    bound: dict[str, PxlObject] = dict(zip(params, args, strict=False))
    for k, v in kwargs.items():
        if k not in params:
            raise error(node, f"{name}() got an unexpected keyword argument '{k}'")
        if k in bound:
            raise error(node, f"{name}() got multiple values for argument '{k}'")
        bound[k] = v
    for p in params[:required]:
        if p not in bound:
            raise error(node, f"{name}() missing required argument '{p}'")
    return bound


def _const(obj: PxlObject | None, what: str, node: ast.AST, py: type, default: object) -> object:
    if obj is None or isinstance(obj, NoneValue):
        return default
    if isinstance(obj, ExprValue) and obj.is_literal and isinstance(obj.value, py) and not (
            isinstance(obj.value, bool) and py is not bool):
        return obj.value
    raise error(node, f"{what} must be a {py.__name__} literal, got {obj.describe()}")


def _field(obj: PxlObject, what: str, types: tuple[str, ...], node: ast.AST) -> tuple[spec.Field, Needs]:
    if isinstance(obj, ExprValue) and obj.expr.dtype in types:
        if obj.is_literal:
            return spec.Field(None, obj.value), ()
        if isinstance(obj.expr, ir.ColumnRef):
            return spec.Field(obj.expr.name), ((obj.expr.name, obj.expr.dtype, what),)
        raise error(node, f"{what} must be a DataFrame column or a literal; assign the expression to a "
                          f"column first (df.x = ...) and pass df.x")
    raise error(node, f"{what} must be a {'/'.join(types)} column or literal, got {obj.describe()}")


def _attributes(obj: PxlObject | None, what: str, node: ast.AST) -> tuple[spec.Attributes, Needs]:
    if obj is None or isinstance(obj, NoneValue):
        return (), ()
    if not isinstance(obj, DictValue):
        raise error(node, f"{what} must be a dict of name -> column or literal, got {obj.describe()}")
    attrs, needs = [], []
    for k, v in zip(obj.keys, obj.values, strict=True):
        key = _const(k, f"{what} keys", node, str, None)
        f, n = _field(v, f"{what}['{key}']", _ANY, node)
        attrs.append((str(key), f))
        needs += n
    return tuple(attrs), tuple(needs)


def _gauge(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.otel.metric.Gauge", ["name", "value", "description", "attributes", "unit"], args, kwargs,
              node, 2)
    value, n1 = _field(b["value"], "Gauge value", _NUMBER, node)
    attrs, n2 = _attributes(b.get("attributes"), "Gauge attributes", node)
    g = spec.Gauge(str(_const(b["name"], "Gauge name", node, str, "")), value,
                   str(_const(b.get("description"), "Gauge description", node, str, "")), attrs,
                   str(_const(b.get("unit"), "Gauge unit", node, str, "")))
    return OTelObject("metric.Gauge", g, n1 + n2)


def _summary(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.otel.metric.Summary", ["name", "count", "sum", "quantile_values", "description",
                                         "attributes", "unit"], args, kwargs, node, 4)
    count, n1 = _field(b["count"], "Summary count", (INT64,), node)
    total, n2 = _field(b["sum"], "Summary sum", _NUMBER, node)
    qv = b["quantile_values"]
    if not isinstance(qv, DictValue) or not qv.keys:
        raise error(node, f"Summary quantile_values must be a non-empty dict of quantile (0..1 float) -> "
                          f"column, got {qv.describe()}")
    quantiles, needs = [], n1 + n2
    for k, v in zip(qv.keys, qv.values, strict=True):
        q = _const(k, "Summary quantile_values keys", node, float, None)
        if not 0.0 <= q <= 1.0:  # type: ignore[operator]
            raise error(node, f"Summary quantile {q} is outside 0..1")
        f, n = _field(v, f"Summary quantile {q}", _NUMBER, node)
        quantiles.append((float(q), f))  # type: ignore[arg-type]
        needs += n
    attrs, n3 = _attributes(b.get("attributes"), "Summary attributes", node)
    s = spec.Summary(str(_const(b["name"], "Summary name", node, str, "")), count, total, tuple(quantiles),
                     str(_const(b.get("description"), "Summary description", node, str, "")), attrs,
                     str(_const(b.get("unit"), "Summary unit", node, str, "")))
    return OTelObject("metric.Summary", s, needs + n3)


def _span(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.otel.trace.Span", ["name", "start_time", "end_time", "trace_id", "span_id",
                                     "parent_span_id", "attributes", "kind"], args, kwargs, node, 3)
    name, needs = _field(b["name"], "Span name", (STRING,), node)
    start, n = _field(b["start_time"], "Span start_time", _TIME, node)
    needs += n
    end, n = _field(b["end_time"], "Span end_time", _TIME, node)
    needs += n
    ids: dict[str, spec.Field | None] = {}
    for key in ("trace_id", "span_id", "parent_span_id"):
        obj = b.get(key)
        if obj is None or isinstance(obj, NoneValue):
            ids[key] = None
            continue
        ids[key], n = _field(obj, f"Span {key}", (STRING,), node)
        needs += n
    attrs, n = _attributes(b.get("attributes"), "Span attributes", node)
    kind = _const(b.get("kind"), "Span kind (a px.otel.trace.SPAN_KIND_* constant)", node, int,
                  spec.SPAN_KINDS["SPAN_KIND_SERVER"])
    if kind not in spec.SPAN_KINDS.values():
        raise error(node, f"Span kind {kind} is not one of px.otel.trace.SPAN_KIND_*")
    s = spec.Span(name, start, end, ids["trace_id"], ids["span_id"], ids["parent_span_id"], attrs,
                  int(kind))  # type: ignore[call-overload]
    return OTelObject("trace.Span", s, needs + n)


def _endpoint(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.otel.Endpoint", ["url", "headers", "insecure", "timeout"], args, kwargs, node, 1)
    url = str(_const(b["url"], "Endpoint url", node, str, ""))
    if not url:
        raise error(node, "px.otel.Endpoint url must not be empty")
    headers: list[tuple[str, str]] = []
    h = b.get("headers")
    if h is not None and not isinstance(h, NoneValue):
        if not isinstance(h, DictValue):
            raise error(node, f"Endpoint headers must be a dict of string literals, got {h.describe()}")
        for k, v in zip(h.keys, h.values, strict=True):
            headers.append((str(_const(k, "Endpoint header names", node, str, "")),
                            str(_const(v, "Endpoint header values", node, str, ""))))
    timeout = b.get("timeout")
    seconds = 5.0
    if timeout is not None:
        if not (isinstance(timeout, ExprValue) and timeout.is_literal and isinstance(timeout.value, int | float)
                and not isinstance(timeout.value, bool) and timeout.value > 0):
            raise error(node, f"Endpoint timeout must be a positive number of seconds, got {timeout.describe()}")
        seconds = float(timeout.value)
    insecure = bool(_const(b.get("insecure"), "Endpoint insecure", node, bool, False))
    return OTelObject("Endpoint", spec.Endpoint(url, tuple(headers), insecure, seconds))


def _data(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.otel.Data", ["resource", "data", "endpoint"], args, kwargs, node, 2)
    resource, needs = _attributes(b["resource"], "px.otel.Data resource", node)
    items = b["data"]
    if not isinstance(items, ListValue) or not items.items:
        raise error(node, f"px.otel.Data data must be a non-empty list of px.otel.metric.Gauge/Summary or "
                          f"px.otel.trace.Span, got {items.describe()}")
    data = []
    for it in items.items:
        if not isinstance(it, OTelObject) or it.kind not in ("metric.Gauge", "metric.Summary", "trace.Span"):
            raise error(node, f"px.otel.Data data items must be px.otel.metric.Gauge/Summary or "
                              f"px.otel.trace.Span, got {it.describe()}")
        data.append(it.value)
        needs += it.needs
    ep = b.get("endpoint")
    if ep is None or isinstance(ep, NoneValue):
        raise error(node, "px.otel.Data needs endpoint=px.otel.Endpoint(url, ...): pxtui has no default "
                          "OpenTelemetry collector configured")
    if not isinstance(ep, OTelObject) or ep.kind != "Endpoint":
        raise error(node, f"px.otel.Data endpoint must be a px.otel.Endpoint, got {ep.describe()}")
    export = spec.ExportSpec(resource, tuple(data), ep.value)  # type: ignore[arg-type]
    if export.has_metrics:
        needs += (("time_", TIME64NS, "metric timestamps (metrics need a TIME64NS time_ column)"),)
    return OTelObject("Data", export, needs)


def _export(ev: Evaluator, args: Args, kwargs: Kwargs, node: ast.AST) -> PxlObject:
    b = _bind("px.export", ["out", "export_spec"], args, kwargs, node, 2)
    df, data = b["out"], b["export_spec"]
    if not isinstance(df, DataFrame):
        raise error(node, f"px.export needs a DataFrame, got {df.describe()}")
    if not isinstance(data, OTelObject) or data.kind != "Data":
        raise error(node, f"px.export needs a px.otel.Data(...) spec, got {data.describe()}")
    for name, dtype, what in data.needs:
        col = df.node.column(name)
        if col is None:
            raise error(node, f"px.export: {what} reads column '{name}', which the exported DataFrame "
                              f"does not have; available columns: {', '.join(c.name for c in df.node.relation)}")
        if col.dtype != dtype:
            raise error(node, f"px.export: {what} needs column '{name}' to be {dtype}, it is {col.dtype}")
    ev.add_export(df, data.value)
    return NoneValue()


def otel_members() -> dict[str, PxlObject]:
    """px.export and the px.otel module tree."""
    trace = Module("px.otel.trace", {"Span": Builtin("px.otel.trace.Span", _span),
                                     **{k: literal(v, INT64) for k, v in spec.SPAN_KINDS.items()}})
    metric = Module("px.otel.metric", {"Gauge": Builtin("px.otel.metric.Gauge", _gauge),
                                       "Summary": Builtin("px.otel.metric.Summary", _summary)})
    otel = Module("px.otel", {"Data": Builtin("px.otel.Data", _data),
                              "Endpoint": Builtin("px.otel.Endpoint", _endpoint),
                              "metric": metric, "trace": trace})
    return {"export": Builtin("px.export", _export), "otel": otel}
