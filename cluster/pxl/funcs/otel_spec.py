"""The shape of a px.export(df, px.otel.Data(...)) sink, shared by the compiler (which builds it)
and cluster.pxl.exec.export (which turns the DataFrame's rows into OTLP and sends them).

A field is either a column of the exported DataFrame or a constant, because Pixie's OTel builders
take "a column or a literal" for every per-row value.
"""

from __future__ import annotations

from dataclasses import dataclass

#: OTLP Span.SpanKind numbers, exposed as px.otel.trace.SPAN_KIND_*.
SPAN_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
              "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}


@dataclass(frozen=True)
class Field:
    """A per-row value: the column ``column``, or the constant ``value`` when column is None."""

    column: str | None
    value: object = None


Attributes = tuple[tuple[str, Field], ...]


@dataclass(frozen=True)
class Gauge:
    name: str
    value: Field
    description: str = ""
    attributes: Attributes = ()
    unit: str = ""


@dataclass(frozen=True)
class Summary:
    name: str
    count: Field
    sum: Field
    quantile_values: tuple[tuple[float, Field], ...]
    description: str = ""
    attributes: Attributes = ()
    unit: str = ""


@dataclass(frozen=True)
class Span:
    name: Field
    start_time: Field
    end_time: Field
    trace_id: Field | None = None
    span_id: Field | None = None
    parent_span_id: Field | None = None
    attributes: Attributes = ()
    kind: int = SPAN_KINDS["SPAN_KIND_SERVER"]


@dataclass(frozen=True)
class Endpoint:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    insecure: bool = False
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ExportSpec:
    """One px.otel.Data: rows are grouped by their resource attribute values into OTLP resources."""

    resource: Attributes
    data: tuple[Gauge | Summary | Span, ...]
    endpoint: Endpoint

    @property
    def has_metrics(self) -> bool:
        return any(not isinstance(d, Span) for d in self.data)

    @property
    def has_spans(self) -> bool:
        return any(isinstance(d, Span) for d in self.data)
