"""df.ctx[key]: which metadata UDF a key compiles into, chosen from the columns the frame has
(pxl_surface §5.3).  Resolution happens on the frame's current relation, so the same key can become
upid_to_pod_name on process_stats and pod_id_to_pod_name after a groupby on pod_id."""

from __future__ import annotations

from cluster.pxl.funcs.metadata_funcs import metadata_udf_name

ALIASES = {
    "pod": "pod_name", "service": "service_name", "deployment": "deployment_name",
    "replica_set": "replicaset_name", "replicaset": "replicaset_name", "replica_set_id": "replicaset_id",
    "node": "node_name", "host": "hostname", "container": "container_name", "cmd": "cmdline",
}

SOURCES: dict[str, tuple[str, ...]] = {
    "pod_name": ("upid", "pod_id"),
    "namespace": ("upid", "pod_id", "pod_name", "service_name"),
    "service_name": ("upid", "service_id", "pod_id", "pod_name"),
    "service_id": ("upid", "service_name", "pod_id", "pod_name"),
    "pod_id": ("upid", "pod_name"),
    "node_name": ("upid", "pod_id"),
    "hostname": ("upid",),
    "container_name": ("upid",),
    "container_id": ("upid",),
    "cmdline": ("upid",),
    "asid": ("upid",),
    "pid": ("upid",),
    "deployment_name": ("upid", "deployment_id", "pod_id", "pod_name", "replicaset_id", "replicaset_name"),
    "deployment_id": ("upid", "deployment_name", "pod_id", "pod_name", "replicaset_id", "replicaset_name"),
    "replicaset_name": ("upid", "pod_id", "pod_name", "replicaset_id"),
    "replicaset_id": ("upid", "pod_id", "pod_name", "replicaset_name"),
}

ALL_KEYS = sorted(set(SOURCES) | set(ALIASES))


def canonical_key(key: str) -> str | None:
    key = ALIASES.get(key, key)
    return key if key in SOURCES else None


def resolve(key: str, columns: set[str]) -> tuple[str, tuple[str, ...]] | None:
    """(registry function, argument columns) for a canonical key, or None if no source column."""
    for source in SOURCES[key]:
        if source not in columns:
            continue
        if key == "pid":
            return "upid_to_pid", (source,)
        if key == "asid":
            return "upid_to_asid", (source,)
        if key == "pod_name" and source == "upid" and {"local_addr", "time_"} <= columns:
            return "_upid_to_podname_local_addr_fallback", ("upid", "local_addr", "time_")
        if source == "pod_name" and key == "namespace":
            return "pod_name_to_namespace", (source,)
        return metadata_udf_name(source, key), (source,)
    return None
