"""One function per plan node, each turning its input batches into output batches.

Streaming nodes (source, filter, map, limit) are generators, so a head(n) downstream stops the
scan as soon as it has n rows.  Blocking nodes (agg, join, union) collect their inputs first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.errors import PxlDeadlineError, PxlRuntimeError
from cluster.pxl.exec import aggregate
from cluster.pxl.exec.expressions import evaluate, evaluate_array
from cluster.pxl.exec.fragments import FinalAgg, PartialAgg, Receive
from cluster.pxl.exec.fused_aggregate import aggregate_fused
from cluster.pxl.exec.join import join_tables
from cluster.pxl.exec.parallel_agg import partial_states
from cluster.pxl.exec.threads import POOL
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

    def batches(self, node: ir.PlanNode, parallel: bool = True) -> Iterator[pa.RecordBatch]:
        """``parallel=False`` for consumers that may stop early (head), where batches computed
        ahead would be wasted."""
        chain = _chain(node)
        if chain is not None:
            run = self._run_chain_parallel if POOL is not None and parallel else self._run_chain
            return _guarded(type(node).__name__, run(*chain), self.ctx.deadline)
        handler: Callable[[ir.PlanNode], Iterator[pa.RecordBatch]] = getattr(
            self, f"_run_{type(node).__name__.lower()}")
        return _guarded(type(node).__name__, handler(node), self.ctx.deadline)

    def _run_chain(self, source: ir.Source, steps: list[ir.Filter | ir.Map]) -> Iterator[pa.RecordBatch]:
        """Source -> filters/maps, one batch at a time (lazy, for heads)."""
        schema = arrow_schema(source.relation)
        plan = _prune_plan(steps)
        for raw in self.tables.scan(source.table, source.start_ns, source.end_ns):
            if raw.num_rows:
                out = self._apply_chain(schema, raw, plan)
                if out is not None:
                    yield out

    def _run_chain_parallel(self, source: ir.Source, steps: list[ir.Filter | ir.Map]
                            ) -> Iterator[pa.RecordBatch]:
        """Source -> filters/maps with each batch's work in the engine's threads, in source order.

        Why: every step is a few pyarrow kernels per batch, which release the GIL, so two batches run
        at once.  At most ``_LOOKAHEAD`` batches are in flight, so a head(n) downstream still stops
        the scan early (closing this generator drops the batches not yet started)."""
        assert POOL is not None
        schema = arrow_schema(source.relation)
        plan = _prune_plan(steps)
        pending: deque[Future[pa.RecordBatch | None]] = deque()
        try:
            for raw in self.tables.scan(source.table, source.start_ns, source.end_ns):
                if raw.num_rows == 0:
                    continue
                pending.append(POOL.submit(self._apply_chain, schema, raw, plan))
                if len(pending) >= _LOOKAHEAD:
                    out = pending.popleft().result()
                    if out is not None:
                        yield out
            while pending:
                out = pending.popleft().result()
                if out is not None:
                    yield out
        finally:
            for f in pending:
                f.cancel()

    def _apply_chain(self, schema: pa.Schema, raw: pa.RecordBatch,
                     plan: list[tuple[ir.Filter | ir.Map, list[str] | None]]) -> pa.RecordBatch | None:
        """One source batch through every step; None when a filter drops all its rows.  A failure
        names the step's operator, as when each operator runs on its own."""
        operator = "Source"
        try:
            batch = _source_batch(schema, raw)
            for step, keep in plan:
                operator = type(step).__name__
                if isinstance(step, ir.Filter):
                    if keep is not None and len(keep) < batch.num_columns:
                        batch = batch.select(keep)  # copy only the columns the rest of the chain reads
                    filtered = _filter_batch(step, batch, self.ctx)
                    if filtered is None:
                        return None
                    batch = filtered
                else:
                    batch = _map_batch(step, batch, self.ctx)
            return batch
        except _ENGINE_ERRORS as e:
            raise PxlRuntimeError(f"{operator} operator", str(e)) from e

    def schema(self, node: ir.PlanNode) -> pa.Schema:
        """What ``node`` emits: its relation's schema, or the shipped schema of fragment nodes."""
        if isinstance(node, Receive):
            return node.schema
        if isinstance(node, PartialAgg):
            return aggregate.partial_schema(self.schema(node.parent), node.groups, node.aggs)
        return arrow_schema(node.relation)

    def table(self, node: ir.PlanNode) -> pa.Table:
        if self.ctx.budget is None:
            return pa.Table.from_batches(list(self.batches(node)), schema=self.schema(node))
        batches = []
        for batch in self.batches(node):  # charged as it grows, so an oversized input stops early
            self.ctx.budget.charge(batch.get_total_buffer_size(), type(node).__name__)
            batches.append(batch)
        return pa.Table.from_batches(batches, schema=self.schema(node))

    # ---- streaming ---------------------------------------------------------------------------

    def _run_udtfsource(self, node: ir.UDTFSource) -> Iterator[pa.RecordBatch]:
        yield from run_udtf(node, self.ctx)

    def _run_source(self, node: ir.Source) -> Iterator[pa.RecordBatch]:
        schema = arrow_schema(node.relation)
        for batch in self.tables.scan(node.table, node.start_ns, node.end_ns):
            if batch.num_rows == 0:
                continue
            yield _source_batch(schema, batch)

    def _run_filter(self, node: ir.Filter) -> Iterator[pa.RecordBatch]:
        for batch in self.batches(node.parent):
            out = _filter_batch(node, batch, self.ctx)
            if out is not None:
                yield out

    def _run_map(self, node: ir.Map) -> Iterator[pa.RecordBatch]:
        for batch in self.batches(node.parent):
            yield _map_batch(node, batch, self.ctx)

    def _run_limit(self, node: ir.Limit) -> Iterator[pa.RecordBatch]:
        remaining = node.n
        if remaining <= 0:
            return
        upstream = self.batches(node.parent, parallel=False)
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
        fused = aggregate_fused(source, node.groups, node.aggs, node.relation)
        if fused is not None:
            arrays = fused
        elif aggregate.splittable(node.aggs):
            states = partial_states(source, node.groups, node.aggs)
            arrays = aggregate.finalize(states, node.groups, node.aggs, node.relation)
        else:
            arrays = aggregate.aggregate_whole(source, node)
        yield from _agg_batches(arrays, node.relation)

    def _run_partialagg(self, node: PartialAgg) -> Iterator[pa.RecordBatch]:
        states = partial_states(self.table(node.parent), node.groups, node.aggs)
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



