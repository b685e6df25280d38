"""One function per plan node, each turning its input batches into output batches.

Streaming nodes (source, filter, map, limit) are generators, so a head(n) downstream stops the
scan as soon as it has n rows.  Blocking nodes (agg, join, union) collect their inputs first.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.errors import PxlDeadlineError, PxlRuntimeError
from cluster.pxl.exec import aggregate
from cluster.pxl.exec.expressions import encoded_type, evaluate, evaluate_array
from cluster.pxl.exec.fragments import FinalAgg, PartialAgg, Receive
from cluster.pxl.exec.fused_aggregate import aggregate_fused
from cluster.pxl.exec.join import join_tables
from cluster.pxl.exec.parallel_agg import partial_states
from cluster.pxl.exec.threads import POOL
from cluster.pxl.exec.udtf import run_udtf
from cluster.pxl.funcs import REGISTRY, EvalContext, ScalarFunc
from cluster.pxl.sources import TableSource
from cluster.pxl.types import ARROW_TYPES, STRING
from cluster.schemas import SEMANTIC_KEY


def arrow_schema(relation: ir.Relation) -> pa.Schema:
    """The output schema, each field carrying its semantic type as metadata."""
    return pa.schema(
        [
            pa.field(c.name, ARROW_TYPES[c.dtype], nullable=False, metadata={SEMANTIC_KEY: c.semantic.encode()})
            for c in relation
        ]
    )


class Runner:
    """Runs plan nodes; ``received`` holds, per Receive stream, the tables the agents shipped."""

    def __init__(
        self, tables: TableSource, ctx: EvalContext, received: Mapping[str, Sequence[pa.Table]] | None = None
    ) -> None:
        self.tables = tables
        self.ctx = ctx
        self.received = received or {}

    def batches(
        self,
        node: ir.PlanNode,
        parallel: bool = True,
        encoded: frozenset[str] = frozenset(),
        needed: frozenset[str] | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """``parallel=False`` for consumers that may stop early (head), where batches computed
        ahead would be wasted.  ``encoded``: columns the consumer takes dictionary-encoded
        (group-by keys), which a chain then leaves encoded where it computes them so.  ``needed``:
        the only columns the consumer reads (None: all); a chain then computes only those."""
        chain = _chain(node)
        if chain is not None:
            source, steps = chain
            plan = _chain_plan(source, steps, encoded, needed)
            run = self._run_chain_parallel if POOL is not None and parallel else self._run_chain
            return _guarded(type(node).__name__, run(source, plan), self.ctx.deadline)
        handler: Callable[[ir.PlanNode], Iterator[pa.RecordBatch]] = getattr(
            self, f"_run_{type(node).__name__.lower()}"
        )
        return _guarded(type(node).__name__, handler(node), self.ctx.deadline)

    def _run_chain(self, source: ir.Source, plan: _ChainPlan) -> Iterator[pa.RecordBatch]:
        """Source -> filters/maps, one batch at a time (lazy, for heads)."""
        for raw in self.tables.scan(source.table, source.start_ns, source.end_ns):
            if raw.num_rows:
                out = self._apply_chain(plan, raw)
                if out is not None:
                    yield out

    def _run_chain_parallel(self, source: ir.Source, plan: _ChainPlan) -> Iterator[pa.RecordBatch]:
        """Source -> filters/maps with each batch's work in the engine's threads, in source order.

        Why: every step is a few pyarrow kernels per batch, which release the GIL, so two batches run
        at once.  At most ``_LOOKAHEAD`` batches are in flight, so a head(n) downstream still stops
        the scan early (closing this generator drops the batches not yet started)."""
        assert POOL is not None
        pending: deque[Future[pa.RecordBatch | None]] = deque()
        try:
            for raw in self.tables.scan(source.table, source.start_ns, source.end_ns):
                if raw.num_rows == 0:
                    continue
                pending.append(POOL.submit(self._apply_chain, plan, raw))
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

    def _apply_chain(self, plan: _ChainPlan, raw: pa.RecordBatch) -> pa.RecordBatch | None:
        """One source batch through every step; None when a filter drops all its rows.  A failure
        names the step's operator, as when each operator runs on its own."""
        operator = "Source"
        try:
            batch = _source_batch(plan.source_schema, raw)
            for step in plan.steps:
                operator = type(step.node).__name__
                if isinstance(step.node, ir.Filter):
                    if step.keep is not None and len(step.keep) < batch.num_columns:
                        batch = batch.select(step.keep)  # copy only the columns the rest of the chain reads
                    filtered = _filter_batch(step.node, batch, self.ctx)
                    if filtered is None:
                        return None
                    batch = filtered
                else:
                    batch = _map_batch(step.node, batch, self.ctx, step.encoded, step.schema, step.outputs)
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

    def table(
        self, node: ir.PlanNode, encoded: frozenset[str] = frozenset(), needed: frozenset[str] | None = None
    ) -> pa.Table:
        """All of ``node``'s rows; ``encoded`` and ``needed`` as in :meth:`batches` (so the table may
        hold only the needed columns, some of them dictionary-encoded)."""
        batches = []
        for batch in self.batches(node, encoded=encoded, needed=needed):
            if self.ctx.budget is not None:  # charged as it grows, so an oversized input stops early
                self.ctx.budget.charge(batch.get_total_buffer_size(), type(node).__name__)
            batches.append(batch)
        schema = batches[0].schema if (encoded or needed is not None) and batches else self.schema(node)
        return pa.Table.from_batches(batches, schema=schema)

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
        # keys that are only grouped on may arrive dictionary-encoded (the fused path groups on codes)
        keys = frozenset(node.groups).difference(a.column for a in node.aggs)
        source = self.table(node.parent, keys, frozenset(node.groups).union(a.column for a in node.aggs))
        arrays = aggregate_fused(source, node.groups, node.aggs, node.relation)
        if arrays is None:
            source = _decoded(source)
            if aggregate.splittable(node.aggs):
                states = partial_states(source, node.groups, node.aggs)
                arrays = aggregate.finalize(states, node.groups, node.aggs, node.relation)
            else:
                arrays = aggregate.aggregate_whole(source, node)
        yield from _agg_batches(arrays, node.relation)

    def _run_partialagg(self, node: PartialAgg) -> Iterator[pa.RecordBatch]:
        needed = frozenset(node.groups).union(a.column for a in node.aggs)
        states = partial_states(self.table(node.parent, needed=needed), node.groups, node.aggs)
        yield from states.to_batches()

    def _run_finalagg(self, node: FinalAgg) -> Iterator[pa.RecordBatch]:
        merged = aggregate.merge(self.table(node.parent), node.groups, node.aggs)
        yield from _agg_batches(aggregate.finalize(merged, node.groups, node.aggs, node.relation), node.relation)

    def _run_receive(self, node: Receive) -> Iterator[pa.RecordBatch]:
        parts = [
            p.cast(node.schema) if not p.schema.equals(node.schema) else p for p in self.received.get(node.stream, ())
        ]
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


