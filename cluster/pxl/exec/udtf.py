"""Runs table functions (ir.UDTFSource): px.GetAgentStatus, px.GetSchemas, px.GetUDFList, ...

Cluster facts come from the VizierInfo the caller passed to execute(); the function lists come from
the engine's own registry, so they always match what a script can call.  Every result has exactly
the columns the compiler promised (cluster.pxl.funcs.udtfs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping

import pyarrow as pa

from cluster.pxl import ir
from cluster.pxl.errors import PxlRuntimeError
from cluster.pxl.funcs import REGISTRY, AggregateFunc, EvalContext, ScalarFunc
from cluster.pxl.funcs.udtfs import UDTFS
from cluster.pxl.sources import UDTFProvider, VizierInfo
from cluster.pxl.types import ARROW_TYPES
from cluster.schemas import DESC_KEY, SEMANTIC_KEY, px_type_name

PATTERN_KEY = b"pattern_type"

Rows = dict[str, list]


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _need_vizier(ctx: EvalContext, name: str) -> VizierInfo:
    if ctx.vizier is None:
        raise PxlRuntimeError(f"px.{name}", "this query runs without cluster information (no VizierInfo "
                                            "was passed to execute), so it cannot list agents or tables")
    return ctx.vizier


def _agent_status(ctx: EvalContext, args: Mapping[str, object]) -> Rows:
    agents = _need_vizier(ctx, "GetAgentStatus").agents()
    if not args.get("include_kelvin", True):
        agents = [a for a in agents if a["collects_data"]]
    cols = [c for c, _, _ in UDTFS["GetAgentStatus"].columns]
    return {c: [a[c] for a in agents] for c in cols}  # type: ignore[literal-required]


def _meta(md: Mapping[bytes, bytes] | None, key: bytes, default: str) -> str:
    return md[key].decode() if md and key in md else default


def _schemas(ctx: EvalContext, args: Mapping[str, object]) -> Rows:
    rows: Rows = {c: [] for c in ("table_name", "column_name", "column_type", "pattern_type",
                                  "column_desc")}
    for table, schema in sorted(_need_vizier(ctx, "GetSchemas").schemas().items()):
        for f in schema:
            rows["table_name"].append(table)
            rows["column_name"].append(f.name)
            rows["column_type"].append(px_type_name(f.type))
            rows["pattern_type"].append(_meta(f.metadata, PATTERN_KEY, "UNSPECIFIED"))
            rows["column_desc"].append(_meta(f.metadata, DESC_KEY, ""))
    return rows


def _tables(ctx: EvalContext, args: Mapping[str, object]) -> Rows:
    schemas = sorted(_need_vizier(ctx, "GetTables").schemas().items())
    return {"table_name": [t for t, _ in schemas],
            "table_desc": [_meta(s.metadata, DESC_KEY, "") for _, s in schemas]}


def _function_list(kind: type) -> Callable[[EvalContext, Mapping[str, object]], Rows]:
    def run(ctx: EvalContext, args: Mapping[str, object]) -> Rows:
        rows: Rows = {"name": [], "return_type": [], "args": []}
        for name in REGISTRY.names():
            f = REGISTRY.get(name)
            if not isinstance(f, kind) or name.startswith("_"):
                continue
            for sig in f.signatures:  # type: ignore[union-attr]
                rows["name"].append(name)
                rows["return_type"].append(sig.ret)
                rows["args"].append(_compact({"args": list(sig.args)}))
        return rows

    return run


def _udtf_list(ctx: EvalContext, args: Mapping[str, object]) -> Rows:
    rows: Rows = {"name": [], "executor": [], "init_args": [], "output_relation": []}
    for spec in UDTFS.values():
        rows["name"].append(spec.name)
        rows["executor"].append(spec.executor)
        rows["init_args"].append(_compact({"args": [
            {"name": a.name, "type": a.dtype, "default": a.default} for a in spec.args]}))
        rows["output_relation"].append(_compact({"columns": [
            {"name": c, "type": t, "semantic_type": s} for c, t, s in spec.columns]}))
    return rows


def _tracepoint_status(ctx: EvalContext, args: Mapping[str, object]) -> Rows:
    """No tracepoint can be deployed yet, so without a provider the honest answer is no rows."""
    return {c: [] for c, _, _ in UDTFS["GetTracepointStatus"].columns}


HANDLERS: dict[str, Callable[[EvalContext, Mapping[str, object]], Rows]] = {
    "GetAgentStatus": _agent_status,
    "GetSchemas": _schemas,
    "GetTables": _tables,
    "GetUDFList": _function_list(ScalarFunc),
    "GetUDAList": _function_list(AggregateFunc),
    "GetUDTFList": _udtf_list,
    "GetTracepointStatus": _tracepoint_status,
}


def _schema(node: ir.UDTFSource) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype], nullable=False,
                               metadata={SEMANTIC_KEY: c.semantic.encode()}) for c in node.relation])


def run_udtf(node: ir.UDTFSource, ctx: EvalContext) -> Iterator[pa.RecordBatch]:
    """The UDTF's rows as (at most) one batch with the node's relation."""
    args = dict(node.args)
    schema = _schema(node)
    table: pa.Table | None = None
    if isinstance(ctx.vizier, UDTFProvider):
        table = ctx.vizier.udtf(node.name, args)
    if table is None:
        handler = HANDLERS.get(node.name)
        if handler is None:
            raise PxlRuntimeError(f"px.{node.name}", "no implementation for this table function")
        rows = handler(ctx, args)
        table = pa.table({f.name: pa.array(rows[f.name], f.type) for f in schema})
    missing = [f.name for f in schema if f.name not in table.column_names]
    if missing:
        raise PxlRuntimeError(f"px.{node.name}", f"the cluster's answer lacks columns {missing}")
    table = pa.Table.from_arrays([table.column(f.name).cast(f.type) for f in schema], schema=schema)
    if table.num_rows:
        yield from table.combine_chunks().to_batches()
