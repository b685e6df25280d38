"""tcp_stats: per-connection TCP counters (tcp_stats_events) and TCP trouble events (tcp_events.beta).

tcp_stats_events keeps Pixie's columns exactly (schemas.md 2.21): cumulative tx/rx payload bytes and
retransmits per connection, one row per connection every `stats_period_s` while its counters move,
plus a final row when it closes. Pixie's table has no room for resets or drops, so those (and each
retransmit) go to a second table, tcp_events.beta, one row per event with the kernel's reason:

  event           reason (from the running kernel's tracepoint formats)
  retransmit      ""
  send_reset      enum sk_rst_reason name (NOT_SPECIFIED, NO_SOCKET, TCP_ABORT_ON_DATA, ...)
  receive_reset   ""
  drop            enum skb_drop_reason name (NETFILTER_DROP, NO_SOCKET, TCP_CSUM, ...)

Attribution: the connecting process is known at SYN_SENT and every process that sends or receives
on a socket claims it, so most events carry their owner's upid even though retransmits and drops
fire in softirq context. A dropped packet names no socket; it is matched to a known connection by
its 4-tuple, which also says whether it was inbound or outbound (unmatched drops are taken as
inbound: the destination is local). Unattributed rows carry pid 0's upid.

Connections opened before the agent started get their 4-tuple only at their next state change or
retransmit; until then their rows are held back (no address to show).

Loss: ring-full drops, an overflowing connection map and failed skb reads are counted in the BPF
program and reported as events_lost.
"""

from __future__ import annotations

import ctypes as ct
import os
import socket
import struct
import time

import pyarrow as pa

from cluster import schemas
from cluster.pem.process_info import make_upid
from cluster.pem.sources.connector import ConnectorContext, ConnectorStatus
from cluster.pem.sources.kernel_btf import offsets
from cluster.pem.sources.procfs import batch, times_column
from cluster.pem.sources.tracepoint_program import TracepointProgram, symbolic_names, tracepoint_format

STATS_TABLE = "tcp_stats_events"
EVENTS_TABLE = "tcp_events.beta"
TCP_EVENTS = pa.schema(
    [schemas.TCP_STATS_EVENTS.field(i) for i in range(6)]  # time_, upid and the 4-tuple, as tcp_stats_events
    + [
        schemas.col("event", pa.string(), desc="retransmit, send_reset, receive_reset or drop"),
        schemas.col("reason", pa.string(), desc="enum sk_rst_reason for resets, enum skb_drop_reason for drops"),
        schemas.col("state", pa.string(), desc="TCP state of the socket when one is known (TCP_ESTABLISHED, ...)"),
    ]
)

EV_RETRANSMIT, EV_SEND_RESET, EV_RECEIVE_RESET, EV_DROP, EV_CLOSE = 1, 2, 3, 4, 5
EVENT_NAMES = {EV_RETRANSMIT: "retransmit", EV_SEND_RESET: "send_reset", EV_RECEIVE_RESET: "receive_reset",
               EV_DROP: "drop"}  # fmt: skip
CNT_RING_FULL, CNT_MAP_FULL, CNT_READ_FAIL = 0, 1, 2
AF_INET, AF_INET6 = socket.AF_INET, socket.AF_INET6
# struct tcp_event_t in bpf/tcp_stats.c
_EVENT = struct.Struct("<QQQQQIIiI16s16sHHHBB")
_MAX_OWNERS = 65536
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")

# include/net/tcp_states.h: the values have not changed since Linux 2.x, and the tracepoint formats
# print them by name only, so the numbers cannot be read from tracefs.
TCP_STATES = {
    1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT", 3: "TCP_SYN_RECV", 4: "TCP_FIN_WAIT1", 5: "TCP_FIN_WAIT2",
    6: "TCP_TIME_WAIT", 7: "TCP_CLOSE", 8: "TCP_CLOSE_WAIT", 9: "TCP_LAST_ACK", 10: "TCP_LISTEN",
    11: "TCP_CLOSING", 12: "TCP_NEW_SYN_RECV", 13: "TCP_BOUND_INACTIVE",
}  # fmt: skip

Tuple = tuple[int, str, int, str, int]  # family, local addr, local port, remote addr, remote port


class _Conn(ct.Structure):
    _fields_ = [
        ("tx", ct.c_uint64), ("rx", ct.c_uint64), ("start_ns", ct.c_uint64),
        ("retransmits", ct.c_uint32), ("tgid", ct.c_uint32),
        ("saddr", ct.c_uint8 * 16), ("daddr", ct.c_uint8 * 16), ("sport", ct.c_uint16), ("dport", ct.c_uint16),
        ("family", ct.c_uint16), ("pad", ct.c_uint16),
    ]  # fmt: skip


