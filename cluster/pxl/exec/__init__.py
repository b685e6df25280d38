"""The PxL engine: runs a compiled query's plan over Arrow batches (see operators.py)."""

from __future__ import annotations

import pyarrow as pa

from cluster.pxl.errors import MemoryBudget
from cluster.pxl.exec.export import PxlExportError, run_sinks
from cluster.pxl.exec.operators import Runner, arrow_schema
from cluster.pxl.funcs import EvalContext
from cluster.pxl.ir import CompiledQuery
from cluster.pxl.sources import MetadataSource, TableSource, VizierInfo


def execute(query: CompiledQuery, tables: TableSource, metadata: MetadataSource | None, *,
            vizier: VizierInfo | None = None, deadline: float | None = None,
            budget: MemoryBudget | None = None) -> list[tuple[str, pa.Table]]:
    """Each sink's table, in output order; fields carry semantic_type metadata.

    px.export sinks send their rows and yield no table; a failed export raises
    cluster.pxl.exec.export.PxlExportError, which carries the computed tables.
    ``vizier`` answers the UDTFs that ask about the cluster (px.GetAgentStatus, px.GetSchemas, ...).
    ``deadline`` (a time.monotonic() value) stops the query with PxlDeadlineError at the next batch;
    ``budget`` stops it with PxlResourceError when it materialises more than its memory budget.
    """
    ctx = EvalContext(metadata=metadata, now_ns=query.now_ns, vizier=vizier, deadline=deadline, budget=budget)
    runner = Runner(tables, ctx)
    return run_sinks(query.sinks, runner.table)


__all__ = ["PxlExportError", "arrow_schema", "execute"]
