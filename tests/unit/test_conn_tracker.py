"""The connection tracker fed decoded kernel events (the eBPF side is covered by the integration
tests): roles, addresses, parsing into http_events, conn_stats, and malformed streams."""

from __future__ import annotations

import os
import socket
import time

import pytest

from cluster.pem.conn_tracker import ConnTracker
from cluster.pem.process_info import ProcessCache, split_upid
from cluster.pem.sources.socket_events import ConnEvent, ConnKind, DataEvent, Direction, SockAddr
from cluster.store.table_store import TableStore
from tests.util import as_rows

PID = os.getpid()  # a live process, so /proc lookups succeed
CLIENT = SockAddr(socket.AF_INET, "127.0.0.1", 40000)
SERVER = SockAddr(socket.AF_INET, "127.0.0.1", 8080)
REQ = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
RESP = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}'


def data(ts: int, fd: int, direction: Direction, payload: bytes, sk: int = 77) -> DataEvent:
    return DataEvent(ts, PID, PID, fd, sk, direction, len(payload), 0, socket.AF_INET, 1, 0, None, payload)


def no_lookup(pid: int, fd: int):
    return None, None  # as when the process has gone: the tracker must cope


@pytest.fixture
def tracker() -> ConnTracker:
    return ConnTracker(TableStore(), ProcessCache(asid=1), conn_stats_period_s=0, addr_lookup=no_lookup)


def http_rows(t: ConnTracker) -> list[dict]:
    t.flush()
    return as_rows(t.store.scan("http_events", None, None))


def test_server_side_connection_from_accept_and_established(tracker: ConnTracker):
    tracker.handle([
        ConnEvent(ConnKind.ESTABLISHED, 1, 0, -1, 77, SERVER, CLIENT),
        ConnEvent(ConnKind.ACCEPT, 2, PID, 5, 0, None, CLIENT),
        data(1_000, 5, Direction.INGRESS, REQ),
        data(6_000, 5, Direction.EGRESS, RESP),
        ConnEvent(ConnKind.CLOSE, 7_000, PID, 5, 0, None, None),
    ])
    [row] = http_rows(tracker)
    assert row["trace_role"] == 2 and row["latency"] == 5_000
    assert (row["local_addr"], row["local_port"], row["remote_port"]) == ("127.0.0.1", 8080, 40000)
    assert row["req_path"] == "/a" and row["resp_body"] == '{"a":1}' and row["content_type"] == 1
    asid, pid, _ = split_upid(row["upid"])
    assert (asid, pid) == (1, PID)


def test_role_inferred_and_addresses_looked_up_when_connect_was_not_seen():
    calls = []

    def lookup(pid: int, fd: int):
        calls.append((pid, fd))
        return CLIENT, SERVER

    t = ConnTracker(TableStore(), ProcessCache(asid=1), addr_lookup=lookup)
    t.handle([data(10, 9, Direction.EGRESS, REQ, sk=5), data(30, 9, Direction.INGRESS, RESP, sk=5)])
    [row] = http_rows(t)
    assert calls == [(PID, 9)]
    assert row["trace_role"] == 1 and row["remote_port"] == 8080 and row["latency"] == 20


def test_byte_split_across_events_and_keepalive(tracker: ConnTracker):
    evs = [ConnEvent(ConnKind.CONNECT, 0, PID, 3, 0, None, SERVER),
           ConnEvent(ConnKind.ESTABLISHED, 0, 0, -1, 77, CLIENT, SERVER)]
    ts = 100
    for _ in range(3):
        for i in range(0, len(REQ), 5):
            evs.append(data(ts, 3, Direction.EGRESS, REQ[i : i + 5]))
            ts += 1
        evs.append(data(ts, 3, Direction.INGRESS, RESP))
        ts += 10
    tracker.handle(evs)
    rows = http_rows(tracker)
    assert len(rows) == 3 and all(r["trace_role"] == 1 and r["resp_status"] == 200 for r in rows)


def test_conn_stats_counts_bytes_and_closes(tracker: ConnTracker):
    tracker.handle([
        ConnEvent(ConnKind.CONNECT, 0, PID, 3, 0, None, SERVER),
        ConnEvent(ConnKind.ESTABLISHED, 0, 0, -1, 77, CLIENT, SERVER),
        data(1, 3, Direction.EGRESS, REQ),
        data(2, 3, Direction.INGRESS, RESP),
        ConnEvent(ConnKind.CLOSE, 3, PID, 3, 0, None, None),
    ])
    tracker.tick(now_ns=time.time_ns() + 10**12)
    rows = as_rows(tracker.store.scan("conn_stats", None, None))
    [row] = [r for r in rows if r["protocol"] == 1]
    assert (row["conn_open"], row["conn_close"], row["conn_active"]) == (1, 1, 0)
    assert (row["bytes_sent"], row["bytes_recv"]) == (len(REQ), len(RESP))
    assert row["remote_port"] == 8080 and row["trace_role"] == 1 and row["addr_family"] == 1
    assert not any(r["protocol"] == 0 and r["conn_open"] > 0 for r in rows)


def test_non_http_traffic_is_counted_not_buffered(tracker: ConnTracker):
    tracker.handle([ConnEvent(ConnKind.CONNECT, 0, PID, 4, 0, None, SERVER)]
                   + [data(i, 4, Direction.EGRESS, b"\x16\x03\x01 tls-ish bytes") for i in range(10)])
    assert http_rows(tracker) == []
    assert tracker.stats.data_events == 10


def test_malformed_http_is_a_counted_parse_error(tracker: ConnTracker):
    tracker.handle([
        ConnEvent(ConnKind.ACCEPT, 0, PID, 6, 0, None, CLIENT),
        data(1, 6, Direction.INGRESS, b"GET /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n\x00\xff"),
        data(2, 6, Direction.INGRESS, REQ),
        data(3, 6, Direction.EGRESS, RESP),
    ])
    rows = http_rows(tracker)
    assert tracker.stats.parse_errors >= 1
    assert [r["req_path"] for r in rows] == ["/a"]
