"""Metadata for a replay: the snapshot a recording took, answered as the live agent would have.

With no agent and no /proc to ask, every look-up is a join against the snapshot (one row per upid).
Entity look-ups (pod_id -> node, service_name -> namespace, ...) are answered from the same rows,
since a pod's attributes are the same whichever of its processes is asked. IP look-ups are answered from
the agent's pod addresses when it sent them (live queries), else give "" (unknown: a recording keeps
processes, not addresses), which is what Pixie says for an IP it does not know.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from cluster.schemas import UINT128
from cluster.store.recording import METADATA_ATTRS


class RecordedMetadata:
    """A MetadataSource and EntityMetadataSource (cluster.pxl.sources) over a metadata snapshot."""

    def __init__(self, snapshot: pa.Table, hostname: str, ips: pa.Table | None = None):
        """``ips``: optional (ip, then entity attributes) rows, one per pod address the agent knew."""
        self._hostname = hostname
        self._ips = ips.combine_chunks() if ips is not None and ips.num_rows else None
        # The same upid recorded by two agents would be a bug upstream; keep the first.
        upids = snapshot.column("upid").combine_chunks().cast(UINT128)
        _, first = _first_index(upids)
        self._table = snapshot.take(first).combine_chunks()
        self._upids = self._table.column("upid").combine_chunks()
        self._by_entity: dict[str, tuple[pa.Array, pa.Table]] = {}

    def hostname(self) -> str:
        return self._hostname

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        if attr not in METADATA_ATTRS:
            raise KeyError(f"unknown metadata attribute {attr!r}; known: {', '.join(METADATA_ATTRS)}")
        if isinstance(upids, pa.ChunkedArray):
            upids = upids.combine_chunks()
        idx = pc.index_in(upids.cast(UINT128), value_set=self._upids)
        return pc.fill_null(self._table.column(attr).combine_chunks().take(idx), "")

    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if key == "ip" and self._ips is not None and attr in self._ips.column_names:
            idx = pc.index_in(values.cast(pa.string()), value_set=self._ips.column("ip").combine_chunks())
            return pc.fill_null(self._ips.column(attr).combine_chunks().take(idx), "")
        if key not in METADATA_ATTRS or attr not in METADATA_ATTRS:
            return pa.array([""] * len(values), pa.string())
        keys, rows = self._entity_index(key)
        idx = pc.index_in(values.cast(pa.string()), value_set=keys)
        return pc.fill_null(rows.column(attr).combine_chunks().take(idx), "")

    def _entity_index(self, key: str) -> tuple[pa.Array, pa.Table]:
        """Distinct non-empty values of ``key`` and the first snapshot row holding each."""
        if key not in self._by_entity:
            col = self._table.column(key).combine_chunks()
            keep = pc.not_equal(col, "")
            rows = self._table.filter(keep)
            keys, first = _first_index(rows.column(key).combine_chunks())
            self._by_entity[key] = (keys, rows.take(first))
        return self._by_entity[key]


def _first_index(values: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Distinct values in first-seen order and the index of each one's first occurrence."""
    distinct = pc.unique(values)
    return distinct, pc.index_in(distinct, value_set=values)
