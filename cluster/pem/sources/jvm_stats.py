"""jvm_stats: heap and GC figures of every JVM on the node, from its hsperfdata file, every second.

Why hsperfdata: HotSpot keeps its counters in a memory-mapped file (/tmp/hsperfdata_<user>/<pid>)
that jstat reads without attaching; reading it costs the JVM nothing. A JVM in a container keeps
the file in the container's /tmp under its namespace pid, so discovery looks through each mount
namespace's root (/proc/<pid>/root) and maps the file's pid back to the host pid with NSpid.

Discovery (every `discover_every_s`) confirms each candidate by finding the file in the process's
/proc/<pid>/maps: a stale file left by a crashed JVM, whose pid was reused, never names a process.

Loss: a JVM file that cannot be read or parsed (counters disabled, a format we do not know) is
counted in events_lost with the reason in status().
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass

import pyarrow as pa

from cluster import schemas
from cluster.pem.sources.connector import ConnectorContext, ConnectorStatus
from cluster.pem.sources.hsperfdata import PerfDataError, heap_stats, parse
from cluster.pem.sources.procfs import ProcReadError, batch, list_pids, read_all, read_bytes, time_column

TABLE = "jvm_stats"
_MAX_FILE = 1 << 20  # PerfData is 32 KiB by default (-XX:PerfDataMemorySize)


@dataclass(frozen=True, slots=True)
class Jvm:
    pid: int  # in the PEM's pid namespace
    path: str  # the hsperfdata file, reachable from the PEM
    upid: bytes


def _ns_inode(proc: str, pid: int, kind: str) -> int | None:
    """The namespace's inode; None when the process has gone or is not ours to inspect (a process
    outside our user namespace), since a JVM there could not be read either."""
    try:
        return os.stat(f"{proc}/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def _nspid(proc: str, pid: int) -> int | None:
    """The process's pid inside its own (innermost) pid namespace."""
    raw = read_bytes(f"{proc}/{pid}/status")
    if raw is None:
        return None
    for line in raw.splitlines():
        if line.startswith(b"NSpid:"):
            return int(line.split()[-1])
    return pid


def _maps_file(proc: str, pid: int, name: str) -> bool:
    """Whether the process has a file named `name` in an hsperfdata directory mapped."""
    try:
        raw = read_all(f"{proc}/{pid}/maps")
    except ProcReadError:
        return False
    if raw is None:
        return False
    tail = f"/{name}".encode()
    return any(line.endswith(tail) and b"/hsperfdata_" in line for line in raw.splitlines())


def discover(proc: str = "/proc") -> dict[int, str]:
    """host pid -> hsperfdata path of every JVM that exposes PerfData now."""
    own_mnt = _ns_inode(proc, os.getpid(), "mnt") if proc == "/proc" else None
    by_mnt: dict[int, list[int]] = {}
    for pid in list_pids(proc):
        ino = _ns_inode(proc, pid, "mnt")
        if ino is not None:
            by_mnt.setdefault(ino, []).append(pid)
    found: dict[int, str] = {}
    for ino, pids in by_mnt.items():
        root = "" if ino == own_mnt else f"{proc}/{pids[0]}/root"
        files = glob.glob(f"{root}/tmp/hsperfdata_*/[0-9]*")
        if not files:
            continue
        by_name = {os.path.basename(f): f for f in files}
        if root:
            for pid in pids:
                ns = _nspid(proc, pid)
                if ns is not None and str(ns) in by_name and _maps_file(proc, pid, str(ns)):
                    found[pid] = by_name[str(ns)]
        else:
            for name, path in by_name.items():
                pid = int(name)
                if pid in pids and _maps_file(proc, pid, name):
                    found[pid] = path
    return found


class JvmStatsConnector:
    """SourceConnector for the jvm_stats table."""

    name = "jvm_stats"

    def __init__(
        self, config: object = None, *, period_s: float = 1.0, discover_every_s: float = 5.0, proc: str = "/proc"
    ) -> None:
        self.period_s = period_s
        self.discover_every_s = discover_every_s
        self.proc = proc
        self._ctx: ConnectorContext | None = None
        self._jvms: dict[int, Jvm] = {}
        self._next_discovery = 0.0
        self._lost = 0
        self._last_error = ""
        #: young/full GC counts of the last collection, by pid (Pixie's table has no count columns)
        self.gc_counts: dict[int, tuple[int, int]] = {}

    def start(self, ctx: ConnectorContext) -> None:
        if os.geteuid() != 0:
            raise PermissionError(
                f"jvm_stats reads every user's /tmp/hsperfdata_<user>/<pid> (mode 0600), which needs root "
                f"(euid is {os.geteuid()})"
            )
        self._ctx = ctx
        ctx.store.create(TABLE, schemas.JVM_STATS)

    def jvms(self) -> dict[int, Jvm]:
        return dict(self._jvms)

    def rediscover(self) -> None:
        assert self._ctx is not None
        found = discover(self.proc)
        jvms: dict[int, Jvm] = {}
        for pid, path in found.items():
            old = self._jvms.get(pid)
            if old is not None and old.path == path:
                jvms[pid] = old
            else:
                jvms[pid] = Jvm(pid, path, self._ctx.processes.refresh(pid).upid)
        self._jvms = jvms
        self._next_discovery = time.monotonic() + self.discover_every_s

    def tick(self, now_ns: int) -> None:
        if self._ctx is None:
            raise RuntimeError("jvm_stats ticked before start()")
        self._ctx.store.append(TABLE, self.collect(now_ns))

    def collect(self, now_ns: int) -> pa.RecordBatch:
        if time.monotonic() >= self._next_discovery:
            self.rediscover()
        upids: list[bytes] = []
        cols: dict[str, list[int]] = {k: [] for k in schemas.JVM_STATS.names[2:]}
        counts: dict[int, tuple[int, int]] = {}
        for pid, jvm in list(self._jvms.items()):
            try:
                data = read_bytes(jvm.path, _MAX_FILE)
            except ProcReadError as e:
                self._lost += 1
                self._last_error = str(e)
                continue
            if data is None:  # the JVM exited and removed its file
                del self._jvms[pid]
                continue
            try:
                heap = heap_stats(parse(data))
            except PerfDataError as e:
                self._lost += 1
                self._last_error = f"{jvm.path}: {e}"
                continue
            upids.append(jvm.upid)
            for k in cols:
                cols[k].append(getattr(heap, k))
            counts[pid] = (heap.young_gc_count, heap.full_gc_count)
        self.gc_counts = counts
        return batch(schemas.JVM_STATS, {"time_": time_column(now_ns, len(upids)), "upid": upids, **cols})

    def stop(self) -> None:
        self._ctx = None
        self._jvms = {}

    def status(self) -> ConnectorStatus:
        err = f"{self._lost} JVM file reads failed, last: {self._last_error}" if self._lost else ""
        probes = [j.path for j in self._jvms.values()] or ["/tmp/hsperfdata_*/<pid> (no JVM yet)"]
        return ConnectorStatus(self.name, probes, self._lost, err)
