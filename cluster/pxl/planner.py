"""Split a compiled plan into per-PEM fragments and one Kelvin fragment, and run it that way.

Why: work goes to the data.  Each PEM runs what it can over its own rows (source, filter, map, the
partial half of an aggregate, and head(n), which is safe per agent because every agent's oldest n
rows include its share of the global oldest n), and ships Arrow IPC bytes; Kelvin merges partial
states, finalises aggregates and runs joins, unions and the global head.

Rules (see ``_Splitter``):
- A *chain* is a Source followed by filters and maps, optionally topped by one head(n).  A chain runs
  on every PEM.  Its rows carry a hidden copy of ``time_`` (when the source has one), so Kelvin can
  merge the agents' rows in time order before the global head, then drops it.
- An aggregate directly over a chain without a head is split: PartialAgg on the PEM, FinalAgg on
  Kelvin.  Aggregates without split states (see cluster.pxl.funcs.aggregates.SPLITS) run whole on
  Kelvin over the shipped rows.
- Everything else (joins, unions, aggregates over Kelvin results, filters and maps after a head)
  runs on Kelvin.  Metadata look-ups there are answered by the agent that knows the upid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from cluster.pxl import ir
from cluster.pxl.errors import MemoryBudget
from cluster.pxl.exec.aggregate import partial_schema, splittable
from cluster.pxl.exec.export import run_sinks
from cluster.pxl.exec.fragments import FinalAgg, PartialAgg, Receive
from cluster.pxl.exec.operators import Runner, arrow_schema
from cluster.pxl.funcs import EvalContext
from cluster.pxl.sources import UPID_ATTRS, EntityMetadataSource, MetadataSource, TableSource, VizierInfo
from cluster.pxl.types import TIME64NS

#: hidden column carrying each row's time_ through a PEM chain, for Kelvin's time-ordered merge
ORDER_COLUMN = "__pxl_order_time"


@dataclass(frozen=True)
class DistributedPlan:
    """``pem`` fragments run on every agent, each shipping one table per stream name; ``kelvin``
    is the query that reads those streams through Receive nodes."""

    pem: tuple[tuple[str, ir.PlanNode], ...]
    kelvin: ir.CompiledQuery

    def describe(self) -> str:
        lines = []
        for stream, node in self.pem:
            lines.append(ir.CompiledQuery((ir.Sink(f"pem:{stream}", node),), 0).describe())
        lines.append(self.kelvin.describe())
        return "\n".join(lines)


def _is_chain(node: ir.PlanNode, allow_limit: bool = True) -> bool:
    if isinstance(node, ir.Source):
        return True
    if isinstance(node, (ir.Filter, ir.Map)):
        return _is_chain(node.parent, allow_limit=False)
    if isinstance(node, ir.Limit) and allow_limit:
        return _is_chain(node.parent, allow_limit=False)
    return False


def _chain_source(node: ir.PlanNode) -> ir.Source:
    while not isinstance(node, ir.Source):
        node = node.parents[0]
    return node


class _Splitter:
    def __init__(self) -> None:
        self.pem: list[tuple[str, ir.PlanNode]] = []
        self.memo: dict[int, ir.PlanNode] = {}

    def _stream(self, node: ir.PlanNode) -> str:
        name = f"s{len(self.pem)}"
        self.pem.append((name, node))
        return name

    def kelvin(self, node: ir.PlanNode) -> ir.PlanNode:
        """The Kelvin-side node that yields what ``node`` yields on a single node."""
        key = id(node)
        if key not in self.memo:
            self.memo[key] = self._split(node)
        return self.memo[key]

    def _split(self, node: ir.PlanNode) -> ir.PlanNode:
        if _is_chain(node):
            return self._ship_rows(node)
        if isinstance(node, ir.Agg) and _is_chain(node.parent, allow_limit=False) and splittable(node.aggs):
            pem = PartialAgg(relation=node.relation, parent=node.parent, groups=node.groups, aggs=node.aggs)
            schema = partial_schema(arrow_schema(node.parent.relation), node.groups, node.aggs)
            recv = Receive(relation=node.relation, stream=self._stream(pem), schema=schema)
            return FinalAgg(relation=node.relation, parent=recv, groups=node.groups, aggs=node.aggs)
        # Joins, unions, aggregates over Kelvin results, and leaves that are not table scans (table
        # functions such as px.GetAgentStatus run once, on Kelvin) stay here.
        return _with_parents(node, self.kelvin)

    def _ship_rows(self, top: ir.PlanNode) -> ir.PlanNode:
        """A chain on the PEMs, its rows merged by time on Kelvin, then the global head."""
        limit = top if isinstance(top, ir.Limit) else None
        body = limit.parent if limit else top
        source = _chain_source(body)
        ordered = source.column("time_") is not None
        pem_body = _with_order_column(body) if ordered else body
        pem_top: ir.PlanNode = pem_body
        if limit is not None:
            pem_top = ir.Limit(relation=pem_body.relation, parent=pem_body, n=limit.n)
        schema = arrow_schema(pem_top.relation)
        node: ir.PlanNode = Receive(relation=pem_top.relation, stream=self._stream(pem_top), schema=schema,
                                    order_by=ORDER_COLUMN if ordered else None)
        if limit is not None:
            node = ir.Limit(relation=node.relation, parent=node, n=limit.n)
        if ordered:
            node = ir.Map(relation=top.relation, parent=node,
                          exprs=tuple(ir.ColumnRef(name=c.name, dtype=c.dtype, semantic=c.semantic)
                                      for c in top.relation))
        return node


def _with_parents(node: ir.PlanNode, convert) -> ir.PlanNode:
    """A copy of ``node`` whose parent nodes are replaced by ``convert(parent)``."""
    changes = {}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ir.PlanNode):
            changes[f.name] = convert(value)
        elif isinstance(value, tuple) and value and all(isinstance(v, ir.PlanNode) for v in value):
            changes[f.name] = tuple(convert(v) for v in value)
    return dataclasses.replace(node, **changes) if changes else node


def _with_order_column(node: ir.PlanNode) -> ir.PlanNode:
    """The same chain (no limit inside) with ORDER_COLUMN = the source's time_ appended to each node."""
    order = ir.Column(ORDER_COLUMN, TIME64NS)
    ref = ir.ColumnRef(name=ORDER_COLUMN, dtype=TIME64NS)
    if isinstance(node, ir.Source):
        time_col = node.column("time_")
        assert time_col is not None
        exprs = tuple(ir.ColumnRef(name=c.name, dtype=c.dtype, semantic=c.semantic) for c in node.relation)
        return ir.Map(relation=(*node.relation, order), parent=node,
                      exprs=(*exprs, ir.ColumnRef(name="time_", dtype=time_col.dtype)))
    parent = _with_order_column(node.parents[0])
    if isinstance(node, ir.Filter):
        return ir.Filter(relation=(*node.relation, order), parent=parent, predicate=node.predicate)
    assert isinstance(node, ir.Map)
    return ir.Map(relation=(*node.relation, order), parent=parent, exprs=(*node.exprs, ref))


