"""Socket tracer source connector: loads bpf/socket_trace.c, drains its ring buffer on a timer and
hands decoded DataEvent / ConnEvent lists to a sink.

Why a timer and not epoll: the BPF side writes with BPF_RB_NO_WAKEUP, because consumer wakeups
(cross-CPU IPIs) cost 2-8x the rest of the per-event work in this VM (ebpf-notes §2). Polling
every 10 ms keeps latency low and the ring (16 MiB) absorbs bursts between polls.

TLS: the same BPF object carries uprobes on OpenSSL's SSL_read/SSL_write (openssl_probes.py
attaches them per libssl file). Their plaintext arrives as DataEvents with ssl=True on the TLS
socket's (tgid, fd); the kernel drops that fd's ciphertext. PXTUI_ENABLE_TLS_TRACING=0 turns it off.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import logging
import os
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from cluster.pem.sources.bcc_loader import BpfUnavailable, kernel_headers_source, load_bpf, load_programs
from cluster.pem.sources.openssl_probes import OpenSSLProbes
from cluster.pem.sources.ringbuf import RingBufReader
from cluster.pem.sources.socket_events import (
    EV_ACCEPT,
    EV_CLOSE,
    EV_CONNECT,
    EV_DATA,
    EV_ESTABLISHED,
    ConnEvent,
    ConnKind,
    DataEvent,
    Direction,
    SockAddr,
)

log = logging.getLogger(__name__)

BPF_SOURCE = Path(os.environ.get("PXTUI_BPF_DIR", Path(__file__).resolve().parents[3] / "bpf")) / ("socket_trace.c")

# Must match struct hdr_t in bpf/socket_trace.c (80 bytes, no padding).
HDR = struct.Struct("<BBHHHQQIIiIII28sI")
HDR_SIZE = HDR.size
_HDR_FIXED = struct.Struct("<BBHHHQQIIiIII")  # without addr/extra: addr is sliced only when flagged
_ADDR_OFF = _HDR_FIXED.size
_ADDR_END = _ADDR_OFF + 28
F_INGRESS = 1
F_ADDR = 2
F_READ_FAIL = 4
F_SSL = 8
CNT_RING_FULL = 0
CNT_READ_FAIL = 1
CNT_ACTIVE_FULL = 2
CNT_SSL_NO_FD = 3
_N_COUNTERS = 4

RINGBUF_PAGES = 4096  # 16 MiB: ~100k events of 150 B between two 10 ms polls
MAX_MSG_LIMIT = 16384  # per-CPU array values are capped at 32 KiB (ebpf-notes §2, pitfall 3)
_BATCH = 65536  # records per sink call at most, so one call never holds an unbounded list

# Syscall ids carried in DataEvent.syscall / the header (x86_64 numbers, hard-coded in the C).
SYSCALL_NAMES: dict[int, str] = {
    0: "read",
    1: "write",
    3: "close",
    19: "readv",
    20: "writev",
    42: "connect",
    43: "accept",
    44: "sendto",
    45: "recvfrom",
    46: "sendmsg",
    47: "recvmsg",
    288: "accept4",
    299: "recvmmsg",
    307: "sendmmsg",
    # TLS plaintext events (pseudo ids, above every syscall number)
    1000: "SSL_read",
    1001: "SSL_write",
    1002: "SSL_read_ex",
    1003: "SSL_write_ex",
}

# IPPROTO_* (from the sock tracepoints) -> SOCK_* for DataEvent.sock_type.
_PROTO_TO_TYPE = {
    6: socket.SOCK_STREAM,  # TCP
    17: socket.SOCK_DGRAM,  # UDP
    136: socket.SOCK_DGRAM,  # UDP-Lite
    262: socket.SOCK_STREAM,  # MPTCP
}
_DIRECTIONS = (Direction.EGRESS, Direction.INGRESS)
_KIND_NAMES = {
    EV_DATA: "data",
    EV_CONNECT: "connect",
    EV_ACCEPT: "accept",
    EV_CLOSE: "close",
    EV_ESTABLISHED: "established",
}
_ADDR_CACHE_MAX = 4096
_BYTES_SLOT = 0
_SSL_SLOT = 6  # TLS plaintext data events (also counted as "data")
_PROBE_RE = re.compile(r"^PX_TP\((\w+),\s*(\w+)\)", re.M)

Event = DataEvent | ConnEvent
Sink = Callable[[list[Event]], None]


class SocketTracer:
    """Capture socket payloads and connection lifecycle of every process on the host.

    sink receives one list of events per drain, in ring order (per CPU, events are in syscall
    order; across CPUs the ring serialises them at commit time). All chunks of one syscall share
    ts_ns, so (tgid, tid, fd, ts_ns) groups them and `pos` orders them.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        max_msg_bytes: int = MAX_MSG_LIMIT,
        poll_interval_s: float = 0.01,
        exclude_tgids: Iterable[int] | None = None,
        ring_pages: int = RINGBUF_PAGES,
        tls: bool | None = None,
        tls_rescan_s: float = 10.0,
    ) -> None:
        """exclude_tgids defaults to this process: the agent must never trace its own traffic
        (it would feed back on itself). Pass () to trace everything.

        tls attaches the OpenSSL uprobes (default: unless PXTUI_ENABLE_TLS_TRACING=0); tls_rescan_s is
        how often new processes are scanned for libssl copies of their own (0: only at start)."""
        if max_msg_bytes < 16 or max_msg_bytes > MAX_MSG_LIMIT or max_msg_bytes & (max_msg_bytes - 1):
            raise ValueError(f"max_msg_bytes must be a power of two in [16, {MAX_MSG_LIMIT}], got {max_msg_bytes}")
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be > 0")
        if ring_pages < 1 or ring_pages & (ring_pages - 1):
            raise ValueError(f"ring_pages must be a power of two, got {ring_pages}")
        self.ring_pages = ring_pages
        self._sink = sink
        self.max_msg_bytes = max_msg_bytes
        self.poll_interval_s = poll_interval_s
        self._excluded: set[int] = {os.getpid()} if exclude_tgids is None else {int(t) for t in exclude_tgids}
        self._bpf: Any = None
        self._reader: RingBufReader | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._drain_lock = threading.Lock()
        self._probes: list[str] = []
        self._header_source: dict[str, Any] = kernel_headers_source()
        self._wall_offset_ns = 0
        # Indexed by the event type byte (1..5); slot 0 (no such type) accumulates payload bytes,
        # so the hot decoder updates a single list.
        self._counts = [0] * 8
        self._drains = 0
        self._sink_errors = 0
        self._last_sink_error: str | None = None
        self._compile_time_s = 0.0
        self._verify_time_s = 0.0
        self._attach_time_s = 0.0
        self._addr_cache: dict[bytes, SockAddr | None] = {}
        self._final_counters = [0] * _N_COUNTERS
        self.tls_enabled = os.environ.get("PXTUI_ENABLE_TLS_TRACING", "1") != "0" if tls is None else tls
        self.tls_rescan_s = tls_rescan_s
        self.tls: OpenSSLProbes | None = None
        self._tls_error: str | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Compile, load, fill the exclusion map, attach, then start the drain thread.

        Raises BpfUnavailable (with the verifier/compiler log when loading fails).
        """
        if self._bpf is not None:
            raise RuntimeError("SocketTracer already started")
        try:
            src = BPF_SOURCE.read_text()
        except OSError as exc:
            raise BpfUnavailable("no-source", f"cannot read {BPF_SOURCE}: {exc}") from exc
        t0 = time.monotonic()
        cflags = [f"-DMAX_MSG={self.max_msg_bytes}", f"-DRINGBUF_PAGES={self.ring_pages}"]
        b, _diag = load_bpf(src, cflags)
        self._bpf = b
        t1 = time.monotonic()
        try:
            excluded = b[b"excluded"]
            for tgid in self._excluded:
                excluded[ct.c_uint32(tgid)] = ct.c_uint8(1)
            ring = b[b"events"]
            self._reader = RingBufReader(ring.map_fd, self.ring_pages * os.sysconf("SC_PAGE_SIZE"))
            self._wall_offset_ns = time.time_ns() - time.monotonic_ns()
            # Verify everything first, then attach sock markers and exits before enters: an
            # enter without its exit would leave a stale `active` entry.
            probes = _PROBE_RE.findall(src)
            probes.sort(key=lambda p: ("sys_enter" in p[1], p))
            load_programs(b, [f"px__{cat}__{ev}" for cat, ev in probes], b.TRACEPOINT)
            t2 = time.monotonic()
            for cat, ev in probes:
                tp = f"{cat}:{ev}"
                try:
                    b.attach_tracepoint(tp=tp.encode(), fn_name=f"px__{cat}__{ev}".encode())
                except Exception as exc:
                    raise BpfUnavailable("attach-failed", f"{tp}: {exc}") from exc
                self._probes.append(tp)
            if self.tls_enabled:
                self._start_tls(b)
        except BaseException:
            self._teardown()
            raise
        self._compile_time_s = t1 - t0
        self._verify_time_s = t2 - t1
        self._attach_time_s = time.monotonic() - t2
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pxtui-socket-tracer", daemon=True)
        self._thread.start()

    def _start_tls(self, b: Any) -> None:
        """Attach the OpenSSL uprobes. A failure is reported in stats() and `pxtui status`, never
        fatal: syscall tracing goes on, only TLS plaintext is missing."""
        tls = OpenSSLProbes(b, rescan_interval_s=self.tls_rescan_s)
        try:
            tls.start()
        except Exception as exc:
            self._tls_error = str(exc)
            log.error("TLS tracing unavailable: %s", exc)
            tls.stop()
            return
        self.tls = tls

    def attach_tls(self) -> None:
        """Attach the OpenSSL uprobes to a running tracer (a no-op when attached)."""
        if self._bpf is None:
            raise RuntimeError("SocketTracer not started")
        if self.tls is None:
            self._tls_error = None
            self._start_tls(self._bpf)

    def detach_tls(self, *, forget_state: bool = True) -> None:
        """Detach the OpenSSL uprobes; syscall tracing goes on, and the ciphertext of TLS fds flows
        again (the tracker ignores it on connections it knows as TLS). For benchmarks and for turning
        TLS tracing off at run time."""
        tls, self.tls = self.tls, None
        if tls is not None:
            tls.stop()
        if tls is not None and forget_state and self._bpf is not None:
            # An SSL call cut off by the detach would leave its thread "in an SSL call", and TLS fds
            # would stay silent with no plaintext to replace them: forget both.
            for name in (b"ssl_calls", b"tls_fds", b"ssl_socks"):
                self._bpf[name].clear()

    def stop(self) -> None:
        """Detach the probes, drain what they produced, stop the thread and free the maps."""
        if self._bpf is None:
            return
        self.detach_tls(forget_state=False)  # the maps go with the program
        # Each detach waits for RCU grace periods (~70 ms); in parallel they overlap, which
        # halves stop() from ~1.9 s to ~0.9 s for 26 probes.
        with ThreadPoolExecutor(max_workers=len(self._probes) or 1) as pool:
            for tp, exc in zip(self._probes, pool.map(self._detach_one, self._probes), strict=True):
                if exc is not None:
                    log.warning("detaching %s failed: %s", tp, exc)
        self._probes.clear()
        self._final_counters = self._kernel_counters()  # keep loss visible after stop()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._teardown()

    def _detach_one(self, tp: str) -> Exception | None:
        try:
            self._bpf.detach_tracepoint(tp.encode())
        except Exception as exc:
            return exc
        return None

    def _teardown(self) -> None:
        with self._drain_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
        self._probes.clear()

    def __enter__(self) -> SocketTracer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- runtime control ----------------------------------------------------------------------

    def add_excluded_tgid(self, tgid: int) -> None:
        """Stop capturing a process (e.g. a helper the agent spawned); applies immediately."""
        self._excluded.add(int(tgid))
        if self._bpf is not None:
            self._bpf[b"excluded"][ct.c_uint32(tgid)] = ct.c_uint8(1)

    def remove_excluded_tgid(self, tgid: int) -> None:
        """Capture a previously excluded process again."""
        self._excluded.discard(int(tgid))
        if self._bpf is not None:
            with contextlib.suppress(KeyError):
                del self._bpf[b"excluded"][ct.c_uint32(tgid)]

    @property
    def excluded_tgids(self) -> frozenset[int]:
        return frozenset(self._excluded)

    def stats(self) -> dict[str, Any]:
        """Counters for the UI and tests. events_lost counts ring-full drops in the kernel."""
        counters = self._kernel_counters()
        c = self._counts
        return {
            "events_seen": {name: c[t] for t, name in _KIND_NAMES.items()},
            "events_lost": counters[CNT_RING_FULL],
            "read_failures": counters[CNT_READ_FAIL],
            "active_map_full": counters[CNT_ACTIVE_FULL],
            "bytes_seen": c[_BYTES_SLOT],
            "drains": self._drains,
            "sink_errors": self._sink_errors,
            "last_sink_error": self._last_sink_error,
            "ring_pending_bytes": self._reader.pending_bytes() if self._reader is not None else 0,
            "probes": list(self._probes) + self._tls_probes(),
            "tls": self._tls_stats(counters),
            "header_source": dict(self._header_source),
            "compile_time_s": round(self._compile_time_s, 3),
            "verify_time_s": round(self._verify_time_s, 3),
            "attach_time_s": round(self._attach_time_s, 3),
            "max_msg_bytes": self.max_msg_bytes,
            "running": self._thread is not None and self._thread.is_alive(),
        }

    def _tls_probes(self) -> list[str]:
        if self.tls is not None:
            return self.tls.probes()
        if self._tls_error is not None:
            return [f"uprobe:openssl: failed: {self._tls_error.splitlines()[0]}"]
        return []

    def _tls_stats(self, counters: list[int]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enabled": self.tls_enabled,
            "attached": self.tls is not None,
            "error": self._tls_error,
            "plaintext_events": self._counts[_SSL_SLOT],
            "unmapped_dropped": counters[CNT_SSL_NO_FD],
        }
        if self.tls is not None:
            out.update(self.tls.status())
        return out

    def _kernel_counters(self) -> list[int]:
        b = self._bpf
        if b is None:
            return list(self._final_counters)
        table = b[b"counters"]
        return [int(table.sum(ct.c_int(i)).value) for i in range(_N_COUNTERS)]

    # ---- draining -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_interval_s):
                self.drain_now()
            self.drain_now()  # probes are detached by now: pick up the tail
        except Exception:
            log.exception("socket tracer drain thread died")
            raise

    def drain_now(self) -> int:
        """Drain the ring once (all of it, in sink calls of at most _BATCH events); return count.

        Called by the drain thread; public so a test or a shutdown path can flush synchronously.
        """
        with self._drain_lock:
            return self._drain_locked()

    def _drain_locked(self) -> int:
        reader = self._reader
        if reader is None:
            return 0
        total = 0
        while True:
            batch: list[Event] = []
            n = reader.drain(self._make_decoder(batch), _BATCH)
            total += n
            if batch:
                try:
                    self._sink(batch)
                except Exception as exc:
                    self._sink_errors += 1
                    if self._last_sink_error is None:
                        log.exception("socket tracer sink failed (further failures are only counted)")
                    self._last_sink_error = repr(exc)
            if n < _BATCH:
                break
        self._drains += 1
        return total

    def _sockaddr(self, raw: memoryview) -> SockAddr | None:
        """Decode with a small cache: the same peers (DNS servers, upstreams) repeat constantly."""
        key = raw[:8].tobytes() if raw[0] == socket.AF_INET else raw[:24].tobytes()
        cache = self._addr_cache
        try:
            return cache[key]
        except KeyError:
            pass
        if len(cache) >= _ADDR_CACHE_MAX:
            cache.clear()
        sa = cache[key] = SockAddr.from_sockaddr(key)
        return sa

    def _make_decoder(self, batch: list[Event]) -> Callable[[memoryview], None]:
        """Build the per-record decoder for one drain, appending to `batch`.

        A closure over pre-bound locals, because this runs once per event (hundreds of thousands
        per second under load): every attribute or global lookup saved is measurable.
        """
        unpack = _HDR_FIXED.unpack_from
        append = batch.append
        counts = self._counts
        offset = self._wall_offset_ns
        sockaddr = self._sockaddr
        directions = _DIRECTIONS
        f_ssl = F_SSL
        sock_type = _PROTO_TO_TYPE.get
        data_event = DataEvent
        conn_event = ConnEvent
        established, connect, accept, close = (
            ConnKind.ESTABLISHED,
            ConnKind.CONNECT,
            ConnKind.ACCEPT,
            ConnKind.CLOSE,
        )

        def decode(rec: memoryview) -> None:
            etype, flags, syscall, family, proto, ts, sk, tgid, tid, fd, msg_size, buf_size, pos = unpack(rec)
            counts[etype & 7] += 1
            if etype == EV_DATA:
                counts[_BYTES_SLOT] += buf_size
                ssl = (flags & f_ssl) != 0
                if ssl:
                    counts[_SSL_SLOT] += 1
                append(
                    data_event(
                        ts + offset,
                        tgid,
                        tid,
                        fd,
                        sk,
                        directions[flags & F_INGRESS],
                        msg_size,
                        pos,
                        family,
                        sock_type(proto, 0),
                        syscall,
                        sockaddr(rec[_ADDR_OFF:_ADDR_END]) if flags & F_ADDR else None,
                        rec[HDR_SIZE : HDR_SIZE + buf_size].tobytes(),
                        ssl,
                    )
                )
            elif etype == EV_ESTABLISHED:
                # tgid 0: the state change runs in softirq context, the current task is unrelated.
                local = sockaddr(rec[_ADDR_OFF:_ADDR_END])
                append(conn_event(established, ts + offset, 0, -1, sk, local, sockaddr(rec[HDR_SIZE:])))
            elif etype == EV_CONNECT:
                append(conn_event(connect, ts + offset, tgid, fd, 0, None, sockaddr(rec[_ADDR_OFF:_ADDR_END])))
            elif etype == EV_ACCEPT:
                remote = sockaddr(rec[_ADDR_OFF:_ADDR_END]) if flags & F_ADDR else None
                append(conn_event(accept, ts + offset, tgid, fd, 0, None, remote))
            elif etype == EV_CLOSE:
                append(conn_event(close, ts + offset, tgid, fd, 0, None, None))

        return decode
