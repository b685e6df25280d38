"""The PxL engine: runs a compiled query's plan over Arrow batches (see operators.py)."""

from __future__ import annotations

import pyarrow as pa

from cluster.pxl.exec.operators import Runner, arrow_schema
from cluster.pxl.funcs import EvalContext
from cluster.pxl.ir import CompiledQuery
from cluster.pxl.sources import MetadataSource, TableSource, VizierInfo


def execute(query: CompiledQuery, tables: TableSource, metadata: MetadataSource | None, *,
            vizier: VizierInfo | None = None) -> list[tuple[str, pa.Table]]:
    """Each sink's table, in output order; fields carry semantic_type metadata.

    ``vizier`` answers the UDTFs that ask about the cluster (px.GetAgentStatus, px.GetSchemas, ...).
    """
    runner = Runner(tables, EvalContext(metadata=metadata, now_ns=query.now_ns, vizier=vizier))
    return [(sink.name, runner.table(sink.node)) for sink in query.sinks]


__all__ = ["arrow_schema", "execute"]
