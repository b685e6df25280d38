"""Arrow schemas of the PEM's tables, named and typed exactly as Pixie's tables are.

Pixie's DataType maps onto Arrow as: BOOLEAN -> bool, INT64 -> int64, FLOAT64 -> float64,
STRING -> utf8, TIME64NS -> timestamp[ns] (UTC), UINT128 -> fixed_size_binary(16) (high word
first, big-endian, so that byte order equals numeric order).  The semantic type travels with each
field as Arrow field metadata (``semantic_type``), which survives IPC, so the client can format a
duration or a byte count without knowing which table it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

SEMANTIC_KEY = b"semantic_type"
DESC_KEY = b"desc"

TIME64NS = pa.timestamp("ns", tz="UTC")
UINT128 = pa.binary(16)

# Pixie's DataType names, used by px.GetSchemas() and error messages.
_PX_TYPE_NAMES: dict[pa.DataType, str] = {
    pa.bool_(): "BOOLEAN",
    pa.int64(): "INT64",
    pa.float64(): "FLOAT64",
    pa.string(): "STRING",
    TIME64NS: "TIME64NS",
    UINT128: "UINT128",
}


def px_type_name(t: pa.DataType) -> str:
    """Pixie's name for an Arrow type, so messages speak the language of PxL users."""
    if pa.types.is_timestamp(t):
        return "TIME64NS"
    if pa.types.is_dictionary(t):
        return px_type_name(t.value_type)
    if pa.types.is_large_string(t):
        return "STRING"
    return _PX_TYPE_NAMES.get(t, str(t).upper())


def col(name: str, typ: pa.DataType, semantic: str = "ST_NONE", desc: str = "") -> pa.Field:
    meta = {SEMANTIC_KEY: semantic.encode()}
    if desc:
        meta[DESC_KEY] = desc.encode()
    return pa.field(name, typ, nullable=False, metadata=meta)


def semantic_type(field: pa.Field) -> str:
    if field.metadata and SEMANTIC_KEY in field.metadata:
        return field.metadata[SEMANTIC_KEY].decode()
    return "ST_NONE"


def with_semantic(field: pa.Field, semantic: str) -> pa.Field:
    meta = dict(field.metadata or {})
    meta[SEMANTIC_KEY] = semantic.encode()
    return field.with_metadata(meta)


# trace_role values (schemas.md §4.1)
ROLE_CLIENT = 1
ROLE_SERVER = 2
ROLE_UNKNOWN = 4

# conn_stats.protocol values (schemas.md §4.3)
PROTOCOL_UNKNOWN = 0
PROTOCOL_HTTP = 1
PROTOCOL_HTTP2 = 2

# conn_stats.addr_family values
FAMILY_UNSPECIFIED = 0
FAMILY_IPV4 = 1
FAMILY_IPV6 = 2

# http_events.content_type values
CONTENT_UNKNOWN = 0
CONTENT_JSON = 1
CONTENT_GRPC = 2


def _conn_prefix(with_local: bool = True, encrypted: bool = True) -> list[pa.Field]:
    fields = [
        col("time_", TIME64NS, "ST_NONE", "Record timestamp in wall-clock ns since epoch"),
        col("upid", UINT128, "ST_UPID", "Unique process ID (asid, pid, start time)"),
        col("remote_addr", pa.string(), "ST_IP_ADDRESS", "IP of the peer endpoint"),
        col("remote_port", pa.int64(), "ST_PORT", "Port of the peer endpoint"),
    ]
    if with_local:
        fields += [
            col("local_addr", pa.string(), "ST_IP_ADDRESS", "IP of the local endpoint"),
            col("local_port", pa.int64(), "ST_PORT", "Port of the local endpoint"),
        ]
    fields.append(col("trace_role", pa.int64(), "ST_NONE", "1 = client side, 2 = server side, 4 = unknown"))
    if encrypted:
        fields.append(col("encrypted", pa.bool_(), "ST_NONE", "Captured from a TLS library"))
    return fields


HTTP_EVENTS = pa.schema(
    [
        *_conn_prefix(),
        col("major_version", pa.int64(), "ST_NONE", "HTTP major version"),
        col("minor_version", pa.int64(), "ST_NONE", "HTTP minor version"),
        col("content_type", pa.int64(), "ST_NONE", "0 unknown, 1 JSON, 2 gRPC"),
        col("req_headers", pa.string(), "ST_NONE", "Request headers as a JSON object"),
        col("req_method", pa.string(), "ST_HTTP_REQ_METHOD", "Request method"),
        col("req_path", pa.string(), "ST_NONE", "Request path with query string"),
        col("req_body", pa.string(), "ST_NONE", "Request body, truncated to the body cap"),
        col("req_body_size", pa.int64(), "ST_BYTES", "Request body size before truncation"),
        col("resp_headers", pa.string(), "ST_NONE", "Response headers as a JSON object"),
        col("resp_status", pa.int64(), "ST_HTTP_RESP_STATUS", "HTTP status code"),
        col("resp_message", pa.string(), "ST_HTTP_RESP_MESSAGE", "Status reason text"),
        col("resp_body", pa.string(), "ST_NONE", "Response body, truncated; gzip decoded"),
        col("resp_body_size", pa.int64(), "ST_BYTES", "Response body size before truncation"),
        col("latency", pa.int64(), "ST_DURATION_NS", "Response time minus request time, ns"),
    ]
)

CONN_STATS = pa.schema(
    [
        *_conn_prefix(with_local=False, encrypted=False),
        col("addr_family", pa.int64(), "ST_NONE", "0 unspecified, 1 IPv4, 2 IPv6, 3 Unix, 4 other"),
        col("protocol", pa.int64(), "ST_NONE", "Detected L7 protocol code"),
        col("ssl", pa.bool_(), "ST_NONE", "TLS seen on the connection"),
        col("conn_open", pa.int64(), "ST_NONE", "Connections opened (cumulative)"),
        col("conn_close", pa.int64(), "ST_NONE", "Connections closed (cumulative)"),
        col("conn_active", pa.int64(), "ST_NONE", "Connections open now"),
        col("bytes_sent", pa.int64(), "ST_BYTES", "Bytes sent (cumulative)"),
        col("bytes_recv", pa.int64(), "ST_BYTES", "Bytes received (cumulative)"),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: pa.Schema
    desc: str


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("http_events", HTTP_EVENTS, "HTTP request/response pairs, one row per pair"),
        TableSpec("conn_stats", CONN_STATS, "Per-connection-group counters, emitted periodically"),
    )
}


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
