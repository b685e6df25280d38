"""A one-node Kafka broker that speaks just enough of the wire protocol for kafka-python's producer
and consumer, for the Kafka tests: no Kafka server can be installed on these machines.

NOT a Kafka implementation. Requests are decoded and responses encoded by kafka-python's message
classes, which are generated from Apache Kafka's own message definitions (the *Request.json and
*Response.json files it ships), so every byte on the wire follows the protocol specification; the
broker's behaviour is the minimum the specification requires of a single broker with one partition
per topic and one member per group:

* ApiVersions advertises, for the APIs below, the version ranges of a real Kafka release
  (``--broker-version``, from kafka-python's table of ranges recorded from real brokers), so the
  client negotiates exactly the versions it would with that release: 2.1 (no flexible Produce or
  Fetch) or 3.9 (flexible versions, request header v2, compact encodings, tagged fields).
* Metadata creates topics on first mention; Produce appends record batches (base offsets assigned,
  as a broker does: the CRC does not cover them) and Fetch serves them back, waiting up to
  max_wait_ms for data like a broker's long poll; ListOffsets, OffsetCommit and OffsetFetch keep
  offsets; FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup run a group whose single
  member leads it; InitProducerId gives idempotent producers an id.

Run: ``python -m tests.kafka_spec_server --port 0 --broker-version 3.9`` prints ``LISTENING <port>``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from kafka.protocol import consumer, metadata, producer
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.broker_version_data import BROKER_API_VERSIONS

REQUESTS: dict[int, type[ApiMessage]] = {}
RESPONSES: dict[int, type[ApiMessage]] = {}
for _mod in (consumer, metadata, producer):
    for _name in _mod.__all__:
        _cls = getattr(_mod, _name)
        if isinstance(_cls, type) and issubclass(_cls, ApiMessage):
            (REQUESTS if _cls.is_request() else RESPONSES)[_cls.API_KEY] = _cls

HANDLED = (0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 18, 22)
PROFILES = {"2.1": (2, 1), "3.9": (3, 9)}
_LAST_DELTA = struct.Struct(">i")


def build(cls: Any, values: dict[str, Any], version: int | None = None) -> Any:
    """A message (or nested struct) from a dict; keys a version lacks are left out of the encoding."""
    kw: dict[str, Any] = {}
    for f in cls._struct._fields:
        if f.name not in values:
            continue
        v = values[f.name]
        if f.is_struct() or f.is_struct_array():
            sub = f.data_class or getattr(cls, f.type_str)  # nested classes hang off their parent
            v = [build(sub, x) for x in v] if f.is_struct_array() else build(sub, v)
        kw[f.name] = v
    return cls(**kw) if version is None else cls(version=version, **kw)


class Log:
    """One partition: record batches with their base offsets."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, bytes]] = []
        self.end = 0

    def append(self, records: bytes) -> int:
        """Assign offsets to every batch in ``records``; return the first batch's base offset."""
        base = self.end
        pos = 0
        while pos + 12 <= len(records):
            size = 12 + _LAST_DELTA.unpack_from(records, pos + 8)[0]
            batch = bytearray(records[pos : pos + size])
            last_delta = _LAST_DELTA.unpack_from(batch, 23)[0]
            struct.pack_into(">q", batch, 0, self.end)
            self.batches.append((self.end, bytes(batch)))
            self.end += last_delta + 1
            pos += size
        return base

    def read(self, offset: int, max_bytes: int) -> bytes:
        out = b""
        for base, batch in self.batches:
            last = base + _LAST_DELTA.unpack_from(batch, 23)[0]
            if last >= offset and (not out or len(out) + len(batch) <= max_bytes):
                out += batch
        return out


