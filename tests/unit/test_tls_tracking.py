"""TLS in the connection tracker and OpenSSL library discovery, without the kernel (the uprobes are
covered by tests/integration/test_tls_tracing.py): plaintext events make a connection TLS, its rows
say encrypted = true, its conn_stats row ssl = true, and ciphertext is never parsed."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from cluster.pem.conn_tracker import ConnTracker
from cluster.pem.process_info import ProcessCache
from cluster.pem.sources.openssl_probes import mapped_libssl, openssl_version
from cluster.pem.sources.socket_events import ConnEvent, ConnKind, DataEvent, Direction, SockAddr
from cluster.store.table_store import TableStore
from tests.util import as_rows

PID = os.getpid()
CLIENT = SockAddr(socket.AF_INET, "127.0.0.1", 40000)
SERVER = SockAddr(socket.AF_INET, "127.0.0.1", 8443)
REQ = b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
# What a TLS 1.3 ClientHello and an application-data record look like on the wire.
HELLO = bytes.fromhex("160301") + b"\x00\x40" + bytes(range(64))
APP_DATA = bytes.fromhex("170303") + b"\x00\x20" + bytes(range(100, 132))


def ev(ts: int, direction: Direction, payload: bytes, *, ssl: bool, fd: int = 5) -> DataEvent:
    syscall = (1001 if direction is Direction.EGRESS else 1000) if ssl else 1
    return DataEvent(ts, PID, PID, fd, 77, direction, len(payload), 0, socket.AF_INET, socket.SOCK_STREAM, syscall,
                     None, payload, ssl)  # fmt: skip


@pytest.fixture
def tracker() -> ConnTracker:
    return ConnTracker(TableStore(), ProcessCache(asid=1), conn_stats_period_s=0, addr_lookup=lambda p, f: (None, None))


def rows(t: ConnTracker, table: str = "http_events") -> list[dict]:
    t.flush()
    return as_rows(t.store.scan(table, None, None))


def test_plaintext_after_ciphertext_handshake_is_parsed_and_marked_encrypted(tracker: ConnTracker):
    """The handshake reached user space (uprobes attached mid-connection): it uses up inference
    attempts, yet the plaintext that follows is inferred afresh and parsed."""
    evs: list[DataEvent | ConnEvent] = [
        ConnEvent(ConnKind.CONNECT, 0, PID, 5, 0, None, SERVER),
        ConnEvent(ConnKind.ESTABLISHED, 0, 0, -1, 77, CLIENT, SERVER),
    ]
    evs += [ev(10 + i, Direction.EGRESS if i % 2 else Direction.INGRESS, HELLO, ssl=False) for i in range(6)]
    evs += [ev(100, Direction.EGRESS, REQ, ssl=True), ev(150, Direction.INGRESS, RESP, ssl=True)]
    tracker.handle(evs)
    [row] = rows(tracker)
    assert row["encrypted"] is True and row["trace_role"] == 1
    assert row["req_path"] == "/secret" and row["resp_body"] == "ok" and row["latency"] == 50
    assert tracker.stats.tls_conns == 1


def test_ciphertext_of_a_tls_connection_is_ignored(tracker: ConnTracker):
    tracker.handle(
        [
            ConnEvent(ConnKind.ACCEPT, 0, PID, 5, 0, None, CLIENT),
            ev(10, Direction.INGRESS, REQ, ssl=True),
            ev(11, Direction.INGRESS, APP_DATA, ssl=False),  # the same bytes, encrypted, seen by recvfrom
            ev(20, Direction.EGRESS, APP_DATA, ssl=False),
            ev(21, Direction.EGRESS, RESP, ssl=True),
            ConnEvent(ConnKind.CLOSE, 30, PID, 5, 0, None, None),
        ]
    )
    [row] = rows(tracker)
    assert row["encrypted"] is True and row["trace_role"] == 2 and row["resp_status"] == 200
    assert tracker.stats.ciphertext_ignored == 2 and tracker.stats.parse_errors == 0


def test_plain_connections_stay_unencrypted(tracker: ConnTracker):
    tracker.handle([ev(10, Direction.EGRESS, REQ, ssl=False, fd=7), ev(20, Direction.INGRESS, RESP, ssl=False, fd=7)])
    [row] = rows(tracker)
    assert row["encrypted"] is False and tracker.stats.tls_conns == 0


def test_conn_stats_counts_tls_connections_as_ssl(tracker: ConnTracker):
    tracker.handle(
        [
            ConnEvent(ConnKind.CONNECT, 0, PID, 5, 0, None, SERVER),
            ev(5, Direction.EGRESS, HELLO, ssl=False),
            ev(10, Direction.EGRESS, REQ, ssl=True),
            ev(20, Direction.INGRESS, RESP, ssl=True),
            ConnEvent(ConnKind.CLOSE, 30, PID, 5, 0, None, None),
        ]
    )
    tracker.tick(time.time_ns())
    stats = rows(tracker, "conn_stats")
    # Re-keyed twice (ssl once plaintext arrives, then HTTP once inferred): the keys it left hold zeros.
    counted = [r for r in stats if r["conn_open"] or r["conn_close"] or r["bytes_sent"]]
    assert len(counted) == 1 and counted[0]["ssl"] is True and counted[0]["protocol"] == 1, stats
    assert (counted[0]["conn_open"], counted[0]["conn_close"], counted[0]["bytes_sent"]) == (1, 1, len(HELLO + REQ))


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "3"),
        ("/opt/app/lib/libssl.so.1.1", "1.1"),
        ("/venv/site-packages/psycopg2_binary.libs/libssl-1a2b3c4d.so.1.1", "1.1"),
        ("/usr/lib/libssl.so.1.0.2", "1.0.2"),
        ("/usr/lib/x86_64-linux-gnu/libssl3.so", None),  # NSS, not OpenSSL
        ("/usr/lib/x86_64-linux-gnu/libssl.a", None),
    ],
)
def test_openssl_version_from_the_file_name(path: str, version: str | None):
    assert openssl_version(path) == version


def test_mapped_libssl_reads_a_process_maps(tmp_path: Path):
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "maps").write_text(
        "7f00-7f01 r--p 00000000 fe:00 339900   /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f01-7f02 r-xp 0001f000 fe:00 339900   /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
        "7f02-7f03 r--p 00000000 fe:00 339901   /usr/lib/x86_64-linux-gnu/libssl3.so\n"
        "7f03-7f04 r--p 00000000 fe:00 339902   /old/libssl.so.1.1 (deleted)\n"
        "7f04-7f05 r--p 00000000 00:00 0        [heap]\n"
    )
    assert mapped_libssl(42, str(tmp_path)) == ["/usr/lib/x86_64-linux-gnu/libssl.so.3"]
    assert mapped_libssl(43, str(tmp_path)) == []  # gone
