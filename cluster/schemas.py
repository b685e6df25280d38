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


def _req_resp(*fields: pa.Field, with_latency: bool = True, encrypted: bool = True) -> pa.Schema:
    """A protocol table: the shared connection prefix, the protocol's own columns, then latency."""
    tail = [col("latency", pa.int64(), "ST_DURATION_NS", "Response time minus request time, ns")]
    return pa.schema([*_conn_prefix(encrypted=encrypted), *fields, *(tail if with_latency else [])])


def _s(name: str, desc: str, semantic: str = "ST_NONE") -> pa.Field:
    return col(name, pa.string(), semantic, desc)


def _i(name: str, desc: str, semantic: str = "ST_NONE") -> pa.Field:
    return col(name, pa.int64(), semantic, desc)


_TIME = col("time_", TIME64NS, "ST_NONE", "Record timestamp in wall-clock ns since epoch")
_UPID = col("upid", UINT128, "ST_UPID", "Unique process ID (asid, pid, start time)")

MYSQL_EVENTS = _req_resp(
    _i("req_cmd", "MySQL command byte (3 Query, 22 StmtPrepare, 23 StmtExecute)"),
    _s("req_body", "Request text, e.g. the SQL of a Query"),
    _i("resp_status", "0 unknown, 1 none, 2 OK, 3 error"),
    _s("resp_body", "Response summary or message"),
)
PGSQL_EVENTS = _req_resp(
    _s("req_cmd", "Request message type as text (Query, Parse, Bind, Execute, ...)"),
    _s("req", "Request payload text (e.g. SQL)"),
    _s("resp", "Response payload text"),
)
CQL_EVENTS = _req_resp(
    _i("req_op", "CQL request opcode"),
    _s("req_body", "Request contents"),
    _i("resp_op", "CQL response opcode (0 = ERROR)"),
    _s("resp_body", "Response contents"),
)
DNS_EVENTS = _req_resp(
    _s("req_header", "DNS request header as JSON"),
    _s("req_body", 'JSON {"queries": [{"name", "type"}]}'),
    _s("resp_header", "DNS response header as JSON"),
    _s("resp_body", 'JSON {"answers": [{"name", "type", "addr" or "cname"}]}'),
)
REDIS_EVENTS = _req_resp(
    _s("req_cmd", "Redis command name (GET, SET, ACL LOAD, PUSH PUB)"),
    _s("req_args", "Command arguments as JSON"),
    _s("resp", "Response value as text"),
)
KAFKA_EVENTS = _req_resp(
    _i("req_cmd", "Kafka API key (0 Produce, 1 Fetch, ...)"),
    _s("client_id", "Client id from the request header"),
    _s("req_body", "Decoded request as JSON"),
    _s("resp", "Decoded response as JSON"),
)
NATS_EVENTS = _req_resp(
    _s("cmd", "NATS verb (PUB, SUB, MSG, CONNECT, INFO, PING)"),
    _s("body", "Verb options as a JSON object"),
    _s("resp", "Reply verb: OK or ERR (may be empty)"),
    with_latency=False,
)
MONGODB_EVENTS = _req_resp(
    _s("req_cmd", "OP_MSG command kind (insert, find, update, delete, cursor, hello)"),
    _s("req_body", "Request document(s) as JSON"),
    _s("resp_status", "Response kind, e.g. 'ok: 1'"),
    _s("resp_body", "Response document(s) as JSON"),
)
MUX_EVENTS = _req_resp(_i("req_type", "Mux frame type of the request (1 Treq, 2 Tdispatch, ...)"))
AMQP_EVENTS = _req_resp(
    _i("frame_type", "AMQP frame type (1 method, 2 header, 3 body, 8 heartbeat)"),
    _i("channel", "AMQP channel number"),
    _i("req_class_id", "Request class id"),
    _i("req_method_id", "Request method id"),
    _i("resp_class_id", "Response class id"),
    _i("resp_method_id", "Response method id"),
    _s("req_msg", "Decoded request frame as JSON"),
    _s("resp_msg", "Decoded response frame as JSON"),
)
# Pixie's mqtt_table.h columns; the connection prefix is the one every protocol table here has
# (local_addr, local_port and encrypted included, so TLS plaintext and the tracker fit it too).
MQTT_EVENTS = _req_resp(
    _s("req_control_packet_type", "Request MQTT control packet type (CONNECT, PUBLISH, SUBSCRIBE, ...)"),
    _s("req_header_fields", "Request fixed/variable header fields as JSON"),
    _s("req_properties", "Request MQTT 5 properties as JSON"),
    _s("req_payload", "Request payload fields as JSON"),
    _s("resp_control_packet_type", "Response MQTT control packet type (CONNACK, PUBACK, SUBACK, ...)"),
    _s("resp_header_fields", "Response header fields as JSON"),
    _s("resp_properties", "Response MQTT 5 properties as JSON"),
    _s("resp_payload", "Response payload fields as JSON"),
)
TLS_EVENTS = _req_resp(
    _i("req_type", "TLS record content type (20-24)"),
    _s("req_body", "Request record details as JSON"),
    _s("resp_body", "Response record details as JSON"),
    encrypted=False,
)
PROCESS_STATS = pa.schema([
    _TIME, _UPID,
    _i("major_faults", "Cumulative major page faults"),
    _i("minor_faults", "Cumulative minor page faults"),
    _i("cpu_utime_ns", "Cumulative user CPU time, ns", "ST_DURATION_NS"),
    _i("cpu_ktime_ns", "Cumulative kernel CPU time, ns", "ST_DURATION_NS"),
    _i("num_threads", "Current thread count"),
    _i("vsize_bytes", "Virtual memory size", "ST_BYTES"),
    _i("rss_bytes", "Resident set size", "ST_BYTES"),
    _i("rchar_bytes", "Cumulative bytes read via syscalls", "ST_BYTES"),
    _i("wchar_bytes", "Cumulative bytes written via syscalls", "ST_BYTES"),
    _i("read_bytes", "Cumulative bytes read from storage", "ST_BYTES"),
    _i("write_bytes", "Cumulative bytes written to storage", "ST_BYTES"),
])
NETWORK_STATS = pa.schema([
    _TIME,
    _s("pod_id", "Kubernetes pod UID"),
    _i("rx_bytes", "Cumulative bytes received", "ST_BYTES"),
    _i("rx_packets", "Cumulative packets received"),
    _i("rx_errors", "Cumulative receive errors"),
    _i("rx_drops", "Cumulative dropped inbound packets"),
    _i("tx_bytes", "Cumulative bytes transmitted", "ST_BYTES"),
    _i("tx_packets", "Cumulative packets transmitted"),
    _i("tx_errors", "Cumulative transmit errors"),
    _i("tx_drops", "Cumulative dropped outbound packets"),
])
JVM_STATS = pa.schema([
    _TIME, _UPID,
    _i("young_gc_time", "Cumulative young-generation GC time, ns", "ST_DURATION_NS"),
    _i("full_gc_time", "Cumulative full GC time, ns", "ST_DURATION_NS"),
    _i("used_heap_size", "Heap in use, bytes"),
    _i("total_heap_size", "Committed heap, bytes"),
    _i("max_heap_size", "Heap capacity limit, bytes"),
])
STACK_TRACES = pa.schema([
    _TIME, _UPID,
    _i("stack_trace_id", "ID of the stack within the profile"),
    _s("stack_trace", "Folded stack, root first, frames separated by ';'"),
    _i("count", "Times this stack was sampled in the window"),
])
PROC_EXIT_EVENTS = pa.schema([
    _TIME, _UPID,
    _i("exit_code", "Exit code of the process"),
    _i("signal", "Signal that ended the process (0 if none)"),
    _s("comm", "Process command name"),
])
STIRLING_ERROR = pa.schema([
    _TIME, _UPID,
    _s("source_connector", "Source connector reporting the status"),
    _i("status", "statuspb.Code (0 OK, ...)"),
    _s("error", "Error message, empty on success"),
    _s("context", "Where the error happened"),
])
PROBE_STATUS = pa.schema([
    _TIME, _UPID,
    _s("source_connector", "Source connector that deployed the probe"),
    _s("tracepoint", "Probe or tracepoint identifier"),
    _i("status", "statuspb.Code of the deployment"),
    _s("error", "Deployment error, if any"),
    _s("info", "Extra details as JSON"),
])
TCP_STATS_EVENTS = pa.schema([
    _TIME, _UPID,
    _s("local_addr", "Local IP", "ST_IP_ADDRESS"),
    _i("local_port", "Local port", "ST_PORT"),
    _s("remote_addr", "Remote IP", "ST_IP_ADDRESS"),
    _i("remote_port", "Remote port", "ST_PORT"),
    _i("tx", "Cumulative bytes sent", "ST_BYTES"),
    _i("rx", "Cumulative bytes received", "ST_BYTES"),
    _i("retransmits", "Cumulative TCP retransmissions"),
])


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
        TableSpec("mysql_events", MYSQL_EVENTS, "MySQL request/response pairs"),
        TableSpec("pgsql_events", PGSQL_EVENTS, "PostgreSQL request/response pairs"),
        TableSpec("cql_events", CQL_EVENTS, "Cassandra CQL request/response pairs"),
        TableSpec("dns_events", DNS_EVENTS, "DNS request/response pairs"),
        TableSpec("redis_events", REDIS_EVENTS, "Redis request/response pairs and pub/sub pushes"),
        TableSpec("kafka_events.beta", KAFKA_EVENTS, "Kafka request/response pairs"),
        TableSpec("nats_events.beta", NATS_EVENTS, "NATS protocol messages"),
        TableSpec("mongodb_events", MONGODB_EVENTS, "MongoDB OP_MSG request/response pairs"),
        TableSpec("mux_events", MUX_EVENTS, "Finagle Mux request/response pairs"),
        TableSpec("amqp_events", AMQP_EVENTS, "AMQP 0-9-1 frames paired as request/response"),
        TableSpec("mqtt_events", MQTT_EVENTS, "MQTT request/ack pairs (3.1, 3.1.1 and 5.0)"),
        TableSpec("tls_events", TLS_EVENTS, "TLS record-level request/response pairs (metadata only)"),
        TableSpec("process_stats", PROCESS_STATS, "Per-process CPU, memory and IO counters"),
        TableSpec("network_stats", NETWORK_STATS, "Per-pod network interface counters"),
        TableSpec("jvm_stats", JVM_STATS, "JVM heap and GC metrics"),
        TableSpec("stack_traces.beta", STACK_TRACES, "CPU profiler stack samples, aggregated counts"),
        TableSpec("proc_exit_events", PROC_EXIT_EVENTS, "Abnormal process exits"),
        TableSpec("stirling_error", STIRLING_ERROR, "Errors and status reports of source connectors"),
        TableSpec("probe_status", PROBE_STATUS, "Deployment status of individual eBPF probes"),
        TableSpec("tcp_stats_events", TCP_STATS_EVENTS, "TCP connection statistics"),
    )
}


def empty_table(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()
