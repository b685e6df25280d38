"""The connection tracker fed decoded kernel events (the eBPF side is covered by the integration
tests): roles, addresses, parsing into http_events, conn_stats, and malformed streams."""

from __future__ import annotations

import os
import socket
import time

import pytest

from cluster.pem.conn_tracker import MAX_PARSE_FAILURES, ConnTracker
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
    tracker.handle(
        [
            ConnEvent(ConnKind.ESTABLISHED, 1, 0, -1, 77, SERVER, CLIENT),
            ConnEvent(ConnKind.ACCEPT, 2, PID, 5, 0, None, CLIENT),
            data(1_000, 5, Direction.INGRESS, REQ),
            data(6_000, 5, Direction.EGRESS, RESP),
            ConnEvent(ConnKind.CLOSE, 7_000, PID, 5, 0, None, None),
        ]
    )
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
    evs = [
        ConnEvent(ConnKind.CONNECT, 0, PID, 3, 0, None, SERVER),
        ConnEvent(ConnKind.ESTABLISHED, 0, 0, -1, 77, CLIENT, SERVER),
    ]
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
    tracker.handle(
        [
            ConnEvent(ConnKind.CONNECT, 0, PID, 3, 0, None, SERVER),
            ConnEvent(ConnKind.ESTABLISHED, 0, 0, -1, 77, CLIENT, SERVER),
            data(1, 3, Direction.EGRESS, REQ),
            data(2, 3, Direction.INGRESS, RESP),
            ConnEvent(ConnKind.CLOSE, 3, PID, 3, 0, None, None),
        ]
    )
    tracker.tick(now_ns=time.time_ns() + 10**12)
    rows = as_rows(tracker.store.scan("conn_stats", None, None))
    [row] = [r for r in rows if r["protocol"] == 1]
    assert (row["conn_open"], row["conn_close"], row["conn_active"]) == (1, 1, 0)
    assert (row["bytes_sent"], row["bytes_recv"]) == (len(REQ), len(RESP))
    assert row["remote_port"] == 8080 and row["trace_role"] == 1 and row["addr_family"] == 1
    assert not any(r["protocol"] == 0 and r["conn_open"] > 0 for r in rows)


def test_non_http_traffic_is_counted_not_buffered(tracker: ConnTracker):
    tracker.handle(
        [ConnEvent(ConnKind.CONNECT, 0, PID, 4, 0, None, SERVER)]
        + [data(i, 4, Direction.EGRESS, b"\x16\x03\x01 tls-ish bytes") for i in range(10)]
    )
    assert http_rows(tracker) == []
    assert tracker.stats.data_events == 10


def test_malformed_http_is_a_counted_parse_error(tracker: ConnTracker):
    tracker.handle(
        [
            ConnEvent(ConnKind.ACCEPT, 0, PID, 6, 0, None, CLIENT),
            data(1, 6, Direction.INGRESS, b"GET /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n\x00\xff"),
            data(2, 6, Direction.INGRESS, REQ),
            data(3, 6, Direction.EGRESS, RESP),
        ]
    )
    rows = http_rows(tracker)
    assert tracker.stats.parse_errors >= 1
    assert [r["req_path"] for r in rows] == ["/a"]


# ---- connections that stop parsing are reset (conn_tracker module docstring) -------------------
GARBAGE = bytes(range(256)).replace(b" ", b"_") * 64  # 16 KiB with no " HTTP/1." to resync on


def client_conn(fd: int) -> list:
    return [ConnEvent(ConnKind.CONNECT, 0, PID, fd, 0, None, SERVER),
            ConnEvent(ConnKind.ESTABLISHED, 0, 0, -1, 77, CLIENT, SERVER)]  # fmt: skip


def exchange(ts: int, fd: int) -> list[DataEvent]:
    return [data(ts, fd, Direction.EGRESS, REQ), data(ts + 5, fd, Direction.INGRESS, RESP)]


