"""The logical plan: typed expressions and relational operators, shared by compiler and engine.

The compiler builds these immutable nodes while it walks a script; the engine (cluster.pxl.exec)
runs them over Arrow batches, and the planner can cut the same graph into PEM and Kelvin halves.
Nodes compare by identity (``eq=False``) because two identical-looking sub-plans built at
different points of a script are still different operators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.pxl.types import ST_NONE

# --------------------------------------------------------------------------------------------
# Expressions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class Expr:
    dtype: str
    semantic: str = ST_NONE


@dataclass(frozen=True, eq=False, kw_only=True)
class Literal(Expr):
    """A compile-time value: int, float, str, bool, or ns since epoch for TIME64NS."""

    value: object


@dataclass(frozen=True, eq=False, kw_only=True)
class ColumnRef(Expr):
    name: str


@dataclass(frozen=True, eq=False, kw_only=True)
class Call(Expr):
    """A scalar UDF applied row-wise; ``func`` is a registry name, ``signature`` the chosen overload."""

    func: str
    args: tuple[Expr, ...]
    arg_types: tuple[str, ...] = ()


def column_names(expr: Expr) -> set[str]:
    """Every column an expression reads."""
    if isinstance(expr, ColumnRef):
        return {expr.name}
    if isinstance(expr, Call):
        out: set[str] = set()
        for a in expr.args:
            out |= column_names(a)
        return out
    return set()


# --------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str
    semantic: str = ST_NONE


Relation = tuple[Column, ...]


@dataclass(frozen=True, eq=False, kw_only=True)
class PlanNode:
    relation: Relation

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return ()

    def column(self, name: str) -> Column | None:
        for c in self.relation:
            if c.name == name:
                return c
        return None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.relation]


@dataclass(frozen=True, eq=False, kw_only=True)
class Source(PlanNode):
    """MemorySource: rows of ``table`` with start <= time_ <= end, projected to ``relation``."""

    table: str
    start_ns: int | None = None
    end_ns: int | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class UDTFSource(PlanNode):
    """A table function (px.GetAgentStatus(), ...): rows computed by the engine, not scanned.

    ``args`` are the call's literal arguments by name; cluster.pxl.funcs.udtfs.UDTFS[name] tells
    where it runs (all of Pixie's that PxL can call here run once, on one Kelvin).
    """

    name: str
    args: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, eq=False, kw_only=True)
class Filter(PlanNode):
    parent: PlanNode
    predicate: Expr

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return (self.parent,)


@dataclass(frozen=True, eq=False, kw_only=True)
class Map(PlanNode):
    """Projection: one expression per output column, in relation order."""

    parent: PlanNode
    exprs: tuple[Expr, ...]

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return (self.parent,)


@dataclass(frozen=True, eq=False, kw_only=True)
class Limit(PlanNode):
    parent: PlanNode
    n: int

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return (self.parent,)


@dataclass(frozen=True)
class AggSpec:
    out: str
    func: str
    column: str
    arg_type: str


@dataclass(frozen=True, eq=False, kw_only=True)
class Agg(PlanNode):
    """Blocking aggregate: group columns first, then one column per AggSpec (no specs = distinct)."""

    parent: PlanNode
    groups: tuple[str, ...]
    aggs: tuple[AggSpec, ...]

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return (self.parent,)


@dataclass(frozen=True)
class JoinOutput:
    side: str  # "left" or "right"
    source: str
    out: str


@dataclass(frozen=True, eq=False, kw_only=True)
class Join(PlanNode):
    """Equi-join (no keys = cross join); missing sides are zero-filled since PxL has no NULL."""

    left: PlanNode
    right: PlanNode
    how: str
    left_on: tuple[str, ...]
    right_on: tuple[str, ...]
    outputs: tuple[JoinOutput, ...] = field(default=())

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return (self.left, self.right)


@dataclass(frozen=True, eq=False, kw_only=True)
class Union(PlanNode):
    """Stacks frames with identical relations; ordered by time_ when there is one."""

    inputs: tuple[PlanNode, ...]

    @property
    def parents(self) -> tuple[PlanNode, ...]:
        return self.inputs


@dataclass(frozen=True)
class Sink:
    """A result table: its name and the plan that produces it.  A px.export sink instead carries
    ``export`` (a cluster.pxl.funcs.otel_spec.ExportSpec) and yields no table."""

    name: str
    node: PlanNode
    export: object | None = None


@dataclass(frozen=True)
class CompiledQuery:
    """What compile_pxl produces and execute runs: the result tables in output order."""

    sinks: tuple[Sink, ...]
    now_ns: int

    def describe(self) -> str:
        """A readable dump of the plan, for debugging and tests."""
        lines: list[str] = []
        for sink in self.sinks:
            lines.append(f"sink {sink.name!r}")
            _describe(sink.node, 1, lines)
        return "\n".join(lines)


def _describe(node: PlanNode, depth: int, lines: list[str]) -> None:
    pad = "  " * depth
    cols = ", ".join(f"{c.name}:{c.dtype}" for c in node.relation)
    detail = ""
    if isinstance(node, Source):
        detail = f" {node.table} [{node.start_ns}, {node.end_ns}]"
    elif isinstance(node, UDTFSource):
        detail = f" {node.name}{dict(node.args)}"
    elif isinstance(node, Limit):
        detail = f" n={node.n}"
    elif isinstance(node, Agg):
        detail = f" by={list(node.groups)} aggs={[(a.out, a.func, a.column) for a in node.aggs]}"
    elif isinstance(node, Join):
        detail = f" {node.how} {list(node.left_on)}={list(node.right_on)}"
    lines.append(f"{pad}{type(node).__name__}{detail} ({cols})")
    for p in node.parents:
        _describe(p, depth + 1, lines)
