"""Which protocols the connection tracker knows: code, inference, stitcher and output table.

The tracker asks every enabled protocol, in this order, whether a connection's first bytes look like
its traffic; the first that says yes owns the connection. The order puts the strictest signatures
first (NATS's INFO/CONNECT JSON, HTTP's method/status line, MySQL's framed handshake, PostgreSQL's
startup packet, a DNS message that decodes whole) and Redis late, whose request shape is loose.
Protocols are enabled by default, as in Pixie, and can be switched off with
``PXTUI_ENABLE_<PROTO>_TRACING=0`` (Pixie's ``PX_STIRLING_ENABLE_<P>_TRACING``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cluster import schemas
from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.amqp.infer import infer as infer_amqp
from cluster.pem.protocols.amqp.stitch import AmqpStitcher
from cluster.pem.protocols.cql.infer import infer as infer_cql
from cluster.pem.protocols.cql.stitch import CqlStitcher
from cluster.pem.protocols.dns.infer import infer as infer_dns
from cluster.pem.protocols.dns.stitch import DnsStitcher
from cluster.pem.protocols.http.infer import MessageKind
from cluster.pem.protocols.http.infer import infer as infer_http
from cluster.pem.protocols.http.stitch import HttpStitcher
from cluster.pem.protocols.http2.infer import infer as infer_http2
from cluster.pem.protocols.http2.stitch import Http2Stitcher
from cluster.pem.protocols.kafka.infer import infer as infer_kafka
from cluster.pem.protocols.kafka.stitch import KafkaStitcher
from cluster.pem.protocols.mongodb.infer import infer as infer_mongodb
from cluster.pem.protocols.mongodb.stitch import MongoStitcher
from cluster.pem.protocols.mqtt.infer import infer as infer_mqtt
from cluster.pem.protocols.mqtt.stitch import MqttStitcher
from cluster.pem.protocols.mysql.infer import infer as infer_mysql
from cluster.pem.protocols.mysql.stitch import MysqlStitcher
from cluster.pem.protocols.nats.infer import infer as infer_nats
from cluster.pem.protocols.nats.stitch import NatsStitcher
from cluster.pem.protocols.pgsql.infer import infer as infer_pgsql
from cluster.pem.protocols.pgsql.stitch import PgsqlStitcher
from cluster.pem.protocols.redis.infer import infer as infer_redis
from cluster.pem.protocols.redis.stitch import RedisStitcher

# conn_stats.protocol codes (schemas.md §4.3, Pixie's traffic_protocol_t).
PROTOCOL_HTTP = schemas.PROTOCOL_HTTP
PROTOCOL_HTTP2 = schemas.PROTOCOL_HTTP2
PROTOCOL_MYSQL = 3
PROTOCOL_CQL = 4
PROTOCOL_PGSQL = 5
PROTOCOL_DNS = 6
PROTOCOL_REDIS = 7
PROTOCOL_NATS = 8
PROTOCOL_MONGO = 9
PROTOCOL_KAFKA = 10
PROTOCOL_AMQP = 12
# MQTT is not in the reference snapshot's traffic_protocol_t; 14 is the first value after kProtocolTLS.
PROTOCOL_MQTT = 14


class Stitcher(Protocol):
    """What the tracker needs from a protocol's stitcher (one instance per connection)."""

    parse_errors: int
    unmatched_responses: int

    def process(self, role: int, egress: DataStream, ingress: DataStream) -> list[dict[str, Any]]: ...

    def on_close(self, role: int, egress: DataStream, ingress: DataStream) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class ProtocolSpec:
    code: int
    name: str  # upper-case, as in the enable variable
    table: str
    infer: Callable[[bytes], MessageKind | None]
    new_stitcher: Callable[[int], Stitcher]  # body cap -> a stitcher for one connection

    @property
    def env_var(self) -> str:
        return f"PXTUI_ENABLE_{self.name}_TRACING"


PROTOCOLS: tuple[ProtocolSpec, ...] = (
    # NATS first: its client's "CONNECT {" would otherwise pass for an HTTP CONNECT request.
    ProtocolSpec(PROTOCOL_NATS, "NATS", "nats_events.beta", infer_nats, lambda cap: NatsStitcher(body_cap=cap)),
    ProtocolSpec(PROTOCOL_HTTP, "HTTP", "http_events", infer_http, lambda cap: HttpStitcher(body_cap=cap)),
    ProtocolSpec(PROTOCOL_MYSQL, "MYSQL", "mysql_events", infer_mysql, lambda cap: MysqlStitcher()),
    ProtocolSpec(PROTOCOL_PGSQL, "PGSQL", "pgsql_events", infer_pgsql, lambda cap: PgsqlStitcher()),
    ProtocolSpec(PROTOCOL_DNS, "DNS", "dns_events", infer_dns, lambda cap: DnsStitcher()),
    # HTTP/2 (and gRPC) after the strict text and framed handshakes, before the binary protocols whose
    # first bytes are only a length and a few fields: its preface and first SETTINGS are exact.
    ProtocolSpec(PROTOCOL_HTTP2, "HTTP2", "http_events", infer_http2, lambda cap: Http2Stitcher(body_cap=cap)),
    ProtocolSpec(PROTOCOL_CQL, "CQL", "cql_events", infer_cql, lambda cap: CqlStitcher()),
    ProtocolSpec(PROTOCOL_MONGO, "MONGO", "mongodb_events", infer_mongodb, lambda cap: MongoStitcher(body_cap=cap)),
    ProtocolSpec(PROTOCOL_KAFKA, "KAFKA", "kafka_events.beta", infer_kafka, lambda cap: KafkaStitcher()),
    ProtocolSpec(PROTOCOL_REDIS, "REDIS", "redis_events", infer_redis, lambda cap: RedisStitcher()),
    ProtocolSpec(PROTOCOL_AMQP, "AMQP", "amqp_events", infer_amqp, lambda cap: AmqpStitcher(body_cap=cap)),
    ProtocolSpec(PROTOCOL_MQTT, "MQTT", "mqtt_events", infer_mqtt, lambda cap: MqttStitcher(body_cap=cap)),
)
BY_CODE: dict[int, ProtocolSpec] = {p.code: p for p in PROTOCOLS}


def enabled_protocols(env: Mapping[str, str] | None = None) -> tuple[ProtocolSpec, ...]:
    """The protocols switched on by the environment (all by default).

    Raises ValueError naming the variable when a value is neither 0 nor 1, so a typo does not
    silently turn tracing off.
    """
    env = os.environ if env is None else env
    out = []
    for spec in PROTOCOLS:
        raw = env.get(spec.env_var, "1").strip().lower()
        if raw in ("1", "true", "yes", "on"):
            out.append(spec)
        elif raw not in ("0", "false", "no", "off"):
            raise ValueError(f"{spec.env_var}={raw!r}: expected 0 or 1")
    return tuple(out)