def garbage_past_bound(ts: int, fd: int, bound: int) -> list[DataEvent]:
    """Garbage in 16 KiB writes: the first is the parse error, the rest add up to ``bound`` bytes."""
    n = 1 + -(-bound // len(GARBAGE))
    return [data(ts + i, fd, Direction.EGRESS, GARBAGE) for i in range(n)]


def test_garbage_after_a_valid_start_resets_the_connection_and_it_is_inferred_again(tracker: ConnTracker):
    tracker.handle([*client_conn(3), *exchange(100, 3)])
    assert len(http_rows(tracker)) == 1
    tracker.handle(garbage_past_bound(1_000, 3, tracker.stall_bytes)[:-1])
    assert tracker.stats.parse_errors == 1 and tracker.stats.conns_reset == 0  # one more write to go
    tracker.handle([data(5_000, 3, Direction.EGRESS, GARBAGE)])
    assert tracker.stats.conns_reset == 1 and tracker.stats.conns_untraceable == 0
    [conn] = tracker._conns.values()
    assert conn.stitcher is None and conn.egress is None and conn.protocol == 0  # nothing kept
    tracker.handle(exchange(10_000, 3))  # the next request is inferred afresh and parsed
    assert [r["latency"] for r in http_rows(tracker)] == [5, 5]
    assert tracker.stats.conns_reset == 1


def test_repeated_parse_errors_without_a_record_reset_the_connection(tracker: ConnTracker):
    """A desynchronised client: each request is followed by junk and no response ever matches."""
    evs = client_conn(4)
    for i in range(MAX_PARSE_FAILURES):
        evs += [data(10 * i, 4, Direction.EGRESS, REQ), data(10 * i + 1, 4, Direction.EGRESS, b"\x00\x01junk\r\n\r\n")]
    tracker.handle(evs[:-1])
    assert tracker.stats.parse_errors == MAX_PARSE_FAILURES - 1 and tracker.stats.conns_reset == 0
    tracker.handle(evs[-1:])
    assert tracker.stats.parse_errors == MAX_PARSE_FAILURES and tracker.stats.conns_reset == 1


def test_a_stream_held_at_its_bound_counts_as_failures():
    """A header block that never ends: each time the stream hits its byte bound is a failure."""
    t = ConnTracker(TableStore(), ProcessCache(asid=1), addr_lookup=no_lookup, stream_max_bytes=4096,
                    stall_bytes=1 << 30, max_parse_failures=3)  # fmt: skip
    evs = [*client_conn(5), data(1, 5, Direction.EGRESS, b"GET /big HTTP/1.1\r\nX-Long: ")]
    for i in range(3):  # a pending request's header line grows past the bound, then the run repeats
        evs += [data(10 + 3 * i, 5, Direction.EGRESS, b"a" * 3000), data(11 + 3 * i, 5, Direction.EGRESS, b"a" * 3000),
                data(12 + 3 * i, 5, Direction.EGRESS, b"GET /big HTTP/1.1\r\nX-Long: ")]  # fmt: skip
    t.handle(evs)
    assert t.stats.conns_reset == 1 and t.stats.stream_overflows >= 2


def test_a_connection_reset_twice_becomes_untraceable(tracker: ConnTracker):
    tracker.handle([*client_conn(6), *exchange(100, 6), *garbage_past_bound(1_000, 6, tracker.stall_bytes)])
    tracker.handle([*exchange(10_000, 6), *garbage_past_bound(20_000, 6, tracker.stall_bytes)])
    assert (tracker.stats.conns_reset, tracker.stats.conns_untraceable) == (2, 1)
    tracker.handle([*exchange(90_000, 6), ConnEvent(ConnKind.CLOSE, 99_000, PID, 6, 0, None, None)])
    assert len(http_rows(tracker)) == 2  # nothing parsed after the second reset
    tracker.tick(now_ns=time.time_ns() + 10**12)
    rows = as_rows(tracker.store.scan("conn_stats", None, None))
    [row] = [r for r in rows if r["remote_port"] == 8080 and r["conn_close"]]
    assert (row["protocol"], row["conn_open"], row["conn_close"]) == (0, 1, 1)  # no longer counted as HTTP
    assert not any(r["protocol"] == 1 and r["conn_open"] for r in rows)


def test_one_malformed_message_does_not_reset(tracker: ConnTracker):
    tracker.handle([*client_conn(7), data(1, 7, Direction.EGRESS, b"\x00\xffnot http\r\n\r\n"), *exchange(10, 7)])
    assert tracker.stats.conns_reset == 0 and len(http_rows(tracker)) == 1


def test_conns_reset_reaches_the_status_reply_and_its_readers():
    from cluster.pem.agent import PemStatus
    from cluster.pem.agent_server import status_to_pb
    from pxtui.screens.diagnostics import agent_summary
    from pxtui.widgets.glyphs import UNICODE

    st = PemStatus("a1", 1, "node", "AGENT_STATE_HEALTHY", [], "exact", 10, 0, 9, 2, [], "", conns_reset=3)
    pb = status_to_pb(st)
    assert pb.conns_reset == 3
    assert "connections reset 3" in agent_summary(pb, time.time_ns(), UNICODE).plain
