"""network_stats: interface counters per network namespace (per pod), every second.

Why one pid per namespace: /proc/<pid>/net/dev shows the interfaces of the process's network
namespace, and every container of a pod shares one, so reading it once per namespace (through the
lowest pid in it) gives the pod's counters without counting them once per process. Loopback is left
out, as Pixie does: traffic between a pod's own containers never leaves the pod.

pod_id is the pod UID from the representative process's cgroup (cluster.pem.cgroups). A namespace
outside Kubernetes (the host's, or one made with `ip netns`) has no pod, so it takes the local
metadata's pod_id of that process ("<hostname>-<pid>-<start ticks>"), which px.pod_id_to_pod_name
resolves on a bare host.

Loss: a namespace whose net/dev cannot be read or parsed is counted in events_lost.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa

from cluster import schemas
from cluster.metadata.local import LocalMetadata
from cluster.pem.sources.connector import ConnectorContext, ConnectorStatus
from cluster.pem.sources.procfs import GONE, ProcReadError, batch, list_pids, read_bytes, time_column

TABLE = "network_stats"
IGNORED_INTERFACES = ("lo",)


@dataclass(frozen=True, slots=True)
class NetDev:
    """Summed counters of one namespace's interfaces (loopback excluded)."""

    rx_bytes: int = 0
    rx_packets: int = 0
    rx_errors: int = 0
    rx_drops: int = 0
    tx_bytes: int = 0
    tx_packets: int = 0
    tx_errors: int = 0
    tx_drops: int = 0


def parse_net_dev(raw: bytes) -> NetDev:
    """Sum /proc/<pid>/net/dev over every interface except loopback.

    Columns after "iface:": rx bytes packets errs drop fifo frame compressed multicast,
    then tx bytes packets errs drop fifo colls carrier compressed.
    """
    totals = [0] * 8
    for line in raw.splitlines()[2:]:
        name, sep, rest = line.partition(b":")
        if not sep:
            raise ValueError(f"unexpected net/dev line {line[:80]!r}")
        if name.strip().decode() in IGNORED_INTERFACES:
            continue
        v = rest.split()
        for i, j in enumerate((0, 1, 2, 3, 8, 9, 10, 11)):
            totals[i] += int(v[j])
    return NetDev(*totals)


def namespaces(proc: str = "/proc") -> tuple[dict[int, int], list[int]]:
    """(network namespace inode -> lowest pid in it, pids whose namespace cannot be read)."""
    out: dict[int, int] = {}
    denied: list[int] = []
    for pid in list_pids(proc):
        try:
            ino = os.stat(f"{proc}/{pid}/ns/net").st_ino
        except OSError as e:
            if e.errno not in GONE:
                denied.append(pid)  # e.g. a process outside our user namespace: reported, not fatal
            continue
        out.setdefault(ino, pid)  # pids ascend, so the first one seen is the lowest
    return out, denied


class NetworkStatsConnector:
    """SourceConnector for the network_stats table."""

    name = "network_stats"

    def __init__(self, config: object = None, *, period_s: float = 1.0, proc: str = "/proc") -> None:
        self.period_s = period_s
        self.proc = proc
        self._ctx: ConnectorContext | None = None
        self._meta: LocalMetadata | None = None
        self._lost = 0
        self._last_error = ""
        #: netns inode -> pod_id of the last collection (tests and status)
        self.last_pods: dict[int, str] = {}
        #: pids whose namespace could not be read in the last collection (status names them)
        self.denied: list[int] = []

    def start(self, ctx: ConnectorContext) -> None:
        if os.geteuid() != 0:
            raise PermissionError(
                f"network_stats reads other processes' namespaces, which needs root (euid is {os.geteuid()})"
            )
        if read_bytes(f"{self.proc}/self/net/dev") is None:
            raise OSError(f"{self.proc}/self/net/dev is missing: no procfs network statistics")
        self._ctx = ctx
        self._meta = LocalMetadata(ctx.processes)
        ctx.store.create(TABLE, schemas.NETWORK_STATS)

    def tick(self, now_ns: int) -> None:
        if self._ctx is None:
            raise RuntimeError("network_stats ticked before start()")
        self._ctx.store.append(TABLE, self.collect(now_ns))

    def _pod_id(self, pid: int) -> str:
        assert self._ctx is not None and self._meta is not None
        info = self._ctx.processes.refresh(pid)
        return info.pod_uid or self._meta.attrs_of(info)["pod_id"]

    def collect(self, now_ns: int) -> pa.RecordBatch:
        pods: list[str] = []
        rows: list[NetDev] = []
        seen: dict[int, str] = {}
        by_ns, self.denied = namespaces(self.proc)
        for ino, pid in by_ns.items():
            try:
                raw = read_bytes(f"{self.proc}/{pid}/net/dev")
                if raw is None:
                    continue
                dev = parse_net_dev(raw)
            except (ProcReadError, ValueError, IndexError) as e:
                self._lost += 1
                self._last_error = f"{self.proc}/{pid}/net/dev: {e}"
                continue
            pod = self._pod_id(pid)
            seen[ino] = pod
            pods.append(pod)
            rows.append(dev)
        self.last_pods = seen
        cols: dict[str, object] = {"time_": time_column(now_ns, len(rows)), "pod_id": pods}
        for name in NetDev.__slots__:
            cols[name] = [getattr(r, name) for r in rows]
        return batch(schemas.NETWORK_STATS, cols)

    def stop(self) -> None:
        self._ctx = None

    def status(self) -> ConnectorStatus:
        errs = [f"{self._lost} namespace reads failed, last: {self._last_error}"] if self._lost else []
        if self.denied:
            errs.append(f"network namespace of pid(s) {', '.join(map(str, self.denied[:5]))} not readable")
        err = "; ".join(errs)
        return ConnectorStatus(self.name, [f"{self.proc}/<pid>/net/dev per netns"], self._lost, err)


__all__ = ["NetDev", "NetworkStatsConnector", "namespaces", "parse_net_dev"]