def plan(query: ir.CompiledQuery) -> DistributedPlan:
    """Cut ``query`` into PEM fragments and a Kelvin query (shared sub-plans are cut once)."""
    splitter = _Splitter()
    sinks = tuple(ir.Sink(s.name, splitter.kelvin(s.node), s.export) for s in query.sinks)
    return DistributedPlan(tuple(splitter.pem), ir.CompiledQuery(sinks, query.now_ns))


# --------------------------------------------------------------------------------------------
# Running it
# --------------------------------------------------------------------------------------------


def to_ipc(table: pa.Table) -> bytes:
    """Arrow IPC stream bytes: what a PEM sends to Kelvin."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class AgentsMetadata:
    """Kelvin's metadata: each look-up is answered by whichever agent knows the value.

    A upid is known only to the PEM that owns the process, so asking every agent and keeping the
    non-empty answer is the same as asking the owner."""

    def __init__(self, sources: Sequence[MetadataSource | None]) -> None:
        self.sources = [s for s in sources if s is not None]

    def _coalesce(self, answers: list[pa.Array], n: int) -> pa.Array:
        out = pa.array([""] * n, pa.string()) if not answers else answers[0]
        for other in answers[1:]:
            out = pc.if_else(pc.equal(out, ""), other, out)
        return out

    def upid_attr(self, attr: str, upids: pa.Array) -> pa.Array:
        assert attr in UPID_ATTRS
        return self._coalesce([s.upid_attr(attr, upids).cast(pa.string()) for s in self.sources], len(upids))

    def entity_attr(self, key: str, attr: str, values: pa.Array) -> pa.Array:
        answers = [s.entity_attr(key, attr, values).cast(pa.string()) for s in self.sources
                   if isinstance(s, EntityMetadataSource)]
        return self._coalesce(answers, len(values))

    def hostname(self) -> str:
        return self.sources[0].hostname() if self.sources else ""


class _NoTables:
    def scan(self, table: str, start_ns: int | None, end_ns: int | None):
        raise KeyError(f"Kelvin holds no tables; {table!r} should have been read on the PEMs")


def pem_tables(dplan: DistributedPlan, tables: TableSource, metadata: MetadataSource | None, *,
               deadline: float | None = None, budget: MemoryBudget | None = None) -> Iterator[tuple[str, pa.Table]]:
    """One agent's share, stream by stream, as tables (an agent ships each as it is done)."""
    runner = Runner(tables, EvalContext(metadata=metadata, now_ns=dplan.kelvin.now_ns, deadline=deadline,
                                        budget=budget))
    for stream, node in dplan.pem:
        yield stream, runner.table(node)