class Broker:
    def __init__(self, host: str, port: int, profile: tuple[int, int]) -> None:
        self.host, self.port = host, port
        ranges = BROKER_API_VERSIONS[profile]
        self.versions = {k: ranges[k] for k in HANDLED if k in ranges}
        self.logs: dict[str, Log] = {}
        self.ids: dict[str, uuid.UUID] = {}
        self.offsets: dict[tuple[str, str, int], int] = {}
        self.generation = 0
        self.data = threading.Condition()

    def topic(self, name: str) -> Log:
        if name not in self.logs:
            self.logs[name] = Log()
            self.ids[name] = uuid.uuid4()
        return self.logs[name]

    def name_of(self, t: Any) -> str:
        name = getattr(t, "topic", None) or getattr(t, "name", None)
        if name:
            return name
        return next(n for n, i in self.ids.items() if i == t.topic_id)

    def handle(self, key: int, v: int, req: Any) -> dict[str, Any]:
        return getattr(self, f"api_{RESPONSES[key].__name__.removesuffix('Response').lower()}")(v, req)

    def api_apiversions(self, v: int, req: Any) -> dict[str, Any]:
        keys = [{"api_key": k, "min_version": lo, "max_version": hi} for k, (lo, hi) in sorted(self.versions.items())]
        return {"error_code": 0, "api_keys": keys, "throttle_time_ms": 0}

    def api_metadata(self, v: int, req: Any) -> dict[str, Any]:
        with self.data:
            names = list(self.logs) if req.topics is None else [self.name_of(t) for t in req.topics]
            for n in names:
                self.topic(n)
            part = {"error_code": 0, "partition_index": 0, "leader_id": 0, "leader_epoch": 0, "replica_nodes": [0],
                    "isr_nodes": [0], "offline_replicas": []}  # fmt: skip
            topics = [{"error_code": 0, "name": n, "topic_id": self.ids[n], "is_internal": False, "partitions": [part]}
                      for n in names]  # fmt: skip
        broker = {"node_id": 0, "host": self.host, "port": self.port, "rack": None}
        return {"throttle_time_ms": 0, "brokers": [broker], "cluster_id": "pxtui-spec", "controller_id": 0,
                "topics": topics, "error_code": 0}  # fmt: skip

    def api_produce(self, v: int, req: Any) -> dict[str, Any]:
        out = []
        with self.data:
            for t in req.topic_data:
                name = self.name_of(t)
                log = self.topic(name)
                parts = [{"index": p.index, "error_code": 0, "base_offset": log.append(bytes(p.records or b"")),
                          "log_append_time_ms": -1, "log_start_offset": 0, "record_errors": [], "error_message": None}
                         for p in t.partition_data]  # fmt: skip
                out.append({"name": name, "topic_id": self.ids[name], "partition_responses": parts})
            self.data.notify_all()
        return {"responses": out, "throttle_time_ms": 0}

    def api_fetch(self, v: int, req: Any) -> dict[str, Any]:
        deadline = time.monotonic() + min(req.max_wait_ms, 500) / 1000

        def answer() -> list[dict[str, Any]]:
            out = []
            for t in req.topics:
                name = self.name_of(t)
                log = self.topic(name)
                parts = [{"partition_index": p.partition, "error_code": 0, "high_watermark": log.end,
                          "last_stable_offset": log.end, "log_start_offset": 0, "aborted_transactions": [],
                          "preferred_read_replica": -1, "records": log.read(p.fetch_offset, p.partition_max_bytes)}
                         for p in t.partitions]  # fmt: skip
                out.append({"topic": name, "topic_id": self.ids[name], "partitions": parts})
            return out

        with self.data:
            while True:
                topics = answer()
                has_data = any(p["records"] for t in topics for p in t["partitions"])
                left = deadline - time.monotonic()
                if has_data or left <= 0:
                    break
                self.data.wait(left)
        return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0, "responses": topics}

    def api_listoffsets(self, v: int, req: Any) -> dict[str, Any]:
        topics = []
        with self.data:
            for t in req.topics:
                log = self.topic(t.name)
                parts = [{"partition_index": p.partition_index, "error_code": 0, "timestamp": -1, "leader_epoch": 0,
                          "offset": 0 if p.timestamp == -2 else log.end} for p in t.partitions]  # fmt: skip
                topics.append({"name": t.name, "partitions": parts})
        return {"throttle_time_ms": 0, "topics": topics}

    def api_findcoordinator(self, v: int, req: Any) -> dict[str, Any]:
        node = {"error_code": 0, "error_message": None, "node_id": 0, "host": self.host, "port": self.port}
        keys = req.coordinator_keys if v >= 4 else [req.key]
        return {"throttle_time_ms": 0, **node, "coordinators": [{"key": k, **node} for k in keys]}

    def api_joingroup(self, v: int, req: Any) -> dict[str, Any]:
        member = req.member_id or f"{req.group_id}-member-{uuid.uuid4().hex[:8]}"
        self.generation += 1
        proto = req.protocols[0]
        return {"throttle_time_ms": 0, "error_code": 0, "generation_id": self.generation,
                "protocol_type": req.protocol_type, "protocol_name": proto.name, "leader": member,
                "skip_assignment": False, "member_id": member,
                "members": [{"member_id": member, "group_instance_id": None, "metadata": proto.metadata}]}  # fmt: skip

    def api_syncgroup(self, v: int, req: Any) -> dict[str, Any]:
        mine = next((a.assignment for a in req.assignments if a.member_id == req.member_id), b"")
        return {"throttle_time_ms": 0, "error_code": 0, "protocol_type": req.protocol_type,
                "protocol_name": req.protocol_name, "assignment": mine}  # fmt: skip

    def api_heartbeat(self, v: int, req: Any) -> dict[str, Any]:
        return {"throttle_time_ms": 0, "error_code": 0}

    def api_leavegroup(self, v: int, req: Any) -> dict[str, Any]:
        return {"throttle_time_ms": 0, "error_code": 0, "members": []}

    def api_offsetcommit(self, v: int, req: Any) -> dict[str, Any]:
        topics = []
        with self.data:
            for t in req.topics:
                name = self.name_of(t)
                for p in t.partitions:
                    self.offsets[(req.group_id, name, p.partition_index)] = p.committed_offset
                parts = [{"partition_index": p.partition_index, "error_code": 0} for p in t.partitions]
                topics.append({"name": name, "topic_id": self.ids.get(name), "partitions": parts})
        return {"throttle_time_ms": 0, "topics": topics}

    def api_offsetfetch(self, v: int, req: Any) -> dict[str, Any]:
        def parts(group: str, name: str, indexes: list[int]) -> list[dict[str, Any]]:
            return [{"partition_index": i, "committed_offset": self.offsets.get((group, name, i), -1),
                     "committed_leader_epoch": -1, "metadata": "", "error_code": 0} for i in indexes]  # fmt: skip

        with self.data:
            if v < 8:
                topics = [{"name": t.name, "partitions": parts(req.group_id, t.name, t.partition_indexes)}
                          for t in req.topics or []]  # fmt: skip
                return {"throttle_time_ms": 0, "topics": topics, "error_code": 0}
            groups = []
            for g in req.groups:
                topics = [{"name": self.name_of(t), "topic_id": t.topic_id,
                           "partitions": parts(g.group_id, self.name_of(t), t.partition_indexes)}
                          for t in g.topics or []]  # fmt: skip
                groups.append({"group_id": g.group_id, "topics": topics, "error_code": 0})
            return {"throttle_time_ms": 0, "groups": groups}

    def api_initproducerid(self, v: int, req: Any) -> dict[str, Any]:
        return {"throttle_time_ms": 0, "error_code": 0, "producer_id": 4000, "producer_epoch": 0}


class Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        conn = next(self.server.conn_numbers)
        buf = b""
        while True:
            while len(buf) < 4 or len(buf) < 4 + struct.unpack_from(">i", buf)[0]:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                self.server.note(conn, "c", chunk)
                buf += chunk
            size = struct.unpack_from(">i", buf)[0]
            frame, buf = buf[4 : 4 + size], buf[4 + size :]
            key, version = struct.unpack_from(">hh", frame)
            req = REQUESTS[key].decode(frame, version=version, header=True)
            body = self.server.broker.handle(key, version, req)
            if key == 0 and req.acks == 0:
                continue  # a broker never answers a produce request with acks=0
            resp = build(RESPONSES[key], body, version)
            resp.with_header(correlation_id=req.header.correlation_id)
            out = resp.encode(header=True, framed=True)
            self.server.note(conn, "s", out)
            sock.sendall(out)


class Server(socketserver.ThreadingTCPServer):
    """The broker's TCP server. With ``record`` set, every chunk read from a client and every
    response written is appended to it as (ts_ns, connection number, "c" or "s", bytes): the unit
    tests replay exactly what the client library sent."""

    daemon_threads = True
    allow_reuse_address = True
    broker: Broker
    record: list[tuple[int, int, str, bytes]] | None = None
    conn_numbers = itertools.count()
    _lock = threading.Lock()

    def note(self, conn: int, side: str, data: bytes) -> None:
        if self.record is not None:
            with self._lock:
                self.record.append((time.time_ns(), conn, side, data))


@contextlib.contextmanager
def serving(broker_version: str = "3.9", record: list[tuple[int, int, str, bytes]] | None = None) -> Iterator[int]:
    """The broker in this process on a free loopback port (a thread); yields the port."""
    srv = Server(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
    srv.broker = Broker("127.0.0.1", port, PROFILES[broker_version])
    srv.record = record
    thread = threading.Thread(target=srv.serve_forever, name="kafka-spec-server", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--broker-version", choices=sorted(PROFILES), default="3.9")
    a = ap.parse_args(argv)
    with Server((a.host, a.port), Handler) as srv:
        port = srv.server_address[1]
        srv.broker = Broker(a.host, port, PROFILES[a.broker_version])
        print(f"LISTENING {port}", flush=True)
        srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
