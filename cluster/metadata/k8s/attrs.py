"""What each metadata UDF answers, given the cluster state: Pixie's semantics, one value at a time.

The callers (cluster.metadata.k8s.source) hold the state's lock and call these once per distinct
value of a column. Formats follow Pixie's metadata_ops: pod, service, replica set and deployment
names are "<namespace>/<name>", several services are a compact JSON array, statuses are compact
JSON objects, times are decimal ns. An entity nobody knows gives "".
"""

from __future__ import annotations

import json

from cluster.metadata.k8s.objects import TERMINATED, Container, Pod, Service, Workload
from cluster.metadata.k8s.state import ClusterState

Entity = Pod | Container | Service | Workload | str | None

#: what a key names: the kind of record entity() returns for it
KEY_KINDS = {
    "pod_id": "pod",
    "pod_name": "pod",
    "ip": "ip",
    "container_id": "container",
    "service_id": "service",
    "service_name": "service",
    "replicaset_id": "replicaset",
    "replicaset_name": "replicaset",
    "deployment_id": "deployment",
    "deployment_name": "deployment",
}


def stringify(values: list[str]) -> str:
    """Pixie's StringifyVector: "" for none, the value for one, a compact JSON array for several."""
    if not values:
        return ""
    if len(values) == 1:
        return values[0]
    return json.dumps(values, separators=(",", ":"))


def entity(state: ClusterState, key: str, value: str) -> Entity:
    """The record ``value`` names; an ip stays a string (it may be a service's or a pod's)."""
    if key == "pod_id":
        return state.pods.get(value)
    if key == "pod_name":
        return state.pods.get(state.pod_by_name.get(value, ""))
    if key == "container_id":
        return state.containers.get(value)
    if key == "service_id":
        return state.services.get(value)
    if key == "service_name":
        return state.services.get(state.service_by_name.get(value, ""))
    if key == "replicaset_id":
        return state.replicasets.get(value)
    if key == "replicaset_name":
        return state.replicasets.get(state.replicaset_by_name.get(value, ""))
    if key == "deployment_id":
        return state.deployments.get(value)
    if key == "deployment_name":
        return state.deployments.get(state.deployment_by_name.get(value, ""))
    if key == "ip":
        return value
    raise KeyError(f"unknown metadata key {key!r}; known: {', '.join(KEY_KINDS)}")


def pod_status(pod: Pod) -> str:
    phase = TERMINATED if pod.stop_ns else pod.phase
    ready = pod.ready and not pod.stop_ns
    return json.dumps(
        {"phase": phase, "message": pod.message, "reason": pod.reason, "ready": ready}, separators=(",", ":")
    )


def container_status(c: Container) -> str:
    return json.dumps({"state": c.state, "message": c.message, "reason": c.reason}, separators=(",", ":"))


def pod_attr(state: ClusterState, pod: Pod, attr: str) -> str:
    """An attribute of a pod; its services and owners only if alive while the pod was."""
    if attr == "pod_name":
        return pod.full_name
    if attr == "pod_id":
        return pod.uid
    if attr == "namespace":
        return pod.namespace
    if attr == "node_name":
        return pod.node_name
    if attr == "hostname":
        node = state.nodes.get(pod.node_name)
        return node.hostname if node is not None else pod.node_name
    if attr == "service_name":
        return stringify([s.full_name for s in state.services_of(pod)])
    if attr == "service_id":
        return stringify([s.uid for s in state.services_of(pod)])
    if attr == "pod_ip":
        return pod.pod_ip
    if attr == "start_time":
        return str(pod.start_ns or pod.create_ns) if (pod.start_ns or pod.create_ns) else ""
    if attr == "status":
        return pod_status(pod)
    if attr.startswith(("replicaset_", "deployment_")):
        rs = state.owner_replicaset(pod)
        if rs is None:
            return ""
        if attr.startswith("replicaset_"):
            return rs.full_name if attr == "replicaset_name" else rs.uid
        dep = state.owner_deployment(rs, pod.stop_ns)
        if dep is None:
            return ""
        return dep.full_name if attr == "deployment_name" else dep.uid
    return ""  # container_name/id of a whole pod, cmdline: not a pod's to say


def workload_attr(state: ClusterState, kind: str, w: Workload, attr: str) -> str:
    if attr == f"{kind}_name":
        return w.full_name
    if attr == f"{kind}_id":
        return w.uid
    if attr == "namespace":
        return w.namespace
    if attr == "start_time":
        return str(w.create_ns) if w.create_ns else ""
    if kind == "replicaset" and attr.startswith("deployment_"):
        dep = state.owner_deployment(w, w.stop_ns)
        if dep is None:
            return ""
        return dep.full_name if attr == "deployment_name" else dep.uid
    return ""


def service_attr(svc: Service, attr: str) -> str:
    if attr == "service_name":
        return svc.full_name
    if attr == "service_id":
        return svc.uid
    if attr == "namespace":
        return svc.namespace
    if attr == "start_time":
        return str(svc.create_ns) if svc.create_ns else ""
    return ""


def ip_attr(state: ClusterState, ip: str, attr: str) -> str:
    """Pixie's ip_to_service_id: a service's cluster IP first, else the services of the pod owning it."""
    if attr == "service_id" or attr == "service_name":
        svc = state.services.get(state.service_by_ip.get(ip, ""))
        if svc is not None:
            return service_attr(svc, attr)
    pod = state.pods.get(state.pod_uid_for_ip(ip))
    return pod_attr(state, pod, attr) if pod is not None else ""


def entity_attr(state: ClusterState, key: str, value: str, attr: str) -> str:
    """``attr`` of the entity ``value`` (of kind ``key``) names, "" when unknown or not applicable."""
    found = entity(state, key, value)
    if found is None:
        return ""
    if isinstance(found, str):
        return ip_attr(state, found, attr)
    if isinstance(found, Pod):
        return pod_attr(state, found, attr)
    if isinstance(found, Container):
        if attr == "container_name":
            return found.name
        if attr == "container_id":
            return found.cid
        if attr == "status":
            return container_status(found)
        if attr == "start_time":
            return str(found.start_ns) if found.start_ns else ""
        pod = state.pods.get(found.pod_uid)
        return pod_attr(state, pod, attr) if pod is not None else ""
    if isinstance(found, Service):
        return service_attr(found, attr)
    return workload_attr(state, KEY_KINDS[key], found, attr)


def container_attr(state: ClusterState, cid: str, attr: str) -> str:
    """``attr`` of the process whose cgroup is container ``cid`` (a upid look-up, minus cmdline)."""
    if attr == "container_id":
        return cid
    c = state.containers.get(cid)
    if c is None:
        return ""
    if attr == "container_name":
        return c.name
    pod = state.pods.get(c.pod_uid)
    return pod_attr(state, pod, attr) if pod is not None else ""
