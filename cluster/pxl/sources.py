"""What the engine needs from its surroundings: table data and Kubernetes/process metadata.

These are Protocols so the table store, a Kelvin receiving batches, and test fakes can all be passed
to :func:`cluster.pxl.execute` without inheriting from anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol, TypedDict, runtime_checkable

import pyarrow as pa

#: The attributes :meth:`MetadataSource.upid_attr` must answer.
UPID_ATTRS = (
    "pod_name", "pod_id", "service_name", "service_id", "namespace", "node_name", "hostname",
    "container_name", "container_id", "cmdline",
)


class TableSource(Protocol):
    def scan(self, table: str, start_ns: int | None, end_ns: int | None) -> Iterator[pa.RecordBatch]:
        """Batches of ``table`` in ascending ``time_``, with start <= time_ <= end (None = open).

        Only the rows present when called are returned, so a batch query has a definite end.
        """
        ...


class MetadataSource(Protocol):
    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        """One string per upid (fixed_size_binary(16)) for ``attr`` in UPID_ATTRS; "" when unknown."""
        ...

    def hostname(self) -> str:
        """Hostname of the agent running the query (px._exec_hostname)."""
        ...


@runtime_checkable
class EntityMetadataSource(Protocol):
    """Optional extra a MetadataSource may implement: look-ups keyed by something other than a upid.

    ``key`` is the kind of the values (pod_id, pod_name, service_id, service_name, container_id, ip),
    ``attr`` the wanted attribute: the names of UPID_ATTRS, plus ``pod_ip``, ``start_time``
    (decimal ns since the epoch), ``status`` (JSON: a pod's {"phase","message","reason","ready"}, a
    container's {"state","message","reason"}).  Without it, such look-ups give "" (unknown), which
    is what Pixie returns for an entity it does not know.
    """

    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array: ...


@runtime_checkable
class AgentIdentitySource(Protocol):
    """Optional extra of a MetadataSource: the short id (asid) of the agent it serves (px.asid())."""

    def asid(self) -> int: ...


@runtime_checkable
class ClusterNetworkSource(Protocol):
    """Optional extra of a MetadataSource: the cluster's pod and service CIDRs (px.get_cidrs()).

    Without it px.get_cidrs() gives "[]": no CIDR is known, so cidrs_contain_ip is false for all.
    """

    def cidrs(self) -> list[str]: ...


class AgentStatus(TypedDict):
    """One agent as px.GetAgentStatus() shows it (schemas.md §7)."""

    agent_id: bytes  # 16 bytes, high word first, as a UINT128 column stores it
    asid: int
    hostname: str
    ip_address: str
    agent_state: str  # AGENT_STATE_HEALTHY / _UNRESPONSIVE / _DISCONNECTED / _UNKNOWN
    create_time: int  # ns since the epoch
    last_heartbeat_ns: int  # ns since the agent's last heartbeat
    kernel_headers_installed: bool
    collects_data: bool  # False for Kelvins: include_kelvin=False drops those rows


class VizierInfo(Protocol):
    """What the UDTFs (px.GetAgentStatus, px.GetSchemas, ...) ask the cluster about.

    The query broker passes one to :func:`cluster.pxl.execute`; a UDTF that needs it fails with a
    PxlRuntimeError when it is missing.  GetUDFList/GetUDAList/GetUDTFList answer from the engine's
    own registry and need nothing from here.
    """

    def agents(self) -> list[AgentStatus]:
        """Every agent the broker knows, Kelvins included."""
        ...

    def schemas(self) -> Mapping[str, pa.Schema]:
        """Every table by name.  The table's description is the schema metadata ``desc``, a column's
        description the field metadata ``desc`` and its pattern the field metadata ``pattern_type``
        (cluster.schemas.col writes the first two)."""
        ...


@runtime_checkable
class UDTFProvider(Protocol):
    """Optional extra of a VizierInfo: answers a UDTF the engine cannot compute by itself.

    ``udtf(name, args)`` returns the table (with exactly the UDTF's columns) or None to let the
    engine answer; GetTracepointStatus asks here first, so tracepoints can report once they exist.
    """

    def udtf(self, name: str, args: Mapping[str, object]) -> pa.Table | None: ...
