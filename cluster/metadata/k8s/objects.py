"""Compact records of the Kubernetes objects the metadata service keeps, parsed from raw API JSON.

Why not the client's models: deserialising a V1Pod builds hundreds of Python objects (every
managedFields entry, every env var), costs about a millisecond and keeps kilobytes per pod alive.
The look-ups PxL needs use a dozen fields, so the watcher parses the JSON itself and keeps only
these slotted records; repeated strings (namespaces, node names, phases) are interned.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

JSON = dict[str, Any]

#: Pod phases Pixie reports (PodPhaseToString); "Terminated" is a pod the API server deleted.
POD_PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
TERMINATED = "Terminated"


def parse_time_ns(text: str | None) -> int:
    """RFC 3339 time (as the API server writes creationTimestamp, startTime...) -> ns since the epoch.

    A missing or malformed time gives 0, Pixie's "unknown": one odd object must not stop the watch.
    """
    if not text:
        return 0
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return 0
    seconds = int(dt.timestamp())
    return seconds * 1_000_000_000 + dt.microsecond * 1_000


def bare_container_id(runtime_id: str | None) -> str:
    """ "containerd://4f1c..." -> "4f1c...": the id the cgroup path carries, without the runtime."""
    if not runtime_id:
        return ""
    return runtime_id.rsplit("://", 1)[-1]


def _s(value: object) -> str:
    return sys.intern(value) if isinstance(value, str) else ""


def _meta(obj: JSON) -> JSON:
    return obj.get("metadata") or {}


def object_key(obj: JSON) -> str:
    """ "<namespace>/<name>" (or the bare name for cluster-scoped objects), the API's own identity."""
    meta = _meta(obj)
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name', '')}" if ns else str(meta.get("name", ""))


def resource_version(obj: JSON) -> str:
    return str(_meta(obj).get("resourceVersion") or "")


def _controller(meta: JSON) -> tuple[str, str, str]:
    """(kind, uid, name) of the controlling owner reference, or empty strings."""
    refs = meta.get("ownerReferences") or []
    chosen = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not chosen:
        return "", "", ""
    return _s(chosen.get("kind")), str(chosen.get("uid", "")), str(chosen.get("name", ""))


@dataclass(slots=True)
class Container:
    """One container of a pod, keyed by the id its cgroup carries on the node."""

    cid: str
    name: str
    pod_uid: str
    state: str  # Running / Waiting / Terminated / Unknown, as container_id_to_status reports it
    message: str
    reason: str
    start_ns: int
    stop_ns: int


@dataclass(slots=True)
class Pod:
    uid: str
    name: str
    namespace: str
    node_name: str
    pod_ip: str
    pod_ips: tuple[str, ...]
    host_network: bool
    phase: str
    message: str
    reason: str
    ready: bool
    create_ns: int
    start_ns: int
    deleting: bool  # metadata.deletionTimestamp set: the pod is terminating
    owner_kind: str
    owner_uid: str
    owner_name: str
    containers: tuple[Container, ...]
    stop_ns: int = 0  # when the API server deleted it (0 while it exists)

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(slots=True)
class Service:
    uid: str
    name: str
    namespace: str
    cluster_ips: tuple[str, ...]
    external_ips: tuple[str, ...]
    create_ns: int
    stop_ns: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(slots=True)
class Workload:
    """A ReplicaSet or a Deployment: what PxL asks of either is its name, id and owner."""

    uid: str
    name: str
    namespace: str
    owner_kind: str
    owner_uid: str
    create_ns: int
    stop_ns: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(slots=True)
class Node:
    uid: str
    name: str
    hostname: str
    pod_cidrs: tuple[str, ...]
    stop_ns: int = 0


@dataclass(slots=True)
class Namespace:
    uid: str
    name: str
    stop_ns: int = 0


@dataclass(slots=True)
class Endpoints:
    """Which pods back a service: the pod uids named by targetRef in any subset's addresses."""

    key: str  # "<namespace>/<service name>": an Endpoints object is named after its service
    pod_uids: frozenset[str] = field(default_factory=frozenset)