def _addr(family: int, raw: bytes) -> str:
    if family == AF_INET:
        return socket.inet_ntop(AF_INET, raw[:4])
    if family == AF_INET6:
        return socket.inet_ntop(AF_INET6, raw[:16])
    return "-"


class TcpStatsConnector:
    """SourceConnector for tcp_stats_events and tcp_events.beta."""

    name = "tcp_stats"

    def __init__(self, config: object = None, *, period_s: float = 0.25, stats_period_s: float = 5.0) -> None:
        self.period_s = period_s
        self.stats_period_s = stats_period_s
        self._ctx: ConnectorContext | None = None
        self._prog: TracepointProgram | None = None
        self._rst_reasons: dict[int, str] = {}
        self._drop_reasons: dict[int, str] = {}
        self._events: list[tuple[int, bytes, Tuple, str, str, str]] = []
        self._stats: list[tuple[int, bytes, Tuple, int, int, int]] = []
        self._last: dict[int, tuple[int, int, int]] = {}  # sk -> counters last emitted
        self._owners: dict[Tuple, tuple[int, int]] = {}  # 4-tuple -> (tgid, start_boottime ns)
        self._next_stats = 0.0
        self._final = [0, 0, 0]

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self, ctx: ConnectorContext) -> None:
        offs = offsets(
            {
                "SKB_HEAD_OFF": ("sk_buff", "head"),
                "SKB_NETWORK_HEADER_OFF": ("sk_buff", "network_header"),
                "SKB_TRANSPORT_HEADER_OFF": ("sk_buff", "transport_header"),
                "TASK_GROUP_LEADER_OFF": ("task_struct", "group_leader"),
                "TASK_START_BOOTTIME_OFF": ("task_struct", "start_boottime"),
            }
        )
        cflags = [f"-D{k}={v}" for k, v in offs.items()]
        kfree = tracepoint_format("skb", "kfree_skb")
        if not kfree:
            raise OSError("tracepoint skb:kfree_skb not found in tracefs: is tracefs mounted?")
        if "rx_sk" in kfree:
            cflags.append("-DHAVE_RX_SK")
        self._drop_reasons = symbolic_names(kfree, "reason")
        self._rst_reasons = symbolic_names(tracepoint_format("tcp", "tcp_send_reset"), "reason")
        prog = TracepointProgram("tcp_stats.c", cflags, {"tcp_events": 256})
        prog.start()
        self._prog = prog
        self._ctx = ctx
        ctx.store.create(STATS_TABLE, schemas.TCP_STATS_EVENTS)
        ctx.store.create(EVENTS_TABLE, TCP_EVENTS)
        self._next_stats = time.monotonic() + self.stats_period_s

    def stop(self) -> None:
        if self._prog is not None:
            self._prog.drain("tcp_events", self._on_event)
            self._collect_stats(time.time_ns())
            self._final = [self._prog.counter("counters", i) for i in range(3)]
            self._prog.stop()
            self._prog = None
        self._flush()
        self._ctx = None

    # ---- collection ----------------------------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        if self._ctx is None or self._prog is None:
            raise RuntimeError("tcp_stats ticked before start()")
        self._prog.drain("tcp_events", self._on_event)
        if time.monotonic() >= self._next_stats:
            self._next_stats = time.monotonic() + self.stats_period_s
            self._collect_stats(now_ns)
        self._flush()

    def flush_stats_now(self) -> None:
        """Emit the connections' counters without waiting for stats_period_s (tests, shutdown)."""
        self._next_stats = 0.0

    def _upid(self, owner: tuple[int, int]) -> bytes:
        """UPID of (tgid, start_boottime ns) as the kernel saw them, valid after the process exits."""
        assert self._ctx is not None
        tgid, start_ns = owner
        return make_upid(self._ctx.asid, tgid, start_ns // _NS_PER_TICK if tgid else 0)

    def _on_event(self, rec: memoryview) -> None:
        (ktime, sk, tx, rx, start_ns, retrans, tgid, state, reason, saddr, daddr, sport, dport, family, kind, _) = (
            _EVENT.unpack_from(rec)
        )
        assert self._prog is not None
        t = ktime + self._prog.wall_offset_ns
        src, dst = _addr(family, saddr), _addr(family, daddr)
        tup: Tuple = (family, src, sport, dst, dport)
        owner = (tgid, start_ns)
        if kind == EV_DROP:
            rev: Tuple = (family, dst, dport, src, sport)
            if tgid == 0 and tup in self._owners:  # an outbound packet of a known connection
                owner = self._owners[tup]
            else:
                tup = rev  # inbound: the destination is the local side
                owner = owner if tgid else self._owners.get(rev, (0, 0))
        elif family and tgid:
            self._remember(tup, owner)
        elif family:  # fired in softirq with no socket entry left (e.g. a reset after close)
            owner = self._owners.get(tup, owner)
        if kind == EV_CLOSE:
            last = self._last.pop(sk, None)
            if family and (tx, rx, retrans) != last:
                self._stats.append((t, self._upid(owner), tup, tx, rx, retrans))
            return
        if kind == EV_SEND_RESET:
            why = self._rst_reasons.get(reason, str(reason))
        elif kind == EV_DROP:
            why = self._drop_reasons.get(reason, str(reason))
        else:
            why = ""
        st = TCP_STATES.get(state, str(state)) if state else ""
        self._events.append((t, self._upid(owner), tup, EVENT_NAMES.get(kind, str(kind)), why, st))

    def _remember(self, tup: Tuple, owner: tuple[int, int]) -> None:
        """Keep 4-tuple -> owner past the close (resets and purge drops follow it), bounded."""
        self._owners.pop(tup, None)
        self._owners[tup] = owner
        if len(self._owners) > _MAX_OWNERS:
            for k in list(self._owners)[: _MAX_OWNERS // 4]:  # the oldest quarter
                del self._owners[k]

    def _collect_stats(self, now_ns: int) -> None:
        if self._prog is None or self._prog.bpf is None:
            return
        conns = self._prog.bpf[b"conns"]
        for k, v in conns.items():
            c = ct.cast(ct.pointer(v), ct.POINTER(_Conn)).contents
            if not c.family:
                continue  # opened before the agent: no 4-tuple yet
            sk = int(k.value)
            counters = (int(c.tx), int(c.rx), int(c.retransmits))
            if self._last.get(sk) == counters:
                continue
            self._last[sk] = counters
            tup: Tuple = (c.family, _addr(c.family, bytes(c.saddr)), c.sport, _addr(c.family, bytes(c.daddr)), c.dport)
            owner = (int(c.tgid), int(c.start_ns))
            if c.tgid:
                self._remember(tup, owner)
            self._stats.append((now_ns, self._upid(owner), tup, *counters))

    def _flush(self) -> None:
        if self._ctx is None:
            return
        if self._events:
            rows, self._events = self._events, []
            self._ctx.store.append(EVENTS_TABLE, self._batch(TCP_EVENTS, rows, ("event", "reason", "state")))
        if self._stats:
            rows2, self._stats = self._stats, []
            self._ctx.store.append(
                STATS_TABLE, self._batch(schemas.TCP_STATS_EVENTS, rows2, ("tx", "rx", "retransmits"))
            )

    @staticmethod
    def _batch(schema: pa.Schema, rows: list, tail: tuple[str, str, str]) -> pa.RecordBatch:
        rows.sort(key=lambda r: r[0])  # the store expects ascending time within the PEM's appends
        cols: dict[str, object] = {
            "time_": times_column([r[0] for r in rows]),
            "upid": [r[1] for r in rows],
            "local_addr": [r[2][1] for r in rows],
            "local_port": [r[2][2] for r in rows],
            "remote_addr": [r[2][3] for r in rows],
            "remote_port": [r[2][4] for r in rows],
        }
        for i, name in enumerate(tail):
            cols[name] = [r[3 + i] for r in rows]
        return batch(schema, cols)

    # ---- status --------------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        c = self._final if self._prog is None else [self._prog.counter("counters", i) for i in range(3)]
        return {
            "ring_full": c[CNT_RING_FULL],
            "conn_map_full": c[CNT_MAP_FULL],
            "kernel_read_failures": c[CNT_READ_FAIL],
        }

    def status(self) -> ConnectorStatus:
        c = self.counters()
        lost = sum(c.values())
        err = (
            f"{c['ring_full']} events lost to a full ring, {c['conn_map_full']} connections untracked (map full), "
            f"{c['kernel_read_failures']} kernel reads failed"
            if lost
            else ""
        )
        probes = self._prog.probes if self._prog is not None else []
        return ConnectorStatus(self.name, list(probes), lost, err)