class _Step(NamedTuple):
    """One chain step and what it needs to run."""

    node: ir.Filter | ir.Map
    keep: list[str] | None = None  # filter: the columns to keep before it (None: all)
    outputs: list[int] | None = None  # map: which of its expressions to evaluate (None: all)
    schema: pa.Schema | None = None  # map: the schema of what it emits
    encoded: frozenset[str] = frozenset()  # map: its outputs left dictionary-encoded


class _ChainPlan(NamedTuple):
    source_schema: pa.Schema  # the source columns the chain reads, as the Source types them
    steps: list[_Step]


def _chain_plan(
    source: ir.Source,
    steps: list[ir.Filter | ir.Map],
    encoded: frozenset[str] = frozenset(),
    needed: frozenset[str] | None = None,
) -> _ChainPlan:
    """What each step computes, working back from the columns the consumer reads.

    Why: a filter copies every column it keeps, and a map builds every column of its relation; when
    later steps or the consumer read only a few columns (a projection, as in ``df[['time_', ...]]``,
    or a group-by), the wide payload columns are neither read from the source, nor filtered, nor
    passed through the maps."""
    steps = _cheap_filters_first(steps)
    live: set[str] | None = set(needed) if needed else None  # read after the current step; None = all
    plan: list[_Step] = []
    for step, enc in zip(reversed(steps), reversed(_dictionary_plan(steps, encoded)), strict=True):
        if isinstance(step, ir.Map):
            outputs = None if live is None else [i for i, c in enumerate(step.relation) if c.name in live]
            kept = range(len(step.exprs)) if outputs is None else outputs
            relation = step.relation if outputs is None else tuple(step.relation[i] for i in kept)
            plan.append(_Step(step, outputs=outputs, schema=_map_schema(relation, enc), encoded=enc))
            live = set().union(*(_refs(step.exprs[i], set()) for i in kept))
        else:
            keep = None
            if live is not None:
                live = _refs(step.predicate, set(live))
                keep = [c.name for c in step.parent.relation if c.name in live]
            plan.append(_Step(step, keep=keep))
        if live is not None and not live:  # a batch without columns would lose its row count
            live = {step.parent.relation[0].name}
    schema = arrow_schema(source.relation)
    if live is not None:
        schema = pa.schema([f for f in schema if f.name in live])
    return _ChainPlan(schema, plan[::-1])


