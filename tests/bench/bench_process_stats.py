"""Cost of one process_stats collection with 1,000 extra processes on the host.

Spawns 1,000 `sleep` processes, then times ProcessStatsConnector.collect() (list /proc, read stat
and io of every process, parse, build one Arrow batch). The baseline, measured in the same run over
the same processes, is the floor any /proc reader pays: open, read and close the same two files per
process with no parsing and no Arrow. Best of 7 runs each, so the figure is the collector's cost and
not other processes' noise on a shared host. Needs root (other processes' /proc/<pid>/io).

    sudo .venv/bin/python -m tests.bench.bench_process_stats
"""

from __future__ import annotations

import os
import subprocess
import time

from cluster.pem.process_info import ProcessCache
from cluster.pem.sources.connector import ConnectorContext
from cluster.pem.sources.process_stats import ProcessStatsConnector
from cluster.store.table_store import TableStore

SLEEPERS = 1000
RUNS = 7


def raw_reads() -> int:
    """The floor: the same syscalls as a collection, nothing else."""
    n = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        for f in ("stat", "io"):
            try:
                fd = os.open(f"/proc/{name}/{f}", os.O_RDONLY)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            finally:
                os.close(fd)
        n += 1
    return n


def best(fn: object, runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: process_stats reads every process's /proc/<pid>/io")
    store = TableStore()
    conn = ProcessStatsConnector()
    conn.start(ConnectorContext(store, ProcessCache(1), 1, os.getpid()))
    sleepers = [subprocess.Popen(["sleep", "600"]) for _ in range(SLEEPERS)]
    try:
        conn.collect(time.time_ns())  # warm-up
        procs = conn.last_rows
        floor = best(raw_reads)
        cost = best(lambda: conn.collect(time.time_ns()))
        rows = conn.last_rows
        print(f"processes on the host: {procs} ({SLEEPERS} sleepers spawned); rows per collection: {rows}")
        print(f"baseline (open+read+close stat and io, no parsing): {floor * 1e3:7.2f} ms")
        print(
            f"process_stats collect() -> Arrow batch:              {cost * 1e3:7.2f} ms  "
            f"({cost / rows * 1e6:.1f} us/process, {cost / floor:.2f}x baseline)"
        )
        print(f"share of one core at the 1 s period: {cost * 100:.1f}%")
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()


if __name__ == "__main__":
    main()
