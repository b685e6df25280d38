"""The cluster as the watchers have seen it: pods, containers, services, workloads, with history.

Why history: a process's traffic is queried after the fact, often after its pod is gone (a Job, a
crash loop, a rollout). So a deleted object is not dropped but stamped with its stop time and kept
for ``retention_ns`` (and at most ``max_deleted`` deleted objects, the oldest going first), and each
pod IP keeps the time ranges of the pods that held it, so an IP resolves to the pod that held it
*when* the traffic happened, even when the IP has since been reused.

One lock guards everything: writes come from the watcher threads one event at a time, reads from
query threads once per distinct value of a column, so the lock is never held for long.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cluster.metadata.k8s.objects import (
    JSON,
    Container,
    Endpoints,
    Namespace,
    Node,
    Pod,
    Service,
    Workload,
    object_key,
    parse_endpoints,
    parse_namespace,
    parse_node,
    parse_pod,
    parse_service,
    parse_workload,
)

#: The resources watched, in the order a first sync lists them (owners before what they own).
RESOURCES = ("namespaces", "nodes", "deployments", "replicasets", "services", "endpoints", "pods")

DEFAULT_RETENTION_NS = 15 * 60 * 1_000_000_000
DEFAULT_MAX_DELETED = 20_000

_TERMINAL = ("Succeeded", "Failed")


@dataclass(slots=True)
class IPSpan:
    """A pod held ``ip`` from start_ns until stop_ns (0: still holds it)."""

    start_ns: int
    stop_ns: int
    pod_uid: str


@dataclass(slots=True)
class _PodTrail:
    """Every container id and IP a pod ever had, so purging it leaves nothing behind."""

    cids: set[str] = field(default_factory=set)
    ips: set[str] = field(default_factory=set)


class ClusterState:
    """In-memory metadata, fed by :meth:`apply` (a watch event) and :meth:`replace` (a full list)."""

    def __init__(
        self,
        *,
        clock: Callable[[], int] = time.time_ns,
        retention_ns: int = DEFAULT_RETENTION_NS,
        max_deleted: int = DEFAULT_MAX_DELETED,
    ) -> None:
        self.clock = clock
        self.retention_ns = retention_ns
        self.max_deleted = max_deleted
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        #: bumped on every applied event or list; waiters use it to know something happened
        self.version = 0
        self.pods: dict[str, Pod] = {}
        self.pod_by_name: dict[str, str] = {}
        self.containers: dict[str, Container] = {}
        self.ip_spans: dict[str, list[IPSpan]] = {}
        self.pod_services: dict[str, set[str]] = {}  # pod uid -> {"<ns>/<service>"} from Endpoints
        self.endpoints: dict[str, Endpoints] = {}
        self.services: dict[str, Service] = {}
        self.service_by_name: dict[str, str] = {}
        self.service_by_ip: dict[str, str] = {}
        self.replicasets: dict[str, Workload] = {}
        self.replicaset_by_name: dict[str, str] = {}
        self.deployments: dict[str, Workload] = {}
        self.deployment_by_name: dict[str, str] = {}
        self.nodes: dict[str, Node] = {}
        self.namespaces: dict[str, Namespace] = {}
        self._trails: dict[str, _PodTrail] = {}
        self._graveyard: deque[tuple[int, str, str]] = deque()  # (stop_ns, resource, id), oldest first

    # ---- writes ----------------------------------------------------------------------------------

    def apply(self, resource: str, event_type: str, obj: JSON) -> None:
        """One watch event (ADDED, MODIFIED or DELETED) of ``resource``."""
        with self.lock:
            now = self.clock()
            if event_type == "DELETED":
                self._delete(resource, obj, now)
            elif event_type in ("ADDED", "MODIFIED"):
                self._upsert(resource, obj, now)
            else:
                raise ValueError(f"watch event type {event_type!r} of {resource} is not an object change")
            self._expire(now)
            self._bump()

    def replace(self, resource: str, items: Iterable[JSON]) -> None:
        """A full list of ``resource``: what it no longer holds was deleted while we were not watching."""
        with self.lock:
            now = self.clock()
            items = list(items)
            seen = {self._id(resource, obj) for obj in items}
            for gone in [i for i in self._live_ids(resource) if i not in seen]:
                self._delete_id(resource, gone, now)
            for obj in items:
                self._upsert(resource, obj, now)
            self._expire(now)
            self._bump()

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` (evaluated under the lock after each change) holds, or time out."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _bump(self) -> None:
        self.version += 1
        self._changed.notify_all()

    @staticmethod
    def _id(resource: str, obj: JSON) -> str:
        if resource == "endpoints":
            return object_key(obj)
        if resource in ("nodes", "namespaces"):
            return str((obj.get("metadata") or {}).get("name", ""))
        return str((obj.get("metadata") or {}).get("uid", ""))

    def _table(self, resource: str) -> dict:
        return {
            "pods": self.pods,
            "services": self.services,
            "endpoints": self.endpoints,
            "replicasets": self.replicasets,
            "deployments": self.deployments,
            "nodes": self.nodes,
            "namespaces": self.namespaces,
        }[resource]

    def _live_ids(self, resource: str) -> list[str]:
        table = self._table(resource)
        if resource == "endpoints":
            return list(table)
        return [k for k, rec in table.items() if rec.stop_ns == 0]

    def _upsert(self, resource: str, obj: JSON, now: int) -> None:
        if resource == "pods":
            self._upsert_pod(parse_pod(obj), now)
        elif resource == "services":
            self._upsert_service(parse_service(obj))
        elif resource == "endpoints":
            self._set_endpoints(parse_endpoints(obj))
        elif resource in ("replicasets", "deployments"):
            rec = parse_workload(obj)
            table, by_name = self._workload_tables(resource)
            table[rec.uid] = rec
            by_name[rec.full_name] = rec.uid
        elif resource == "nodes":
            node = parse_node(obj)
            self.nodes[node.name] = node
        elif resource == "namespaces":
            ns = parse_namespace(obj)
            self.namespaces[ns.name] = ns
        else:
            raise ValueError(f"unknown resource {resource!r}; known: {', '.join(RESOURCES)}")

    def _delete(self, resource: str, obj: JSON, now: int) -> None:
        if resource == "pods":
            self._upsert_pod(parse_pod(obj), now)  # its last state (final phase, container exits)
        self._delete_id(resource, self._id(resource, obj), now)

    def _delete_id(self, resource: str, ident: str, now: int) -> None:
        if resource == "endpoints":
            old = self.endpoints.pop(ident, None)
            if old is not None:
                self._unlink_services(ident, old.pod_uids)
            return
        rec = self._table(resource).get(ident)
        if rec is None or rec.stop_ns:
            return
        rec.stop_ns = now
        if resource == "pods":
            self._pod_stopped(rec, now)
        elif resource == "services":
            for ip in rec.cluster_ips:
                if self.service_by_ip.get(ip) == rec.uid:
                    del self.service_by_ip[ip]
        self._graveyard.append((now, resource, ident))

    def _workload_tables(self, resource: str) -> tuple[dict[str, Workload], dict[str, str]]:
        if resource == "replicasets":
            return self.replicasets, self.replicaset_by_name
        return self.deployments, self.deployment_by_name

    # ---- pods, their containers and IPs -----------------------------------------------------------

    def _upsert_pod(self, pod: Pod, now: int) -> None:
        old = self.pods.get(pod.uid)
        if old is not None and old.stop_ns:
            return  # a late event about a pod already deleted: keep the record as it ended
        trail = self._trails.setdefault(pod.uid, _PodTrail())
        for c in pod.containers:
            # A restarted container has a new id; the old one stays mapped so its records resolve.
            self.containers[c.cid] = c
            trail.cids.add(c.cid)
        self.pods[pod.uid] = pod
        self.pod_by_name[pod.full_name] = pod.uid
        ips = () if pod.host_network else pod.pod_ips
        if old is not None:
            for ip in old.pod_ips:
                if ip not in ips:
                    self._close_ip(ip, pod.uid, now)
        if pod.phase in _TERMINAL:
            for ip in ips:
                self._close_ip(ip, pod.uid, now)
            return
        for ip in ips:
            trail.ips.add(ip)
            self._open_ip(ip, pod.uid, pod.start_ns or now, now)

    def _pod_stopped(self, pod: Pod, now: int) -> None:
        for ip in pod.pod_ips:
            self._close_ip(ip, pod.uid, now)
        for cid in self._trails.get(pod.uid, _PodTrail()).cids:
            c = self.containers.get(cid)
            if c is not None and c.stop_ns == 0:
                c.stop_ns = now

    def _open_ip(self, ip: str, uid: str, start: int, now: int) -> None:
        spans = self.ip_spans.setdefault(ip, [])
        if spans and spans[-1].pod_uid == uid and spans[-1].stop_ns == 0:
            return
        if spans:
            last = spans[-1]
            if last.stop_ns == 0:  # the API gave the IP to a new pod before telling us the old one let go
                last.stop_ns = max(now, last.start_ns)
            start = max(start, last.stop_ns)
        spans.append(IPSpan(start, 0, uid))

    def _close_ip(self, ip: str, uid: str, now: int) -> None:
        spans = self.ip_spans.get(ip)
        if spans and spans[-1].pod_uid == uid and spans[-1].stop_ns == 0:
            spans[-1].stop_ns = max(now, spans[-1].start_ns)

    def pod_uid_for_ip(self, ip: str, at_ns: int | None = None) -> str:
        """The pod holding ``ip`` at ``at_ns``; without a time, its current or most recent holder."""
        spans = self.ip_spans.get(ip)
        if not spans:
            return ""
        if at_ns is None:
            return spans[-1].pod_uid
        i = bisect.bisect_right(spans, at_ns, key=lambda s: s.start_ns) - 1
        if i < 0:
            return ""
        span = spans[i]
        return span.pod_uid if span.stop_ns == 0 or at_ns <= span.stop_ns else ""

    # ---- services and endpoints -------------------------------------------------------------------

    def _upsert_service(self, svc: Service) -> None:
        old = self.services.get(svc.uid)
        if old is not None:
            for ip in old.cluster_ips:
                if ip not in svc.cluster_ips and self.service_by_ip.get(ip) == svc.uid:
                    del self.service_by_ip[ip]
        self.services[svc.uid] = svc
        self.service_by_name[svc.full_name] = svc.uid
        for ip in svc.cluster_ips:
            self.service_by_ip[ip] = svc.uid

    def _set_endpoints(self, ep: Endpoints) -> None:
        old = self.endpoints.get(ep.key)
        self.endpoints[ep.key] = ep
        for uid in ep.pod_uids:
            self.pod_services.setdefault(uid, set()).add(ep.key)
        if old is not None:
            self._unlink_services(ep.key, old.pod_uids - ep.pod_uids)

    def _unlink_services(self, key: str, pod_uids: Iterable[str]) -> None:
        """The service stopped listing these pods. A pod on its way out keeps the link: its past
        traffic was traffic to that service."""
        for uid in pod_uids:
            pod = self.pods.get(uid)
            if pod is not None and (pod.stop_ns or pod.deleting or pod.phase in _TERMINAL):
                continue
            keys = self.pod_services.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.pod_services[uid]

    def services_of(self, pod: Pod) -> list[Service]:
        """The pod's services that were alive while the pod was (Pixie: "only running services")."""
        out = []
        for key in sorted(self.pod_services.get(pod.uid, ())):
            svc = self.services.get(self.service_by_name.get(key, ""))
            if svc is not None and _overlaps(svc.stop_ns, pod.stop_ns):
                out.append(svc)
        return out

    def owner_replicaset(self, pod: Pod) -> Workload | None:
        if pod.owner_kind != "ReplicaSet":
            return None
        rs = self.replicasets.get(pod.owner_uid)
        return rs if rs is not None and _overlaps(rs.stop_ns, pod.stop_ns) else None

    def owner_deployment(self, rs: Workload, alive_at_stop: int) -> Workload | None:
        if rs.owner_kind != "Deployment":
            return None
        dep = self.deployments.get(rs.owner_uid)
        return dep if dep is not None and _overlaps(dep.stop_ns, alive_at_stop) else None

    # ---- retention --------------------------------------------------------------------------------

    def _expire(self, now: int) -> None:
        grave = self._graveyard
        while grave and (grave[0][0] + self.retention_ns <= now or len(grave) > self.max_deleted):
            stop_ns, resource, ident = grave.popleft()
            rec = self._table(resource).get(ident)
            if rec is None or rec.stop_ns != stop_ns:
                continue  # re-created since (nodes and namespaces are keyed by name)
            del self._table(resource)[ident]
            if resource == "pods":
                self._purge_pod(rec)
            elif resource == "services":
                _drop_if(self.service_by_name, rec.full_name, ident)
            elif resource in ("replicasets", "deployments"):
                _drop_if(self._workload_tables(resource)[1], rec.full_name, ident)

    def _purge_pod(self, pod: Pod) -> None:
        _drop_if(self.pod_by_name, pod.full_name, pod.uid)
        self.pod_services.pop(pod.uid, None)
        trail = self._trails.pop(pod.uid, _PodTrail())
        for cid in trail.cids:
            c = self.containers.get(cid)
            if c is not None and c.pod_uid == pod.uid:
                del self.containers[cid]
        for ip in trail.ips | set(pod.pod_ips):
            spans = [s for s in self.ip_spans.get(ip, ()) if s.pod_uid != pod.uid]
            if spans:
                self.ip_spans[ip] = spans
            else:
                self.ip_spans.pop(ip, None)

    def counts(self) -> dict[str, int]:
        """Objects held per resource (live and deleted-but-retained), for status and benchmarks."""
        with self.lock:
            out = {r: len(self._table(r)) for r in RESOURCES}
            out["containers"] = len(self.containers)
            out["deleted_retained"] = len(self._graveyard)
            return out


def _overlaps(owner_stop: int, pod_stop: int) -> bool:
    """An owner counts for a pod if it is alive, or outlived the (deleted) pod."""
    return owner_stop == 0 or (pod_stop != 0 and owner_stop >= pod_stop)


def _drop_if(index: dict[str, str], key: str, value: str) -> None:
    if index.get(key) == value:
        del index[key]
