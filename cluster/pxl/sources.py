"""What the engine needs from its surroundings: table data and Kubernetes/process metadata.

These are Protocols so the table store, a Kelvin receiving batches, and test fakes can all be passed
to :func:`cluster.pxl.execute` without inheriting from anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

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

    ``key`` is the kind of the values (pod_id, pod_name, service_id, service_name, ip), ``attr`` the
    wanted attribute (same names as UPID_ATTRS).  Without it, such look-ups give "" (unknown), which
    is what Pixie returns for an entity it does not know.
    """

    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array: ...
