"""Metadata for a bare host (the embedded default): what Kubernetes would say, read from /proc.

With no cluster, every process belongs to the host's namespace "host". A process's service is its
systemd unit when it runs in one (nginx.service -> nginx), else its command name; its pod is the
service plus the pid, so two workers of one service are two pods of it. Names keep Pixie's
"<namespace>/<name>" format so scripts written for Pixie filter and group them unchanged.
"""

from __future__ import annotations

import socket

import pyarrow as pa

from cluster.pem.process_info import ProcessCache, ProcessInfo

NAMESPACE = "host"

ATTRS = (
    "pod_name", "pod_id", "service_name", "service_id", "namespace", "node_name", "hostname",
    "container_name", "container_id", "cmdline",
)  # fmt: skip


def service_of(info: ProcessInfo) -> str:
    leaf = info.cgroup.rstrip("/").rsplit("/", 1)[-1]
    if leaf.endswith(".service"):
        return leaf.removesuffix(".service")
    return info.comm or f"pid-{info.pid}"


class LocalMetadata:
    """MetadataSource over this host's processes (cluster.pxl.sources.MetadataSource)."""

    def __init__(self, processes: ProcessCache, hostname: str | None = None):
        self.processes = processes
        self._hostname = hostname or socket.gethostname()

    def hostname(self) -> str:
        return self._hostname

    def attrs_of(self, info: ProcessInfo | None) -> dict[str, str]:
        if info is None:
            return dict.fromkeys(ATTRS, "")
        svc = service_of(info)
        return {
            "pod_name": f"{NAMESPACE}/{svc}-{info.pid}",
            "pod_id": f"{self._hostname}-{info.pid}-{info.start_ticks}",
            "service_name": f"{NAMESPACE}/{svc}",
            "service_id": f"{self._hostname}-{svc}",
            "namespace": NAMESPACE,
            "node_name": self._hostname,
            "hostname": self._hostname,
            "container_name": "",
            "container_id": "",
            "cmdline": info.cmdline,
        }

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        if attr not in ATTRS:
            raise KeyError(f"unknown metadata attribute {attr!r}; known: {', '.join(ATTRS)}")
        if isinstance(upids, pa.ChunkedArray):
            upids = upids.combine_chunks()
        # Few distinct processes, many rows: resolve each distinct upid once, then take.
        encoded = upids.dictionary_encode()
        names = [self.attrs_of(self.processes.by_upid(u))[attr] if u is not None else ""
                 for u in encoded.dictionary.to_pylist()]
        return pa.array(names, pa.string()).take(encoded.indices)
