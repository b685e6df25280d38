"""process_stats: every process's CPU, memory, fault and IO counters from /proc, every second.

Pixie's columns (schemas.md 2.14), from two files per process:
  /proc/<pid>/stat  minflt, majflt, utime, stime (clock ticks -> ns), num_threads, vsize, rss (pages)
  /proc/<pid>/io    rchar, wchar, read_bytes, write_bytes (syscr/syscw and context switches exist in
                    /proc too, but Pixie's table has no columns for them, and scripts rely on its shape)
The UPID is built from the stat file just read (its start time), not through the process cache, so
a collection never reads comm/cmdline/cgroup of a thousand processes; the metadata resolves those
lazily for the upids a query actually shows.

Loss: a process whose files exist but cannot be read (not root, a kernel without task IO
accounting) is counted in events_lost and named in status(); a process that exits between the
listing and the read is not loss.
"""

from __future__ import annotations

import os
import time

import pyarrow as pa

from cluster import schemas
from cluster.pem.process_info import make_upid
from cluster.pem.sources.connector import ConnectorContext, ConnectorStatus
from cluster.pem.sources.procfs import ProcReadError, batch, list_pids, read_bytes, stat_fields, time_column

TABLE = "process_stats"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_NS_PER_TICK = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class ProcessStatsConnector:
    """SourceConnector for the process_stats table."""

    name = "process_stats"

    def __init__(self, config: object = None, *, period_s: float = 1.0, proc: str = "/proc") -> None:
        self.period_s = period_s
        self.proc = proc
        self._ctx: ConnectorContext | None = None
        self._lost = 0
        self._last_error = ""
        self.collections = 0
        self.last_rows = 0
        self.last_collect_s = 0.0

    def start(self, ctx: ConnectorContext) -> None:
        if os.geteuid() != 0:
            raise PermissionError(
                f"process_stats reads /proc/<pid>/io of every process, which needs root (euid is {os.geteuid()})"
            )
        probe = read_bytes(f"{self.proc}/self/io")
        if not probe:
            raise OSError(f"{self.proc}/self/io is empty or missing: the kernel lacks CONFIG_TASK_IO_ACCOUNTING")
        self._ctx = ctx
        ctx.store.create(TABLE, schemas.PROCESS_STATS)

    def tick(self, now_ns: int) -> None:
        if self._ctx is None:
            raise RuntimeError("process_stats ticked before start()")
        self._ctx.store.append(TABLE, self.collect(now_ns))

    def collect(self, now_ns: int) -> pa.RecordBatch:
        """One sample of every process now in /proc."""
        t0 = time.perf_counter()
        asid = self._ctx.asid if self._ctx is not None else 0
        upid: list[bytes] = []
        cols: list[list[int]] = [[] for _ in range(11)]
        (maj, mnr, ut, kt, thr, vsz, rss, rch, wch, rb, wb) = cols
        proc = self.proc
        for pid in list_pids(proc):
            try:
                st = read_bytes(f"{proc}/{pid}/stat", 4096)
                io = read_bytes(f"{proc}/{pid}/io", 4096)
            except ProcReadError as e:
                self._lost += 1
                self._last_error = str(e)
                continue
            if st is None or io is None:
                continue  # exited meanwhile
            f = stat_fields(st)
            v = io.split()
            if len(f) < 22 or len(v) < 12:
                self._lost += 1
                self._last_error = f"{proc}/{pid}: unexpected stat/io format"
                continue
            upid.append(make_upid(asid, pid, int(f[19])))
            mnr.append(int(f[7]))
            maj.append(int(f[9]))
            ut.append(int(f[11]) * _NS_PER_TICK)
            kt.append(int(f[12]) * _NS_PER_TICK)
            thr.append(int(f[17]))
            vsz.append(int(f[20]))
            rss.append(int(f[21]) * _PAGE)
            rch.append(int(v[1]))
            wch.append(int(v[3]))
            rb.append(int(v[9]))
            wb.append(int(v[11]))
        out = batch(
            schemas.PROCESS_STATS,
            {
                "time_": time_column(now_ns, len(upid)),
                "upid": upid,
                "major_faults": maj,
                "minor_faults": mnr,
                "cpu_utime_ns": ut,
                "cpu_ktime_ns": kt,
                "num_threads": thr,
                "vsize_bytes": vsz,
                "rss_bytes": rss,
                "rchar_bytes": rch,
                "wchar_bytes": wch,
                "read_bytes": rb,
                "write_bytes": wb,
            },
        )
        self.collections += 1
        self.last_rows = len(upid)
        self.last_collect_s = time.perf_counter() - t0
        return out

    def stop(self) -> None:
        self._ctx = None

    def status(self) -> ConnectorStatus:
        err = f"{self._lost} process reads failed, last: {self._last_error}" if self._lost else ""
        return ConnectorStatus(self.name, [f"{self.proc}/<pid>/stat", f"{self.proc}/<pid>/io"], self._lost, err)