_LOOKAHEAD = 4  # batches in flight in a parallel chain
#: failures of pyarrow kernels and UDFs, reported as a PxlRuntimeError naming the operator
_ENGINE_ERRORS = (pa.ArrowException, ValueError, TypeError, KeyError, OverflowError, ZeroDivisionError)


def _chain(node: ir.PlanNode) -> tuple[ir.Source, list[ir.Filter | ir.Map]] | None:
    """(source, steps in execution order) when ``node`` is filters/maps straight over a Source."""
    steps: list[ir.Filter | ir.Map] = []
    while isinstance(node, (ir.Filter, ir.Map)):
        steps.append(node)
        node = node.parent
    if not steps or not isinstance(node, ir.Source):
        return None
    return node, steps[::-1]


def _refs(expr: ir.Expr, out: set[str]) -> set[str]:
    if isinstance(expr, ir.ColumnRef):
        out.add(expr.name)
    elif isinstance(expr, ir.Call):
        for a in expr.args:
            _refs(a, out)
    return out


def _prune_plan(steps: list[ir.Filter | ir.Map]) -> list[tuple[ir.Filter | ir.Map, list[str] | None]]:
    """Each step with, for a filter, the columns to keep before it (None: all of them).

    Why: a filter copies every column it keeps; when maps after it read only a few columns (a
    projection, as in ``df[['time_', ...]]``), the wide payload columns are dropped before filtering."""
    needed: set[str] | None = None  # columns read by the steps after the current one; None = all
    plan: list[tuple[ir.Filter | ir.Map, list[str] | None]] = []
    for step in reversed(steps):
        if isinstance(step, ir.Map):
            plan.append((step, None))
            needed = set().union(*(_refs(e, set()) for e in step.exprs))
        else:
            if needed is not None:
                needed = _refs(step.predicate, set(needed))
                keep = [c.name for c in step.parent.relation if c.name in needed]
            else:
                keep = None
            plan.append((step, keep))
    return plan[::-1]


def _source_batch(schema: pa.Schema, batch: pa.RecordBatch) -> pa.RecordBatch:
    """A stored batch as the Source relation types it (dictionary columns decoded, types cast)."""
    cols = []
    for field in schema:
        col = batch.column(field.name)
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if col.type != field.type:
            col = col.cast(field.type)
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def _filter_batch(node: ir.Filter, batch: pa.RecordBatch, ctx: EvalContext) -> pa.RecordBatch | None:
    mask = evaluate(node.predicate, batch, ctx)
    if isinstance(mask, pa.Scalar):
        return batch if mask.as_py() else None
    out = batch.filter(mask)
    return out if out.num_rows else None


def _map_batch(node: ir.Map, batch: pa.RecordBatch, ctx: EvalContext) -> pa.RecordBatch:
    cols = [evaluate_array(e, batch, ctx) for e in node.exprs]
    return pa.RecordBatch.from_arrays(cols, schema=arrow_schema(node.relation))


def _agg_batches(arrays: list[pa.Array], relation: ir.Relation) -> Iterator[pa.RecordBatch]:
    schema = arrow_schema(relation)
    if arrays and len(arrays[0]):
        cols = [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, schema, strict=True)]
        yield pa.RecordBatch.from_arrays(cols, schema=schema)


def _guarded(operator: str, it: Iterator[pa.RecordBatch], deadline: float | None = None
             ) -> Iterator[pa.RecordBatch]:
    """Re-raise engine failures as PxlRuntimeError naming the operator, and stop at the deadline."""
    try:
        for batch in it:
            if deadline is not None and time.monotonic() > deadline:
                raise PxlDeadlineError(f"{operator} operator", "the query ran past its deadline")
            yield batch
    except PxlRuntimeError:
        raise
    except _ENGINE_ERRORS as e:
        raise PxlRuntimeError(f"{operator} operator", str(e)) from e
    finally:
        it.close()  # type: ignore[attr-defined]