def run_pem_fragments(dplan: DistributedPlan, tables: TableSource,
                      metadata: MetadataSource | None) -> dict[str, bytes]:
    """One agent's share: each fragment's output as Arrow IPC bytes, keyed by stream."""
    return {stream: to_ipc(table) for stream, table in pem_tables(dplan, tables, metadata)}


def run_kelvin(dplan: DistributedPlan, shipped: Sequence[dict[str, bytes]], metadata: MetadataSource | None,
               vizier: VizierInfo | None = None) -> list[tuple[str, pa.Table]]:
    """The Kelvin fragment over what the agents shipped (one dict of stream -> IPC bytes per agent)."""
    received = {stream: [from_ipc(agent[stream]) for agent in shipped if stream in agent]
                for stream, _ in dplan.pem}
    return run_kelvin_tables(dplan, received, metadata, vizier)


def run_kelvin_tables(dplan: DistributedPlan, received: Mapping[str, Sequence[pa.Table]],
                      metadata: MetadataSource | None, vizier: VizierInfo | None = None, *,
                      deadline: float | None = None, budget: MemoryBudget | None = None
                      ) -> list[tuple[str, pa.Table]]:
    """The Kelvin fragment over the tables received per stream (any number of parts per agent)."""
    if budget is not None:
        for tables in received.values():
            for t in tables:
                budget.charge(t.get_total_buffer_size(), "Receive")
    ctx = EvalContext(metadata=metadata, now_ns=dplan.kelvin.now_ns, vizier=vizier, deadline=deadline,
                      budget=budget)
    runner = Runner(_NoTables(), ctx, {s: list(received.get(s, ())) for s, _ in dplan.pem})
    return run_sinks(dplan.kelvin.sinks, runner.table)


def execute_distributed(query: ir.CompiledQuery, agents: Sequence[tuple[TableSource, MetadataSource | None]],
                        *, vizier: VizierInfo | None = None) -> list[tuple[str, pa.Table]]:
    """Run ``query`` as a cluster would: PEM fragments per agent, IPC bytes to Kelvin, merge there.

    Gives the same tables as :func:`cluster.pxl.execute` over all agents' rows together (the order
    of aggregate groups aside; quantiles come from the same sketch either way)."""
    dplan = plan(query)
    shipped = [run_pem_fragments(dplan, tables, md) for tables, md in agents]
    return run_kelvin(dplan, shipped, AgentsMetadata([md for _, md in agents]), vizier)
