"""Parse + stitch cost of HTTP/2 and gRPC on one core, against HTTP/1.1 as the baseline.

Each workload is one connection's traffic as the tracker hands it over: one append per syscall
(a peer's write), the stitcher called after every append. The HTTP/2 bytes are produced by the `h2`
library's client and server talking to each other (its HPACK encoder fills the dynamic table as
real clients do), recorded before the clock starts.

* HTTP/1.1 GET (baseline): keep-alive GET + 200 with a 64-byte JSON body (1 record each).
* h2 GET: the same request and response over HTTP/2 (HEADERS + DATA).
* gRPC unary: HEADERS + length-prefixed protobuf DATA, response HEADERS + DATA + trailers, bodies
  printed in protobuf text format.
* gRPC unary, mid-stream: the same connection first seen after its first call, so every block goes
  through the field-by-field decoder with some fields unknown (the slow path).

Prints µs per record, records per second, and the ratio to the baseline measured in the same run;
best of 3 runs per workload.

    .venv/bin/python -m tests.bench.bench_protocols_http2
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
from google.protobuf.wrappers_pb2 import StringValue

from cluster.pem.data_stream import DataStream
from cluster.pem.protocols.http import HttpStitcher
from cluster.pem.protocols.http2 import Http2Stitcher
from cluster.schemas import ROLE_CLIENT

N = 5000
BODY = b'{"order": 4711, "sku": "A-100", "qty": 2, "price": 19.99, "ccy": "EUR"}'[:64]
AUTHORITY = "catalog.shop.svc:8080"

Traffic = list[tuple[bool, bytes]]  # (sent by the client, bytes of one syscall)


def http1(n: int) -> Traffic:
    out: Traffic = []
    for i in range(n):
        out.append((True, f"GET /items/{i} HTTP/1.1\r\nHost: {AUTHORITY}\r\nUser-Agent: bench/1\r\n"
                          "Accept: application/json\r\n\r\n".encode()))  # fmt: skip
        out.append((False, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (len(BODY), BODY)))  # fmt: skip
    return out


class _Peers:
    """An h2 client and server wired together; each flush records one write per side."""

    def __init__(self) -> None:
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        self.traffic: Traffic = []
        self.client.initiate_connection()
        self.server.initiate_connection()
        self.flush()

    def flush(self) -> None:
        while True:
            up, down = self.client.data_to_send(), self.server.data_to_send()
            if not up and not down:
                return
            if up:
                self.traffic.append((True, up))
                _acknowledge(self.server, self.server.receive_data(up))
            if down:
                self.traffic.append((False, down))
                _acknowledge(self.client, self.client.receive_data(down))


def _acknowledge(conn: h2.connection.H2Connection, events: list) -> None:
    """Return flow-control credit as real peers do (WINDOW_UPDATE frames join the traffic)."""
    for ev in events:
        if isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)


def h2_get(n: int) -> Traffic:
    p = _Peers()
    for i in range(n):
        sid = p.client.get_next_available_stream_id()
        p.client.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", AUTHORITY),
                                    (":path", f"/items/{i}"), ("user-agent", "bench/1"),
                                    ("accept", "application/json")], end_stream=True)  # fmt: skip
        p.flush()
        p.server.send_headers(sid, [(":status", "200"), ("content-type", "application/json"),
                                    ("content-length", str(len(BODY)))])  # fmt: skip
        p.server.send_data(sid, BODY, end_stream=True)
        p.flush()
    return p.traffic


def _grpc_message(text: str) -> bytes:
    raw = StringValue(value=text).SerializeToString()
    return b"\x00" + struct.pack(">I", len(raw)) + raw


def grpc_unary(n: int) -> Traffic:
    p = _Peers()
    for i in range(n):
        sid = p.client.get_next_available_stream_id()
        p.client.send_headers(sid, [(":method", "POST"), (":scheme", "http"), (":authority", AUTHORITY),
                                    (":path", "/shop.Catalog/GetItem"), ("content-type", "application/grpc"),
                                    ("te", "trailers"), ("grpc-timeout", "10S"),
                                    ("user-agent", "grpc-python/1.85.1")])  # fmt: skip
        p.client.send_data(sid, _grpc_message(f"item-{i}"), end_stream=True)
        p.flush()
        p.server.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc")])
        p.server.send_data(sid, _grpc_message(BODY.decode()))
        p.server.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "")], end_stream=True)
        p.flush()
    return p.traffic


def grpc_mid_stream(n: int) -> Traffic:
    traffic = grpc_unary(n + 1)
    first_call = next(i for i, (up, data) in enumerate(traffic) if up and data[3] == 1)
    return traffic[first_call + 2 :]  # skip the preface, settings and the first call


def run(make_stitcher: Callable[[], object], traffic: Traffic) -> tuple[float, int, object]:
    """(seconds, records, stitcher) for one connection's traffic."""
    client, server = DataStream(), DataStream()
    st = make_stitcher()
    ts = 1_700_000_000_000_000_000
    records = 0
    t0 = time.perf_counter()
    for from_client, data in traffic:
        (client if from_client else server).append(ts, data)
        ts += 1000
        records += len(st.process(ROLE_CLIENT, client, server))  # type: ignore[attr-defined]
    elapsed = time.perf_counter() - t0
    assert st.internal_errors == 0  # type: ignore[attr-defined]
    return elapsed, records, st


WORKLOADS: list[tuple[str, Callable[[], object], Traffic, bool]] = [
    ("http/1.1 GET (baseline)", HttpStitcher, http1(N), False),
    ("h2 GET", Http2Stitcher, h2_get(N), False),
    ("grpc unary", Http2Stitcher, grpc_unary(N), False),
    ("grpc unary, mid-stream", Http2Stitcher, grpc_mid_stream(N), True),
]


def measure() -> list[tuple[str, str, float, int]]:
    """(protocol, workload, seconds, records) per workload, best of 3: one core's parse throughput, for
    tests/bench/bench_protocol_parsers.py."""
    out = []
    for name, make, traffic, _partial in WORKLOADS[1:]:  # [0] is HTTP/1.1, measured by bench_http_parser
        run(make, traffic)  # warm-up
        elapsed, records, _st = min((run(make, traffic) for _ in range(3)), key=lambda r: r[0])
        out.append(("HTTP/2" if name.startswith("h2") else "gRPC", name + ", per syscall", elapsed, records))
    return out


def main() -> None:
    baseline = 0.0
    print(f"{N} exchanges per workload, stitcher called after every syscall, best of 3")
    for name, make, traffic, partial in WORKLOADS:
        run(make, traffic)  # warm-up
        elapsed, records, st = min((run(make, traffic) for _ in range(3)), key=lambda r: r[0])
        errors = st.parse_errors  # type: ignore[attr-defined]
        assert records == N and (partial or errors == 0), (name, records, errors)
        us = 1e6 * elapsed / records
        baseline = baseline or us
        note = f"  ({st.undecoded_headers} blocks partly undecoded)" if partial else ""  # type: ignore[attr-defined]
        print(f"{name:<24} {us:7.2f} us/record  {records / elapsed:>10,.0f} records/s  "
              f"{records:>6} records  ratio to baseline {us / baseline:5.2f}{note}")  # fmt: skip


if __name__ == "__main__":
    main()
