"""Per-connection state between the socket tracer and the protocol parsers.

Every event from the kernel lands here. A connection is (tgid, fd) while it lives; connect, accept
and close start and end it, as Pixie's conn trackers do. The tracker knows each connection's role
(client or server: from connect/accept, else inferred from who sends the first request), its
addresses (from the kernel's ESTABLISHED event keyed by sk, else a one-off pidfd lookup), and its
protocol (inferred from the first bytes in either direction, over the protocols enabled in
cluster.pem.protocols.registry). A connection of a known protocol buffers both directions in
DataStreams and hands them to that protocol's stitcher, which yields rows of its own table;
everything else only counts bytes, so unparsed traffic costs no memory.

Records are collected as rows and turned into one Arrow batch per table per flush: the per-row
Python here is the parser's, never the store's.

Datagram sockets (UDP: DNS) differ in two ways. An unconnected socket talks to many peers (a DNS
server's one socket answers every client), so each peer beyond the socket's first gets a connection of
its own, keyed (tgid, fd, addr, port): streams, stitching and remote_addr stay per peer. And a parser
must see where each datagram ends, so datagrams reach it behind a 2-byte big-endian length, the framing
DNS over TCP uses; a datagram left incomplete (a chunk not captured) is dropped when the next begins.

TLS: plaintext from the OpenSSL uprobes arrives as DataEvents with ssl=True on the socket's own
(tgid, fd). The first one makes the connection TLS: inference and parsing start afresh on plaintext
(whatever was seen before was handshake ciphertext), its rows say encrypted = true and its conn_stats
row ssl = true; ciphertext still reaching user space afterwards is ignored (the kernel drops it).

A connection that stops parsing is reset, so that it neither buffers nor scans bytes for nothing nor
stays pinned to a protocol it does not speak. Its parse failures are counted from its last record:
each parse error its stitcher reports, each time one of its streams hits its byte bound (the parser
held that much without consuming it) and each exception the last-resort guard caught. It is reset
when they reach ``max_parse_failures``, or when, after at least one failure, ``stall_bytes`` more
bytes arrived without a record (a parser that resynchronised by skipping everything: HTTP counts one
error per run of garbage, however long). A record clears both counts. A reset drops both streams and
the stitcher, counts ``conns_reset`` (shown by `pxtui status`) and runs protocol inference again on
the next bytes, as if the connection had just been seen; its conn_stats row moves to protocol
unknown until then. After ``_MAX_RESETS`` resets the connection is marked untraceable: no more
inference, only its bytes are counted. Capture gaps are not failures by themselves (the kernel lost
the bytes, not the parser), only the parse errors they cause are.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cluster import schemas
from cluster.pem import sock_lookup
from cluster.pem.data_stream import DataStream
from cluster.pem.process_info import ProcessCache
from cluster.pem.protocols.http.infer import role_for
from cluster.pem.protocols.registry import PROTOCOLS, ProtocolSpec, Stitcher, enabled_protocols
from cluster.pem.sources.socket_events import (
    ConnEvent,
    ConnKind,
    DataEvent,
    Direction,
    SockAddr,
)
from cluster.store.table_store import TableStore

# How many data events may pass before a connection that never looked like a known protocol stops
# being sniffed.
_INFER_ATTEMPTS = 4
_PREFIX_COLS = 8  # time_ .. encrypted: the connection prefix every protocol table starts with
# A read this small may be a length header read on its own (libmysqlclient reads MySQL's 4-byte
# packet header, then the payload): it is kept and inferred together with the next read.
_HEADER_MAX = 8
# Peers of one datagram socket tracked as connections of their own at most; the oldest is closed.
_MAX_DGRAM_PEERS = 1024
# Parse failures since a connection's last record that reset it (see the module docstring).
MAX_PARSE_FAILURES = 8
# Resets after which a connection is not inferred again (it only counts bytes).
_MAX_RESETS = 2


@dataclass
class TrackerStats:
    data_events: int = 0
    conn_events: int = 0
    records: dict[str, int] = field(default_factory=dict)
    parse_errors: int = 0
    unmatched_responses: int = 0
    stream_overflows: int = 0
    conns_opened: int = 0
    conns_closed: int = 0
    addr_lookups: int = 0
    tls_conns: int = 0  # connections that turned out to be TLS (plaintext seen)
    ciphertext_ignored: int = 0  # data events of TLS connections from the syscalls, not the TLS library
    conns_reset: int = 0  # connections whose parser kept failing: streams and stitcher dropped, re-inferred
    conns_untraceable: int = 0  # connections reset _MAX_RESETS times: no longer inferred or parsed


@dataclass(slots=True)
class _Conn:
    tgid: int
    fd: int
    upid: bytes
    role: int = schemas.ROLE_UNKNOWN
    local: SockAddr | None = None
    remote: SockAddr | None = None
    sk: int = 0
    protocol: int = schemas.PROTOCOL_UNKNOWN
    infer_left: int = _INFER_ATTEMPTS
    head: bytes = b""  # a small first read kept for inference (see _HEADER_MAX)
    head_ts: int = 0
    head_egress: bool = False
    egress: DataStream | None = None
    ingress: DataStream | None = None
    spec: ProtocolSpec | None = None
    stitcher: Stitcher | None = None
    bytes_sent: int = 0
    bytes_recv: int = 0
    last_ns: int = 0
    counted_open: bool = False
    tls: bool = False  # plaintext comes from a TLS library; the syscalls' bytes are ciphertext
    # (end of the bytes captured, bytes moved) of the last syscall per direction, to see capture gaps
    egress_sys: tuple[int, int] = (0, 0)
    ingress_sys: tuple[int, int] = (0, 0)
    # parse failures and bytes parsed since the last record, stream overflows seen, resets so far
    failures: int = 0
    stalled_bytes: int = 0
    overflows: int = 0
    resets: int = 0
    unparsed: int = 0  # directions (1 egress, 2 ingress) appended to since the last parse, see _parse_unparsed


_StatsKey = tuple[bytes, str, int, int, int, int, bool]  # upid, raddr, rport, role, protocol, family, ssl


@dataclass(slots=True)
class _ConnStatsRow:
    conn_open: int = 0
    conn_close: int = 0
    bytes_sent: int = 0
    bytes_recv: int = 0
    dirty: bool = True


def _family_code(family: int | None) -> int:
    if family == socket.AF_INET:
        return schemas.FAMILY_IPV4
    if family == socket.AF_INET6:
        return schemas.FAMILY_IPV6
    return schemas.FAMILY_UNSPECIFIED


class ConnTracker:
    """The socket tracer's sink. Thread-safe: `handle` runs on the drain thread, `flush`/`tick` on the
    PEM's housekeeping thread."""

    def __init__(
        self,
        store: TableStore,
        processes: ProcessCache,
        *,
        body_cap: int = 512,
        stream_max_bytes: int = 1 << 20,
        conn_stats_period_s: float = 10.0,
        idle_timeout_s: float = 300.0,
        max_parse_failures: int = MAX_PARSE_FAILURES,
        stall_bytes: int | None = None,
        clock: Callable[[], int] = time.time_ns,
        addr_lookup: Callable[[int, int], tuple[SockAddr | None, SockAddr | None]] = sock_lookup.lookup,
        protocols: Iterable[ProtocolSpec] | None = None,
    ):
        self.store = store
        self.processes = processes
        self.body_cap = body_cap
        self.stream_max_bytes = stream_max_bytes
        self.max_parse_failures = max_parse_failures
        self.stall_bytes = stream_max_bytes if stall_bytes is None else stall_bytes
        self.conn_stats_period_ns = int(conn_stats_period_s * 1e9)
        self.idle_timeout_ns = int(idle_timeout_s * 1e9)
        self.clock = clock
        self.addr_lookup = addr_lookup
        self.stats = TrackerStats()
        self._conns: dict[tuple, _Conn] = {}  # (tgid, fd), or (tgid, fd, addr, port) for datagram peers
        self._dgram_peers: dict[tuple[int, int], dict[tuple, None]] = {}  # (tgid, fd) -> its peer keys
        self._sk_addrs: dict[int, tuple[SockAddr, SockAddr]] = {}
        self.protocols = tuple(enabled_protocols() if protocols is None else protocols)
        # Every protocol's table exists (empty when disabled), so scripts reading it still compile.
        self._schemas = {p.table: schemas.TABLES[p.table].schema for p in PROTOCOLS}
        # record dict -> its protocol columns as a tuple, in one C call per row
        self._columns = {t: _row_getter(s.names[_PREFIX_COLS:]) for t, s in self._schemas.items()}
        self._pending: dict[str, list[tuple]] = {t: [] for t in self._schemas}
        self._unparsed: list[_Conn] = []  # connections with bytes not parsed yet, in this batch
        self._conn_stats: dict[_StatsKey, _ConnStatsRow] = {}
        self._last_conn_stats_ns = clock()
        self._lock = threading.Lock()
        for table, schema in self._schemas.items():
            store.create(table, schema)
        store.create("conn_stats", schemas.CONN_STATS)

    # ---- events -------------------------------------------------------------------------
    def handle(self, events: Iterable[DataEvent | ConnEvent]) -> None:
        with self._lock:
            for ev in events:
                if type(ev) is DataEvent:
                    self._on_data(ev)
                else:
                    self._on_conn(ev)  # type: ignore[arg-type]
            self._parse_unparsed()

    def _parse_unparsed(self) -> None:
        """Parse each connection that got bytes in this batch once, not once per event: a request and
        its response usually arrive in the same drain, and a parse that can only find the request costs
        as much as the one that stitches the pair."""
        todo = self._unparsed
        if not todo:
            return
        self._unparsed = []
        for conn in todo:
            if conn.unparsed and conn.stitcher is not None:
                self._parse(conn)

    @staticmethod
    def _must_parse_first(conn: _Conn, ev: DataEvent, dgram: bool) -> bool:
        """Must ``conn``'s unparsed bytes be parsed before ``ev`` is taken? Yes whenever taking it may
        depend on what that parse does (reset, addresses, TLS switch, a capture gap's clear, a stream
        overflow), so deferring stays invisible: only a request syscall followed by a response syscall
        (each maybe in several chunks) is parsed together, which the stitcher then sees in the order a
        parse per syscall would have shown it (a response may set state its next request needs: MySQL's
        prepared statements)."""
        if dgram or conn.failures or conn.sk != ev.sk or (ev.ssl and not conn.tls):
            return True
        egress = ev.direction is Direction.EGRESS
        end, size = conn.egress_sys if egress else conn.ingress_sys
        if ev.pos == 0:
            # a response (of the server's egress, the client's ingress) may join unparsed request bytes only
            responds = egress == (conn.role == schemas.ROLE_SERVER) and conn.role != schemas.ROLE_UNKNOWN
            if end < size or conn.unparsed & ((1 if egress else 2) if responds else 3):
                return True
        elif size > 0 and ev.pos != end:  # _capture_gap will clear the stream
            return True
        stream = conn.egress if egress else conn.ingress
        return stream is not None and len(stream) + len(ev.data) > stream.max_bytes

    def _on_conn(self, ev: ConnEvent) -> None:
        self.stats.conn_events += 1
        if ev.kind is ConnKind.ESTABLISHED:
            if ev.local is not None and ev.remote is not None:
                self._sk_addrs[ev.sk] = (ev.local, ev.remote)
                if len(self._sk_addrs) > 65536:  # sockets whose data we never saw
                    self._sk_addrs.pop(next(iter(self._sk_addrs)))
            return
        key = (ev.tgid, ev.fd)
        if self._dgram_peers:
            self._close_peers(key, ev.ts_ns)
        if ev.kind is ConnKind.CLOSE:
            conn = self._conns.pop(key, None)
            if conn is not None:
                self._close(conn, ev.ts_ns)
            return
        old = self._conns.pop(key, None)  # the fd was reused: the old connection ended unseen
        if old is not None:
            self._close(old, ev.ts_ns)
        info = self.processes.refresh(ev.tgid)
        conn = _Conn(ev.tgid, ev.fd, info.upid, last_ns=ev.ts_ns)
        conn.role = schemas.ROLE_CLIENT if ev.kind is ConnKind.CONNECT else schemas.ROLE_SERVER
        conn.remote = ev.remote
        conn.local = ev.local
        self._conns[key] = conn
        self._count_open(conn)

    def _new_conn_from_data(self, ev: DataEvent) -> _Conn:
        info = self.processes.lookup(ev.tgid)
        conn = _Conn(ev.tgid, ev.fd, info.upid, last_ns=ev.ts_ns)
        self._conns[(ev.tgid, ev.fd)] = conn
        return conn

    def _datagram_conn(self, base: _Conn | None, ev: DataEvent, peer: SockAddr) -> _Conn:
        """The connection of one peer of a datagram socket: the socket's own while the peer is its
        first (or connect()ed) one, else a connection of the peer's own (see the module docstring)."""
        if base is None:
            return self._new_conn_from_data(ev)
        r = base.remote
        if r is None or (r.addr == peer.addr and r.port == peer.port):
            base.remote = r or peer
            return base
        key = (ev.tgid, ev.fd, peer.addr, peer.port)
        conn = self._conns.get(key)
        if conn is None:
            peers = self._dgram_peers.setdefault((ev.tgid, ev.fd), {})
            if len(peers) >= _MAX_DGRAM_PEERS:
                oldest = next(iter(peers))
                del peers[oldest]
                old = self._conns.pop(oldest, None)
                if old is not None:
                    self._close(old, ev.ts_ns)
            conn = _Conn(ev.tgid, ev.fd, base.upid, local=base.local, remote=peer, sk=ev.sk, last_ns=ev.ts_ns)
            self._conns[key] = conn
            peers[key] = None
        return conn

    def _close_peers(self, key: tuple[int, int], ts_ns: int) -> None:
        for peer_key in self._dgram_peers.pop(key, ()):
            conn = self._conns.pop(peer_key, None)
            if conn is not None:
                self._close(conn, ts_ns)

    def _resolve_addrs(self, conn: _Conn, ev: DataEvent) -> None:
        conn.sk = ev.sk
        addrs = self._sk_addrs.pop(ev.sk, None)
        if addrs is not None:
            conn.local, conn.remote = addrs
        elif conn.local is None or conn.remote is None:
            self.stats.addr_lookups += 1
            local, remote = self.addr_lookup(ev.tgid, ev.fd)
            conn.local = conn.local or local
            conn.remote = conn.remote or remote or ev.addr

    def _on_data(self, ev: DataEvent) -> None:
        self.stats.data_events += 1
        conn = self._conns.get((ev.tgid, ev.fd))
        dgram = ev.sock_type == socket.SOCK_DGRAM
        if dgram and ev.addr is not None:
            conn = self._datagram_conn(conn, ev, ev.addr)
        elif conn is None:
            conn = self._new_conn_from_data(ev)
        if conn.unparsed and self._must_parse_first(conn, ev, dgram):
            self._parse(conn)
        if ev.ssl:
            if not conn.tls:
                self._start_tls(conn)
        elif conn.tls:
            self.stats.ciphertext_ignored += 1
            return
        if conn.sk != ev.sk:
            self._resolve_addrs(conn, ev)
        conn.last_ns = ev.ts_ns
        egress = ev.direction is Direction.EGRESS
        if ev.pos == 0:  # a syscall split into chunks or iovecs counts its bytes once
            if egress:
                conn.bytes_sent += ev.msg_size
            else:
                conn.bytes_recv += ev.msg_size
        # pos > 0 only to finish a kept header: writev([length, message]) is one message.
        if (
            conn.protocol == schemas.PROTOCOL_UNKNOWN
            and conn.infer_left > 0
            and (ev.pos == 0 or (conn.head and conn.head_egress == egress and ev.pos == len(conn.head)))
        ):
            self._infer(conn, ev, egress)
        if conn.stitcher is not None and conn.egress is not None and conn.ingress is not None:
            stream = conn.egress if egress else conn.ingress
            if dgram and ev.pos == 0:
                if len(stream):  # the previous datagram was not captured whole
                    stream.clear()
                stream.append(ev.ts_ns, min(ev.msg_size, 0xFFFF).to_bytes(2, "big"))
            elif not dgram and _capture_gap(conn, egress, ev):
                stream.clear()  # bytes between were not captured: the parser resynchronises
            stream.append(ev.ts_ns, ev.data)
            conn.stalled_bytes += len(ev.data)
            if dgram:
                self._parse(conn)
            else:
                if not conn.unparsed:
                    self._unparsed.append(conn)
                conn.unparsed |= 1 if egress else 2
        if not conn.counted_open:
            self._count_open(conn)

    def _start_tls(self, conn: _Conn) -> None:
        """The first plaintext of a TLS connection: forget what the ciphertext looked like and
        re-key its conn_stats row to ssl = true."""
        self.stats.tls_conns += 1
        old_key = self._stats_key(conn) if conn.counted_open else None
        conn.tls = True
        self._forget_protocol(conn)
        if old_key is not None:
            old = self._conn_stats.get(old_key)
            if old is not None:
                old.conn_open -= 1
                old.dirty = True
            self._stats_row(conn).conn_open += 1

    @staticmethod
    def _forget_protocol(conn: _Conn) -> None:
        """Drop the streams, the stitcher and the protocol: inference starts afresh on the next bytes."""
        conn.protocol = schemas.PROTOCOL_UNKNOWN
        conn.spec = conn.stitcher = conn.egress = conn.ingress = None
        conn.infer_left = _INFER_ATTEMPTS
        conn.head = b""
        conn.failures = conn.stalled_bytes = conn.overflows = 0

    def _reset(self, conn: _Conn) -> None:
        """The connection stopped parsing (module docstring): start it afresh, or give up on it."""
        assert conn.egress is not None and conn.ingress is not None
        self.stats.stream_overflows += conn.egress.overflows + conn.ingress.overflows
        self.stats.conns_reset += 1
        old = self._stats_row(conn) if conn.counted_open else None
        self._forget_protocol(conn)
        conn.resets += 1
        if conn.resets >= _MAX_RESETS:
            conn.infer_left = 0  # untraceable: only its bytes are counted from now on
            self.stats.conns_untraceable += 1
        if old is not None:
            old.conn_open -= 1
            old.dirty = True
            self._stats_row(conn).conn_open += 1

    def _infer(self, conn: _Conn, ev: DataEvent, egress: bool) -> None:
        conn.infer_left -= 1
        head, head_ts = (conn.head, conn.head_ts) if conn.head and conn.head_egress == egress else (b"", 0)
        conn.head = b""
        data = head + bytes(ev.data) if head else ev.data
        for spec in self.protocols:
            kind = spec.infer(data)
            if kind is not None:
                break
        else:
            # Headers may come a byte at a time (dnsmasq reads DNS-over-TCP's 2-byte length so).
            if len(data) <= _HEADER_MAX and ev.sock_type != socket.SOCK_DGRAM:
                conn.head, conn.head_ts, conn.head_egress = bytes(data), head_ts or ev.ts_ns, egress
                conn.infer_left += 1  # a bare header does not use up an attempt
            return
        if conn.role == schemas.ROLE_UNKNOWN:
            conn.role = role_for(kind, egress)
        # A conn seen first mid-stream may start with a response; parsing starts at the next request.
        conn.protocol = spec.code
        conn.spec = spec
        conn.egress = DataStream(max_bytes=self.stream_max_bytes)
        conn.ingress = DataStream(max_bytes=self.stream_max_bytes)
        conn.stitcher = spec.new_stitcher(self.body_cap)
        if head:
            (conn.egress if egress else conn.ingress).append(head_ts, head)
        if conn.counted_open:
            # Re-key the connection's conn_stats row now that its protocol is known.
            self._move_stats_protocol(conn)

    def _parse(self, conn: _Conn, closing: bool = False) -> None:
        conn.unparsed = 0
        st = conn.stitcher
        assert st is not None and conn.spec is not None and conn.egress is not None and conn.ingress is not None
        before_err, before_unm = st.parse_errors, st.unmatched_responses
        try:
            if closing:
                records = st.on_close(conn.role, conn.egress, conn.ingress)
            else:
                records = st.process(conn.role, conn.egress, conn.ingress)
        except Exception:  # last resort (stitchers guard themselves): count it, start the conn afresh
            self.stats.parse_errors += 1
            conn.failures += 1
            if conn.failures >= self.max_parse_failures and not closing:
                self._reset(conn)
                return
            self.stats.stream_overflows += conn.egress.overflows + conn.ingress.overflows
            conn.egress = DataStream(max_bytes=self.stream_max_bytes)
            conn.ingress = DataStream(max_bytes=self.stream_max_bytes)
            conn.overflows = 0
            conn.stitcher = conn.spec.new_stitcher(self.body_cap)
            return
        errors = st.parse_errors - before_err
        self.stats.parse_errors += errors
        self.stats.unmatched_responses += st.unmatched_responses - before_unm
        if not records:
            # cheap test first: most calls without records just wait for the other side's bytes
            if not closing and (
                errors or conn.failures or conn.egress.overflows + conn.ingress.overflows != conn.overflows
            ):
                self._check_stalled(conn, errors)
            return
        conn.failures = conn.stalled_bytes = 0
        conn.overflows = conn.egress.overflows + conn.ingress.overflows
        prefix = (
            conn.upid,
            conn.remote.addr if conn.remote else "-",
            conn.remote.port if conn.remote else -1,
            conn.local.addr if conn.local else "-",
            conn.local.port if conn.local else -1,
            conn.role,
            conn.tls,
        )
        table = conn.spec.table
        cols = self._columns[table]
        out = self._pending[table]
        for r in records:
            out.append((r["time_"], *prefix, *cols(r)))

    def _check_stalled(self, conn: _Conn, errors: int) -> None:
        """Count this parse's failures (errors, streams that hit their bound) and reset the connection
        past the bounds of the module docstring."""
        assert conn.egress is not None and conn.ingress is not None
        overflows = conn.egress.overflows + conn.ingress.overflows
        if not conn.failures:
            conn.stalled_bytes = 0  # bytes without a record count from the first failure on
        conn.failures += errors + overflows - conn.overflows
        conn.overflows = overflows
        if conn.failures and (conn.failures >= self.max_parse_failures or conn.stalled_bytes >= self.stall_bytes):
            self._reset(conn)

    def _close(self, conn: _Conn, ts_ns: int) -> None:
        if conn.stitcher is not None:
            self._parse(conn, closing=True)
            assert conn.egress is not None and conn.ingress is not None
            self.stats.stream_overflows += conn.egress.overflows + conn.ingress.overflows
        if conn.counted_open:
            row = self._stats_row(conn)
            row.conn_close += 1
            row.bytes_sent += conn.bytes_sent
            row.bytes_recv += conn.bytes_recv
            row.dirty = True
        self.stats.conns_closed += 1

    # ---- conn_stats ----------------------------------------------------------------------
    def _stats_key(self, conn: _Conn) -> _StatsKey:
        r = conn.remote
        return (
            conn.upid,
            r.addr if r else "-",
            r.port if r else -1,
            conn.role,
            conn.protocol,
            _family_code(r.family if r else None),
            conn.tls,
        )

    def _stats_row(self, conn: _Conn) -> _ConnStatsRow:
        key = self._stats_key(conn)
        row = self._conn_stats.get(key)
        if row is None:
            row = self._conn_stats[key] = _ConnStatsRow()
        return row

    def _count_open(self, conn: _Conn) -> None:
        conn.counted_open = True
        self.stats.conns_opened += 1
        self._stats_row(conn).conn_open += 1

    def _move_stats_protocol(self, conn: _Conn) -> None:
        saved = conn.protocol
        conn.protocol = schemas.PROTOCOL_UNKNOWN
        old = self._stats_row(conn)
        conn.protocol = saved
        old.conn_open -= 1
        old.dirty = True
        self._stats_row(conn).conn_open += 1

    def _conn_stats_batch(self, now_ns: int) -> pa.RecordBatch | None:
        # Live connections contribute their bytes so far; closed ones were folded into the rows.
        live: dict[_StatsKey, tuple[int, int, int]] = {}
        for conn in self._conns.values():
            if not conn.counted_open:
                continue
            k = self._stats_key(conn)
            a, s, r = live.get(k, (0, 0, 0))
            live[k] = (a + 1, s + conn.bytes_sent, r + conn.bytes_recv)
        rows = []
        for key, row in self._conn_stats.items():
            active, sent, recv = live.get(key, (0, 0, 0))
            if not (row.dirty or active):
                continue
            row.dirty = False
            upid, raddr, rport, role, proto, fam, ssl = key
            rows.append((now_ns, upid, raddr, rport, role, fam, proto, ssl,
                         row.conn_open, row.conn_close, active,
                         row.bytes_sent + sent, row.bytes_recv + recv))  # fmt: skip
        if not rows:
            return None
        return _rows_to_batch(schemas.CONN_STATS, rows)

    # ---- housekeeping ----------------------------------------------------------------------
    def flush(self) -> None:
        """Move pending records into the store as one Arrow batch per table."""
        with self._lock:
            pending = {t: rows for t, rows in self._pending.items() if rows}
            for table in pending:
                self._pending[table] = []
        for table, rows in pending.items():
            batch = _rows_to_batch(self._schemas[table], rows)
            if batch.num_rows > 1:
                batch = batch.take(pc.sort_indices(batch, [("time_", "ascending")]))
            self.store.append(table, batch)
            self.stats.records[table] = self.stats.records.get(table, 0) + len(rows)

    def tick(self, now_ns: int | None = None) -> None:
        """Flush records; every conn_stats period, emit conn_stats and forget idle connections."""
        now_ns = self.clock() if now_ns is None else now_ns
        self.flush()
        if now_ns - self._last_conn_stats_ns < self.conn_stats_period_ns:
            return
        self._last_conn_stats_ns = now_ns
        with self._lock:
            for key, conn in list(self._conns.items()):
                if now_ns - conn.last_ns > self.idle_timeout_ns:
                    del self._conns[key]
                    if len(key) == 4:
                        self._dgram_peers.get(key[:2], {}).pop(key, None)
                    self._close(conn, now_ns)
            batch = self._conn_stats_batch(now_ns)
        if batch is not None:
            self.store.append("conn_stats", batch)
            self.stats.records["conn_stats"] = self.stats.records.get("conn_stats", 0) + batch.num_rows
        self.flush()

    def active_connections(self) -> int:
        return len(self._conns)


def _capture_gap(conn: _Conn, egress: bool, ev: DataEvent) -> bool:
    """Were bytes of this direction lost just before ``ev``? The kernel side copies a bounded number
    of iovecs and bytes per syscall (gRPC's C core writes one iovec per HPACK literal), so a syscall
    may be captured short: its last captured byte ends before its return value, or the next event of
    the same syscall starts past it. Spliced bytes would desynchronise a framed protocol silently."""
    end, size = conn.egress_sys if egress else conn.ingress_sys
    n = len(ev.data)
    if ev.pos == 0:
        gap = end < size
        state = (n, ev.msg_size)
    else:
        gap = size > 0 and ev.pos != end
        state = (ev.pos + n, size or ev.msg_size)
    if egress:
        conn.egress_sys = state
    else:
        conn.ingress_sys = state
    return gap


def _row_getter(columns: list[str]) -> Callable[[dict[str, Any]], tuple]:
    """itemgetter over ``columns`` that always returns a tuple (itemgetter of one name does not)."""
    if len(columns) == 1:
        name = columns[0]
        return lambda r: (r[name],)
    return itemgetter(*columns)


def _rows_to_batch(schema: pa.Schema, rows: list[tuple]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
