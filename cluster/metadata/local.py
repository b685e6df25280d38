"""Metadata for a bare host (the embedded default): what Kubernetes would say, read from /proc.

With no cluster, the unit a pod stands for is a network namespace (cluster.metadata.netns): a
process in a network namespace of its own belongs to that namespace's pod, named after its
``ip netns`` name or its cgroup, and the addresses inside the namespace are the pod's IPs, so
``px.ip_to_pod_id`` names the pod at the other end of a connection.

Every other process belongs to the host's namespace "host". Its service is its systemd unit when
it runs in one (nginx.service -> nginx), else its command name; its pod is the service plus the
pid, so two workers of one service are two pods of it. Host pods have no pod IP: the host's
addresses are shared by all of them.

Names keep Pixie's "<namespace>/<name>" format so scripts written for Pixie filter and group them
unchanged. Look-ups by upid resolve each distinct process once (its namespace is one readlink,
cached per process); the namespace's names and addresses are cached per namespace inode.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections import OrderedDict

import pyarrow as pa

from cluster.metadata.netns import NetnsPod, NetnsRegistry
from cluster.pem.process_info import ProcessCache, ProcessInfo, make_upid, read_start_ticks

NAMESPACE = "host"

ATTRS = (
    "pod_name", "pod_id", "service_name", "service_id", "namespace", "node_name", "hostname",
    "container_name", "container_id", "cmdline",
)  # fmt: skip

#: attributes only entity look-ups answer (cluster.pxl.sources.EntityMetadataSource)
ENTITY_ATTRS = (*ATTRS, "pod_ip", "start_time", "status")

_HOST_POD_ID = re.compile(r"(.+)-(\d+)-(\d+)")
_HOST_POD_NAME = re.compile(r".+-(\d+)")
_CACHE = 65536
_UNSEEN = object()


def service_of(info: ProcessInfo) -> str:
    leaf = info.cgroup.rstrip("/").rsplit("/", 1)[-1]
    if leaf.endswith(".service"):
        return leaf.removesuffix(".service")
    return info.comm or f"pid-{info.pid}"


def _status(phase: str, reason: str = "", message: str = "") -> str:
    return json.dumps(
        {"phase": phase, "message": message, "reason": reason, "ready": phase == "Running"}, separators=(",", ":")
    )


class _Lru(OrderedDict):
    """A bounded mapping: the oldest entries go first."""

    def put(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > _CACHE:
            self.popitem(last=False)


class LocalMetadata:
    """MetadataSource, EntityMetadataSource and ClusterNetworkSource (cluster.pxl.sources) over this
    host's processes and network namespaces."""

    def __init__(self, processes: ProcessCache, hostname: str | None = None, netns: NetnsRegistry | None = None):
        self.processes = processes
        self._hostname = hostname or socket.gethostname()
        self.netns = netns or NetnsRegistry(proc=processes.proc)
        self._upid_netns: _Lru = _Lru()  # upid -> netns inode (None: host or unknown)
        self._host_pods: _Lru = _Lru()  # pod_id and pod_name of host pods seen -> ProcessInfo
        self._lock = threading.Lock()

    def hostname(self) -> str:
        return self._hostname

    # ---- by process ------------------------------------------------------------------------------
    def pod_of(self, info: ProcessInfo) -> NetnsPod | None:
        """The network-namespace pod a process belongs to; None when it is a host process."""
        inode = self._upid_netns.get(info.upid, _UNSEEN)
        if inode is _UNSEEN and info.netns:  # read when the process was first seen, maybe alive no more
            inode = info.netns
            with self._lock:
                self._upid_netns.put(info.upid, inode)
        if inode is _UNSEEN:
            inode = self.netns.inode_of(info.pid)
            # The pid may be a new process by now: its namespace says nothing about this one.
            if inode is not None and read_start_ticks(info.pid, self.processes.proc) != info.start_ticks:
                inode = None
            with self._lock:
                self._upid_netns.put(info.upid, inode)
        return self.netns.pod_for(inode, info.pid) if inode is not None else None

    def attrs_of(self, info: ProcessInfo | None) -> dict[str, str]:
        if info is None:
            return dict.fromkeys(ATTRS, "")
        pod = self.pod_of(info)
        if pod is not None:
            return {**self._netns_attrs(pod), "cmdline": info.cmdline}
        attrs = self._host_attrs(info)
        with self._lock:
            self._host_pods.put(attrs["pod_id"], info)
            self._host_pods.put(attrs["pod_name"], info)
        return attrs

    def _host_attrs(self, info: ProcessInfo) -> dict[str, str]:
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

    def _netns_attrs(self, pod: NetnsPod) -> dict[str, str]:
        names = pod.names
        return {
            "pod_name": names.pod_name,
            "pod_id": self._netns_pod_id(pod.inode),
            "service_name": names.service_name,
            "service_id": f"{self._hostname}-{names.namespace}-{names.service}",
            "namespace": names.namespace,
            "node_name": self._hostname,
            "hostname": self._hostname,
            "container_name": "",
            "container_id": "",
            "cmdline": pod.process.cmdline,
        }

    def _netns_pod_id(self, inode: int) -> str:
        return f"{self._hostname}-netns-{inode}"

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        if attr not in ATTRS:
            raise KeyError(f"unknown metadata attribute {attr!r}; known: {', '.join(ATTRS)}")
        if isinstance(upids, pa.ChunkedArray):
            upids = upids.combine_chunks()
        # Few distinct processes, many rows: resolve each distinct upid once, then take.
        encoded = upids.dictionary_encode()
        names = [
            self.attrs_of(self.processes.by_upid(u))[attr] if u is not None else ""
            for u in encoded.dictionary.to_pylist()
        ]
        return pa.array(names, pa.string()).take(encoded.indices)

    # ---- by pod, service or IP -------------------------------------------------------------------
    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if attr not in ENTITY_ATTRS:
            return pa.array([""] * len(values), pa.string())
        encoded = values.cast(pa.string()).dictionary_encode()
        out = []
        for v in encoded.dictionary.to_pylist():
            record = self._record(key, v) if v else None
            out.append(record.get(attr, "") if record else "")
        return pa.array(out, pa.string()).take(encoded.indices)

    def _record(self, key: str, value: str) -> dict[str, str] | None:
        """Every ENTITY_ATTRS of the pod (or, for a service, its first pod) that ``value`` names."""
        if key == "ip":
            pod = self.netns.pod_by_ip(value)
            return self._netns_record(pod) if pod else None
        if key == "pod_id":
            prefix = f"{self._hostname}-netns-"
            if value.startswith(prefix) and value[len(prefix) :].isdigit():
                pod = self.netns.pod_by_inode(int(value[len(prefix) :]))
                return self._netns_record(pod) if pod else None
            return self._host_record(self._host_by_id(value))
        if key == "pod_name":
            if not value.startswith(f"{NAMESPACE}/"):
                pod = self.netns.pod_by_name(value)
                return self._netns_record(pod) if pod else None
            return self._host_record(self._host_by_name(value))
        if key in ("service_name", "service_id"):
            for pod in self.netns.pods():
                record = self._netns_record(pod)
                if record[key] == value:
                    return record
            with self._lock:
                host_pods = list(self._host_pods.values())
            for info in host_pods:
                record = self._host_record(info)
                if record is not None and record[key] == value:
                    return record
        return None  # container_id, deployment_*, replicaset_*: a bare host has none

    def ip_records(self) -> list[tuple[str, dict[str, str]]]:
        """(ip, the pod's ENTITY_ATTRS) for every address of every namespaced pod: shipped with query
        fragments so that Kelvin, which has no /proc of this node, resolves IPs to pods too."""
        return [(ip, self._netns_record(pod)) for pod in self.netns.pods() for ip in pod.addresses.ips]

    def _netns_record(self, pod: NetnsPod) -> dict[str, str]:
        return {
            **self._netns_attrs(pod),
            "pod_ip": pod.ip,
            "start_time": str(pod.process.start_ns),
            "status": _status("Running")
            if pod.alive
            else _status("Unknown", "NetworkNamespaceGone", "no process is left in the network namespace"),
        }

    def _host_record(self, info: ProcessInfo | None) -> dict[str, str] | None:
        if info is None:
            return None
        alive = read_start_ticks(info.pid, self.processes.proc) == info.start_ticks
        return {
            **self._host_attrs(info),
            "pod_ip": "",
            "start_time": str(self.netns.start_ns(info.start_ticks)),
            "status": _status("Running") if alive else _status("Unknown", "ProcessExited", "the process has exited"),
        }

    def _host_by_id(self, pod_id: str) -> ProcessInfo | None:
        info = self._host_pods.get(pod_id)
        if info is not None:
            return info
        m = _HOST_POD_ID.fullmatch(pod_id)
        if not m or m.group(1) != self._hostname:
            return None
        info = self.processes.by_upid(make_upid(self.processes.asid, int(m.group(2)), int(m.group(3))))
        return info if info is not None and self.pod_of(info) is None else None

    def _host_by_name(self, pod_name: str) -> ProcessInfo | None:
        info = self._host_pods.get(pod_name)
        if info is not None:
            return info
        m = _HOST_POD_NAME.fullmatch(pod_name)
        if not m:
            return None
        pid = int(m.group(1))
        if read_start_ticks(pid, self.processes.proc) is None:
            return None  # no such process: do not cache a phantom in the process cache
        info = self.processes.refresh(pid)
        if self.pod_of(info) is not None:
            return None
        return info if self._host_attrs(info)["pod_name"] == pod_name else None

    # ---- cluster network -------------------------------------------------------------------------
    def cidrs(self) -> list[str]:
        """The subnets the pods' interfaces are on (px.get_cidrs): the bare host's "pod CIDRs"."""
        return sorted({s for pod in self.netns.pods() if pod.alive for s in pod.addresses.subnets})
