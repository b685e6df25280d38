"""KubernetesMetadata: the cluster source of metadata for PxL, fed by watches of the API server.

It is a MetadataSource (upid look-ups), an EntityMetadataSource (pod/service/ip/... look-ups) and a
ClusterNetworkSource (px.get_cidrs) of cluster.pxl.sources. A upid reaches its pod through the
container its process runs in: ``resolver(upid) -> container id`` is the node's business (cgroups,
cluster/pem), the container id -> pod mapping is the API server's (pod status containerStatuses).

    md = KubernetesMetadata.from_kubeconfig(context="kind-dev", resolver=cgroups.container_of)
    md.start(); md.wait_synced(30)
    ... execute(query, tables, md) ...
    md.stop()
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from cluster.metadata.k8s import attrs
from cluster.metadata.k8s.state import DEFAULT_MAX_DELETED, DEFAULT_RETENTION_NS, RESOURCES, ClusterState
from cluster.metadata.k8s.watcher import Reflector
from cluster.pxl.sources import UPID_ATTRS

#: upid (16 bytes) -> the id of the container its process runs in, or None outside any container
Resolver = Callable[[bytes], str | None]

#: what entity_attr can be asked for, besides UPID_ATTRS
ENTITY_ATTRS = (
    *UPID_ATTRS,
    "deployment_name",
    "deployment_id",
    "replicaset_name",
    "replicaset_id",
    "pod_ip",
    "start_time",
    "status",
)


def list_functions(api_client: k8s_client.ApiClient) -> dict[str, Callable[..., Any]]:
    """The client's list/watch call for each resource, cluster-wide."""
    core = k8s_client.CoreV1Api(api_client)
    apps = k8s_client.AppsV1Api(api_client)
    return {
        "namespaces": core.list_namespace,
        "nodes": core.list_node,
        "deployments": apps.list_deployment_for_all_namespaces,
        "replicasets": apps.list_replica_set_for_all_namespaces,
        "services": core.list_service_for_all_namespaces,
        "endpoints": core.list_endpoints_for_all_namespaces,
        "pods": core.list_pod_for_all_namespaces,
    }


