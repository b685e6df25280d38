"""Agent-side CPU per HTTP exchange, in process: ring records -> decoder -> ConnTracker -> Arrow.

The same work bench_agent_cpu measures end to end (minus the kernel), without nginx, wrk or eBPF, so a
change to the decoder, the tracker, the HTTP parser/stitcher or the Arrow flush can be measured (and
profiled: --profile) on its own. The records are what the BPF side emits for wrk -> nginx on loopback:
per exchange the client's write and read and the server's read and writev, on 64 keep-alive
connections, drained in batches of 400 records and flushed every 25 batches (the agent's 10 ms poll
and 250 ms flush at 10k req/s).

    .venv/bin/python -m tests.bench.bench_conn_tracker [--exchanges 40000] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import socket
import struct
import time

from cluster.pem.conn_tracker import ConnTracker
from cluster.pem.process_info import ProcessCache
from cluster.pem.sources.socket_events import EV_ACCEPT, EV_CONNECT, EV_DATA
from cluster.pem.sources.socket_tracer import F_INGRESS, HDR, SocketTracer
from cluster.store.table_store import TableStore

BODY = b'{"status":"ok","items":[1,2,3],"message":"' + b"x" * 200 + b'"}'
REQUEST = b"GET /api HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 22 Nov 2026 04:05:22 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n"
    b"Last-Modified: Sun, 22 Nov 2026 04:05:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6921b4ac-f5"\r\nAccept-Ranges: bytes\r\n\r\n' + BODY
)
CONNS = 64
BATCH = 400
FLUSH_EVERY = 25


def _record(
    etype: int, flags: int, syscall: int, ts: int, tgid: int, fd: int, data: bytes = b"", addr: bytes = b""
) -> bytes:
    hdr = HDR.pack(
        etype, flags, syscall, socket.AF_INET, 6, ts, 0x1000 + fd, tgid, tgid, fd, len(data), len(data), 0, addr, 0
    )
    return hdr + data


def records(exchanges: int) -> list[bytes]:
    """Ring records for `exchanges` requests over CONNS connections (the agent's own pid as both sides,
    so the process lookups hit /proc for a live process)."""
    pid = os.getpid()
    peer = struct.pack("<HH4s", socket.AF_INET, socket.htons(8080), socket.inet_aton("127.0.0.1")).ljust(28, b"\0")
    out = []
    ts = 1_000_000_000
    for c in range(CONNS):
        out.append(_record(EV_CONNECT, 2, 42, ts, pid, 100 + c, addr=peer))
        out.append(_record(EV_ACCEPT, 2, 288, ts, pid, 300 + c, addr=peer))
    for i in range(exchanges):
        c = i % CONNS
        ts += 10_000
        out.append(_record(EV_DATA, 0, 1, ts, pid, 100 + c, REQUEST))
        out.append(_record(EV_DATA, F_INGRESS, 0, ts + 1000, pid, 300 + c, REQUEST))
        out.append(_record(EV_DATA, 0, 20, ts + 2000, pid, 300 + c, RESPONSE))
        out.append(_record(EV_DATA, F_INGRESS, 0, ts + 3000, pid, 100 + c, RESPONSE))
    return out


def run(recs: list[bytes], exchanges: int) -> float:
    """CPU seconds for decoding and tracking `recs` and flushing the rows; checks the row count."""
    store = TableStore()
    tracker = ConnTracker(store, ProcessCache(asid=1), addr_lookup=lambda p, f: (None, None))
    tracer = SocketTracer(tracker.handle)
    views = [memoryview(r) for r in recs]
    t0 = time.process_time()  # CPU, not wall: the host is shared
    for n, start in enumerate(range(0, len(views), BATCH)):
        batch: list = []
        decode = tracer._make_decoder(batch)
        for v in views[start : start + BATCH]:
            decode(v)
        tracker.handle(batch)
        if n % FLUSH_EVERY == FLUSH_EVERY - 1:
            tracker.flush()
    tracker.flush()
    elapsed = time.process_time() - t0
    rows = tracker.stats.records.get("http_events", 0)
    assert rows == 2 * exchanges, (rows, exchanges, tracker.stats)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=40_000)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of one run instead")
    a = ap.parse_args()
    recs = records(a.exchanges)
    if a.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(recs, a.exchanges)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    best = min(run(recs, a.exchanges) for _ in range(5))
    print(
        f"{a.exchanges} exchanges (2 http_events rows each, {len(recs)} ring records): best of 5 "
        f"{best * 1e3:.0f} ms = {best * 1e6 / a.exchanges:.2f} us per exchange, "
        f"{best * 1e6 / (2 * a.exchanges):.2f} us per traced request (row)"
    )


if __name__ == "__main__":
    main()
