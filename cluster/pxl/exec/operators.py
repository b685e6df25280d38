"""One function per plan node, each turning its input batches into output batches.

Streaming nodes (source, filter, map, limit) are generators, so a head(n) downstream stops the
scan as soon as it has n rows.  Blocking nodes (agg, join, union) collect their inputs first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.errors import PxlRuntimeError
from cluster.pxl.exec import aggregate
from cluster.pxl.exec.expressions import evaluate, evaluate_array
from cluster.pxl.exec.fragments import FinalAgg, PartialAgg, Receive
from cluster.pxl.exec.join import join_tables
from cluster.pxl.exec.udtf import run_udtf
from cluster.pxl.funcs import EvalContext
from cluster.pxl.sources import TableSource
from cluster.pxl.types import ARROW_TYPES
from cluster.schemas import SEMANTIC_KEY


def arrow_schema(relation: ir.Relation) -> pa.Schema:
    """The output schema, each field carrying its semantic type as metadata."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.dtype], nullable=False,
                               metadata={SEMANTIC_KEY: c.semantic.encode()}) for c in relation])


class Runner:
    """Runs plan nodes; ``received`` holds, per Receive stream, the tables the agents shipped."""

    def __init__(self, tables: TableSource, ctx: EvalContext,
                 received: Mapping[str, Sequence[pa.Table]] | None = None) -> None:
        self.tables = tables
        self.ctx = ctx
        self.received = received or {}

    def batches(self, node: ir.PlanNode) -> Iterator[pa.RecordBatch]:
        handler: Callable[[ir.PlanNode], Iterator[pa.RecordBatch]] = getattr(
            self, f"_run_{type(node).__name__.lower()}")
        return _guarded(type(node).__name__, handler(node))

    def schema(self, node: ir.PlanNode) -> pa.Schema:
        """What ``node`` emits: its relation's schema, or the shipped schema of fragment nodes."""
        if isinstance(node, Receive):
            return node.schema
        if isinstance(node, PartialAgg):
            return aggregate.partial_schema(self.schema(node.parent), node.groups, node.aggs)
        return arrow_schema(node.relation)

    def table(self, node: ir.PlanNode) -> pa.Table:
        return pa.Table.from_batches(list(self.batches(node)), schema=self.schema(node))

    # ---- streaming ---------------------------------------------------------------------------

    def _run_udtfsource(self, node: ir.UDTFSource) -> Iterator[pa.RecordBatch]:
        yield from run_udtf(node, self.ctx)

    def _run_source(self, node: ir.Source) -> Iterator[pa.RecordBatch]:
        schema = arrow_schema(node.relation)
        for batch in self.tables.scan(node.table, node.start_ns, node.end_ns):
            if batch.num_rows == 0:
                continue
            cols = []
            for field in schema:
                col = batch.column(field.name)
                if pa.types.is_dictionary(col.type):
                    col = col.dictionary_decode()
                if col.type != field.type:
                    col = col.cast(field.type)
                cols.append(col)
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    def _run_filter(self, node: ir.Filter) -> Iterator[pa.RecordBatch]:
        for batch in self.batches(node.parent):
            mask = evaluate(node.predicate, batch, self.ctx)
            if isinstance(mask, pa.Scalar):
                if mask.as_py():
                    yield batch
                continue
            out = batch.filter(mask)
            if out.num_rows:
                yield out

    def _run_map(self, node: ir.Map) -> Iterator[pa.RecordBatch]:
        schema = arrow_schema(node.relation)
        for batch in self.batches(node.parent):
            cols = [evaluate_array(e, batch, self.ctx) for e in node.exprs]
            yield pa.RecordBatch.from_arrays(cols, schema=schema)

    def _run_limit(self, node: ir.Limit) -> Iterator[pa.RecordBatch]:
        remaining = node.n
        if remaining <= 0:
            return
        upstream = self.batches(node.parent)
        try:
            for batch in upstream:
                if batch.num_rows >= remaining:
                    yield batch.slice(0, remaining)
                    return
                remaining -= batch.num_rows
                yield batch
        finally:
            upstream.close()  # stop the scan early

    # ---- blocking ----------------------------------------------------------------------------

    def _run_agg(self, node: ir.Agg) -> Iterator[pa.RecordBatch]:
        source = self.table(node.parent)
        if aggregate.splittable(node.aggs):
            states = aggregate.partial(source, node.groups, node.aggs)
            arrays = aggregate.finalize(states, node.groups, node.aggs, node.relation)
        else:
            arrays = aggregate.aggregate_whole(source, node)
        yield from _agg_batches(arrays, node.relation)

    def _run_partialagg(self, node: PartialAgg) -> Iterator[pa.RecordBatch]:
        states = aggregate.partial(self.table(node.parent), node.groups, node.aggs)
        yield from states.to_batches()

    def _run_finalagg(self, node: FinalAgg) -> Iterator[pa.RecordBatch]:
        merged = aggregate.merge(self.table(node.parent), node.groups, node.aggs)
        yield from _agg_batches(aggregate.finalize(merged, node.groups, node.aggs, node.relation),
                                node.relation)

    def _run_receive(self, node: Receive) -> Iterator[pa.RecordBatch]:
        parts = [p.cast(node.schema) if not p.schema.equals(node.schema) else p
                 for p in self.received.get(node.stream, ())]
        if not parts:
            return
        table = pa.concat_tables(parts)
        if node.order_by is not None and len(parts) > 1 and table.num_rows:
            table = table.take(pc.sort_indices(table, sort_keys=[(node.order_by, "ascending")]))
        yield from table.to_batches()

    def _run_join(self, node: ir.Join) -> Iterator[pa.RecordBatch]:
        left = self.table(node.left)
        right = self.table(node.right)
        out = join_tables(left, right, node)
        schema = arrow_schema(node.relation)
        yield from pa.Table.from_arrays(out.columns, schema=schema).to_batches()

    def _run_union(self, node: ir.Union) -> Iterator[pa.RecordBatch]:
        schema = arrow_schema(node.relation)
        parts = [pa.Table.from_arrays(self.table(p).columns, schema=schema) for p in node.inputs]
        table = pa.concat_tables(parts)
        if "time_" in schema.names and table.num_rows:
            table = table.take(pc.sort_indices(table, sort_keys=[("time_", "ascending")]))
        yield from table.to_batches()



def _agg_batches(arrays: list[pa.Array], relation: ir.Relation) -> Iterator[pa.RecordBatch]:
    schema = arrow_schema(relation)
    if arrays and len(arrays[0]):
        cols = [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, schema, strict=True)]
        yield pa.RecordBatch.from_arrays(cols, schema=schema)


def _guarded(operator: str, it: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Re-raise engine failures as PxlRuntimeError naming the operator."""
    try:
        yield from it
    except PxlRuntimeError:
        raise
    except (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError, ZeroDivisionError) as e:
        raise PxlRuntimeError(f"{operator} operator", str(e)) from e
    finally:
        it.close()  # type: ignore[attr-defined]