class KubernetesMetadata:
    """MetadataSource over a cluster's API server (see the module docstring)."""

    def __init__(
        self,
        api_client: k8s_client.ApiClient,
        resolver: Resolver | None = None,
        *,
        hostname: str | None = None,
        cmdline: Callable[[bytes], str] | None = None,
        service_cidrs: Sequence[str] = (),
        clock: Callable[[], int] = time.time_ns,
        retention_ns: int = DEFAULT_RETENTION_NS,
        max_deleted: int = DEFAULT_MAX_DELETED,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        request_timeout_s: float = 30.0,
    ) -> None:
        """``resolver`` maps a upid to its container id (None: no upid resolves to a pod);
        ``cmdline`` answers upid_to_cmdline, which is the node's to say, not the API server's;
        ``service_cidrs`` adds the service range to px.get_cidrs() (the API does not publish it)."""
        self.api_client = api_client
        self.resolver = resolver
        self.cmdline = cmdline
        self.service_cidrs = tuple(service_cidrs)
        self._hostname = hostname or socket.gethostname()
        self.state = ClusterState(clock=clock, retention_ns=retention_ns, max_deleted=max_deleted)
        fns = list_functions(api_client)
        self.reflectors = {
            r: Reflector(
                r,
                fns[r],
                self.state,
                page_size=page_size,
                watch_timeout_s=watch_timeout_s,
                request_timeout_s=request_timeout_s,
            )
            for r in RESOURCES
        }

    @classmethod
    def from_kubeconfig(
        cls, context: str | None = None, config_file: str | None = None, **kwargs: Any
    ) -> KubernetesMetadata:
        """From a kubeconfig (default ~/.kube/config or $KUBECONFIG) and one of its contexts."""
        return cls(k8s_config.new_client_from_config(config_file=config_file, context=context), **kwargs)

    @classmethod
    def in_cluster(cls, **kwargs: Any) -> KubernetesMetadata:
        """From the pod's service account, as the Vizier and PEM pods run."""
        configuration = k8s_client.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return cls(k8s_client.ApiClient(configuration), **kwargs)

    # ---- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        for r in self.reflectors.values():
            r.start()

    def stop(self) -> None:
        for r in self.reflectors.values():
            r.request_stop()  # all of them at once, then wait for each
        for r in self.reflectors.values():
            r.stop()

    def wait_synced(self, timeout: float) -> bool:
        """True once every resource has been listed (the state is complete, if maybe not current)."""
        deadline = time.monotonic() + timeout
        return all(r.synced.wait(max(0.0, deadline - time.monotonic())) for r in self.reflectors.values())

    def status(self) -> dict[str, Any]:
        """Per resource: lists, re-lists after 410, events, errors, resourceVersion; and object counts."""
        return {
            "resources": {name: vars(r.stats).copy() for name, r in self.reflectors.items()},
            "objects": self.state.counts(),
        }

    # ---- cluster.pxl.sources protocols ------------------------------------------------------------

    def hostname(self) -> str:
        return self._hostname

    def cidrs(self) -> list[str]:
        with self.state.lock:
            pods = {c for n in self.state.nodes.values() if n.stop_ns == 0 for c in n.pod_cidrs}
        return sorted(pods) + [c for c in self.service_cidrs if c not in pods]

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        if attr not in UPID_ATTRS:
            raise KeyError(f"unknown metadata attribute {attr!r}; known: {', '.join(UPID_ATTRS)}")
        return self._by_upid(attr, upids)

    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array:
        if attr not in ENTITY_ATTRS or (key != "upid" and key not in attrs.KEY_KINDS):
            return pa.nulls(len(values), pa.string()).fill_null("")
        if key == "upid":  # upid_to_deployment_name and the other attributes beyond UPID_ATTRS
            return self._by_upid(attr, values)
        state = self.state
        return self._per_distinct(values, lambda v: attrs.entity_attr(state, key, v, attr))

    def _by_upid(self, attr: str, upids: pa.Array) -> pa.Array:
        encoded, distinct = _distinct(upids)
        if attr == "cmdline":
            answers = [self.cmdline(u) if self.cmdline is not None and u is not None else "" for u in distinct]
        else:
            # The resolver reads the node (cgroups, /proc): ask it before taking the state's lock.
            cids = [self.resolver(u) if self.resolver is not None and u is not None else None for u in distinct]
            with self.state.lock:
                answers = [attrs.container_attr(self.state, cid, attr) if cid else "" for cid in cids]
        return _take(answers, encoded)

    def pod_id_for_ip_at(self, ips: pa.Array, times: pa.Array) -> pa.Array:
        """px.ip_to_pod_id(ip, time): the pod that held each IP at that time (ns since the epoch)."""
        if isinstance(ips, pa.ChunkedArray):
            ips = ips.combine_chunks()
        if isinstance(times, pa.ChunkedArray):
            times = times.combine_chunks()
        pairs = zip(ips.to_pylist(), times.cast(pa.int64()).to_pylist(), strict=True)
        with self.state.lock:
            out = [self.state.pod_uid_for_ip(ip, t) if ip is not None and t is not None else "" for ip, t in pairs]
        return pa.array(out, pa.string())

    def _per_distinct(self, values: pa.Array, fn: Callable[[Any], str]) -> pa.Array:
        """Ask once per distinct value (a column has few), under one hold of the lock, then take."""
        encoded, distinct = _distinct(values)
        with self.state.lock:
            answers = [fn(v) if v is not None else "" for v in distinct]
        return _take(answers, encoded)


def _distinct(values: pa.Array | pa.ChunkedArray) -> tuple[pa.DictionaryArray, list[Any]]:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = values.dictionary_encode()
    return encoded, encoded.dictionary.to_pylist()


def _take(answers: list[str], encoded: pa.DictionaryArray) -> pa.Array:
    return pa.array(answers, pa.string()).take(encoded.indices).fill_null("")