def _cheap_filters_first(steps: list[ir.Filter | ir.Map]) -> list[ir.Filter | ir.Map]:
    """``steps`` with each run of consecutive filters ordered cheapest predicate first.

    Why: filters are pure and commute, and each one only sees the rows the ones before it kept; a
    substring test costs about 30 ns a row against well under 1 ns for a numeric comparison, so
    ``df[px.contains(df.req_path, 'x')]`` then ``df[df.resp_status >= 500]`` runs the comparison
    first and the substring test on a tenth of the rows."""
    out: list[ir.Filter | ir.Map] = []
    run: list[ir.Filter] = []
    for step in [*steps, None]:
        if isinstance(step, ir.Filter):
            run.append(step)
            continue
        out += sorted(run, key=lambda f: _cost(f.predicate))  # stable: equal costs keep script order
        run = []
        if step is not None:
            out.append(step)
    return out


def _cost(expr: ir.Expr) -> int:
    """Rough per-row cost of an expression: a call over strings scans bytes, others are one op."""
    if isinstance(expr, ir.Call):
        return (10 if STRING in expr.arg_types else 1) + sum(_cost(a) for a in expr.args)
    return 0


def _dictionary_plan(steps: list[ir.Filter | ir.Map], wanted: frozenset[str]) -> list[frozenset[str]]:
    """Per step, the output columns it leaves dictionary-encoded.

    A map leaves a column encoded when it computes it with a function that has a dictionary form (a
    metadata look-up, bin) or passes an encoded column through, and every later map passes it on
    unchanged (a bare column reference) to a column of ``wanted``.  Any other use of it reads it
    decoded (expressions decode their arguments)."""
    if not wanted:
        return [frozenset()] * len(steps)
    after: list[set[str]] = []
    want = set(wanted)
    for step in reversed(steps):
        after.append(want)
        if isinstance(step, ir.Map):
            want = {
                e.name
                for e, c in zip(step.exprs, step.relation, strict=True)
                if isinstance(e, ir.ColumnRef) and c.name in want
            }
    out: list[frozenset[str]] = []
    have: frozenset[str] = frozenset()
    for step, want_out in zip(steps, reversed(after), strict=True):
        if isinstance(step, ir.Map):
            have = frozenset(
                c.name
                for e, c in zip(step.exprs, step.relation, strict=True)
                if c.name in want_out and _encodable(e, have)
            )
        out.append(have)
    return out


def _encodable(expr: ir.Expr, encoded_inputs: frozenset[str]) -> bool:
    if isinstance(expr, ir.ColumnRef):
        return expr.name in encoded_inputs
    if isinstance(expr, ir.Call):
        func = REGISTRY.get(expr.func)
        return isinstance(func, ScalarFunc) and func.dict_impl is not None
    return False


def _map_schema(relation: ir.Relation, encoded: frozenset[str]) -> pa.Schema:
    schema = arrow_schema(relation)
    for i, f in enumerate(schema):
        if f.name in encoded:
            schema = schema.set(i, f.with_type(encoded_type(f.type)))
    return schema


def _decoded(table: pa.Table) -> pa.Table:
    """``table`` with dictionary-encoded columns decoded (for paths that group on values)."""
    for i, f in enumerate(table.schema):
        if pa.types.is_dictionary(f.type):
            table = table.set_column(i, f.with_type(f.type.value_type), table.column(i).cast(f.type.value_type))
    return table


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


def _map_batch(
    node: ir.Map,
    batch: pa.RecordBatch,
    ctx: EvalContext,
    encoded: frozenset[str] = frozenset(),
    schema: pa.Schema | None = None,
    outputs: list[int] | None = None,
) -> pa.RecordBatch:
    """The map over one batch; ``outputs``: only those of its expressions (``schema`` then says which)."""
    kept = range(len(node.exprs)) if outputs is None else outputs
    cols = [evaluate_array(node.exprs[i], batch, ctx, node.relation[i].name in encoded) for i in kept]
    return pa.RecordBatch.from_arrays(cols, schema=schema or arrow_schema(node.relation))


def _agg_batches(arrays: list[pa.Array], relation: ir.Relation) -> Iterator[pa.RecordBatch]:
    schema = arrow_schema(relation)
    if arrays and len(arrays[0]):
        cols = [a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, schema, strict=True)]
        yield pa.RecordBatch.from_arrays(cols, schema=schema)


def _guarded(operator: str, it: Iterator[pa.RecordBatch], deadline: float | None = None) -> Iterator[pa.RecordBatch]:
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
