"""Per-process facts the PEM needs for every record: the UPID and what the process is.

Read from /proc once per process and cached, because /proc reads cost tens of microseconds and a
busy process produces thousands of events a second. The cache is keyed by (pid, start ticks), so a
recycled pid is a new process, and entries outlive the process for a while so that records of a
short-lived process still resolve after it exits.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

from cluster.pem.cgroups import read_cgroup

_UPID = struct.Struct(">QQ")


def make_upid(asid: int, pid: int, start_ticks: int) -> bytes:
    """Pixie's UPID as 16 big-endian bytes: high word (asid << 32 | pid), low word start ticks."""
    return _UPID.pack(((asid & 0xFFFFFFFF) << 32) | (pid & 0xFFFFFFFF), start_ticks & 0xFFFFFFFFFFFFFFFF)


def split_upid(upid: bytes) -> tuple[int, int, int]:
    hi, lo = _UPID.unpack(upid)
    return hi >> 32, hi & 0xFFFFFFFF, lo


def read_start_ticks(pid: int, proc: str = "/proc") -> int | None:
    try:
        with open(f"{proc}/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: fields start after the last ')'.
    rest = raw[raw.rfind(b")") + 2 :].split()
    return int(rest[19])  # field 22 overall: starttime


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    start_ticks: int
    upid: bytes
    comm: str
    cmdline: str
    cgroup: str  # the unified (v2) path, or the name=systemd / first v1 path on hybrid hosts
    container_id: str = ""  # 64-hex id from the runtime's cgroup path (cluster.pem.cgroups)
    pod_uid: str = ""  # Kubernetes pod UID from the kubelet's cgroup path
    netns: int = 0  # network namespace inode when first seen (0: unknown), so a process that exits
    #                 before its first metadata look-up still resolves to its namespace's pod


def _netns_inode(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


class ProcessCache:
    """pid -> ProcessInfo with an LRU bound; thread-safe (tracer thread writes, queries read)."""

    def __init__(self, asid: int, capacity: int = 65536, proc: str = "/proc"):
        self.asid = asid
        self.capacity = capacity
        self.proc = proc
        self._by_pid: OrderedDict[int, ProcessInfo] = OrderedDict()
        self._by_upid: dict[bytes, ProcessInfo] = {}
        self._lock = threading.Lock()

    def lookup(self, pid: int) -> ProcessInfo:
        """The process now running as pid (read /proc on first sight or when the pid was recycled)."""
        info = self._by_pid.get(pid)
        if info is not None:
            return info
        return self._load(pid)

    def refresh(self, pid: int) -> ProcessInfo:
        """Re-read on connect/accept: a pid seen before may be a new process by now."""
        info = self._by_pid.get(pid)
        ticks = read_start_ticks(pid, self.proc)
        if info is not None and (ticks is None or ticks == info.start_ticks):
            return info
        return self._load(pid, ticks)

    def _load(self, pid: int, ticks: int | None = None) -> ProcessInfo:
        if ticks is None:
            ticks = read_start_ticks(pid, self.proc)
        base = f"{self.proc}/{pid}"
        comm = _read_text(f"{base}/comm").strip()
        cmdline = _read_text(f"{base}/cmdline").replace("\x00", " ").strip()
        cg = read_cgroup(pid, self.proc)
        info = ProcessInfo(
            pid=pid,
            start_ticks=ticks or 0,
            upid=make_upid(self.asid, pid, ticks or 0),
            comm=comm,
            cmdline=cmdline,
            cgroup=cg.path,
            container_id=cg.container_id,
            pod_uid=cg.pod_uid,
            netns=_netns_inode(f"{base}/ns/net"),
        )
        with self._lock:
            self._by_pid[pid] = info
            self._by_pid.move_to_end(pid)
            self._by_upid[info.upid] = info
            while len(self._by_pid) > self.capacity:
                _, old = self._by_pid.popitem(last=False)
                self._by_upid.pop(old.upid, None)
        return info

    def by_upid(self, upid: bytes) -> ProcessInfo | None:
        info = self._by_upid.get(upid)
        if info is not None:
            return info
        asid, pid, ticks = split_upid(upid)
        if asid != self.asid:
            return None
        now = read_start_ticks(pid, self.proc)
        if now is not None and now == ticks:
            return self._load(pid, now)
        return None

    def own_pid(self) -> int:
        return os.getpid()