def _container_state(status: JSON) -> tuple[str, str, str, int, int]:
    """(state, message, reason, start_ns, stop_ns) of a containerStatuses entry."""
    state = status.get("state") or {}
    if "running" in state:
        run = state["running"] or {}
        return "Running", "", "", parse_time_ns(run.get("startedAt")), 0
    if "terminated" in state:
        t = state["terminated"] or {}
        return (
            "Terminated",
            str(t.get("message", "")),
            _s(t.get("reason")),
            parse_time_ns(t.get("startedAt")),
            parse_time_ns(t.get("finishedAt")),
        )
    if "waiting" in state:
        w = state["waiting"] or {}
        return "Waiting", str(w.get("message", "")), _s(w.get("reason")), 0, 0
    return "Unknown", "", "", 0, 0


def parse_pod(obj: JSON) -> Pod:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    uid = str(meta.get("uid", ""))
    containers = []
    for key in ("initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            cid = bare_container_id(cs.get("containerID"))
            if not cid:
                continue  # not started yet: no cgroup to map
            state, message, reason, start, stop = _container_state(cs)
            containers.append(Container(cid, _s(cs.get("name")), uid, state, message, reason, start, stop))
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    pod_ips = tuple(str(p["ip"]) for p in status.get("podIPs") or [] if p.get("ip"))
    pod_ip = str(status.get("podIP") or (pod_ips[0] if pod_ips else ""))
    if pod_ip and pod_ip not in pod_ips:
        pod_ips = (pod_ip, *pod_ips)
    kind, owner_uid, owner_name = _controller(meta)
    phase = status.get("phase")
    return Pod(
        uid=uid,
        name=str(meta.get("name", "")),
        namespace=_s(meta.get("namespace")),
        node_name=_s(spec.get("nodeName")),
        pod_ip=pod_ip,
        pod_ips=pod_ips,
        host_network=bool(spec.get("hostNetwork")),
        phase=_s(phase) if phase in POD_PHASES else "Unknown",
        message=str(status.get("message", "")),
        reason=_s(status.get("reason")),
        ready=ready,
        create_ns=parse_time_ns(meta.get("creationTimestamp")),
        start_ns=parse_time_ns(status.get("startTime")),
        deleting=bool(meta.get("deletionTimestamp")),
        owner_kind=kind,
        owner_uid=owner_uid,
        owner_name=owner_name,
        containers=tuple(containers),
    )


def parse_service(obj: JSON) -> Service:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    return Service(
        uid=str(meta.get("uid", "")),
        name=str(meta.get("name", "")),
        namespace=_s(meta.get("namespace")),
        cluster_ips=tuple(ips),
        external_ips=tuple(spec.get("externalIPs") or ()),
        create_ns=parse_time_ns(meta.get("creationTimestamp")),
    )


def parse_workload(obj: JSON) -> Workload:
    meta = _meta(obj)
    kind, owner_uid, _ = _controller(meta)
    return Workload(
        uid=str(meta.get("uid", "")),
        name=str(meta.get("name", "")),
        namespace=_s(meta.get("namespace")),
        owner_kind=kind,
        owner_uid=owner_uid,
        create_ns=parse_time_ns(meta.get("creationTimestamp")),
    )


def parse_node(obj: JSON) -> Node:
    meta = _meta(obj)
    spec = obj.get("spec") or {}
    addresses = (obj.get("status") or {}).get("addresses") or []
    hostname = next((a.get("address", "") for a in addresses if a.get("type") == "Hostname"), "")
    cidrs = tuple(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    name = _s(meta.get("name"))
    return Node(uid=str(meta.get("uid", "")), name=name, hostname=_s(hostname) or name, pod_cidrs=cidrs)


def parse_namespace(obj: JSON) -> Namespace:
    meta = _meta(obj)
    return Namespace(uid=str(meta.get("uid", "")), name=_s(meta.get("name")))


def parse_endpoints(obj: JSON) -> Endpoints:
    uids = set()
    for subset in obj.get("subsets") or []:
        for key in ("addresses", "notReadyAddresses"):
            for addr in subset.get(key) or []:
                ref = addr.get("targetRef") or {}
                if ref.get("kind") == "Pod" and ref.get("uid"):
                    uids.add(str(ref["uid"]))
    return Endpoints(key=object_key(obj), pod_uids=frozenset(uids))
